package fragments

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// The partial feed: the fragments of a stream that are not in the index
// yet, readable while they arrive (LL-HLS parts). A PutMedia connection of
// an archived stream publishes the fragment it is receiving once some
// reader has asked for its stream's partial feed in the last
// partialInterest (WantPartial), so ingest pays nothing for it otherwise:
// it keeps a copy of the cluster bytes in memory (at most MaxFragmentSize)
// and the sample table so far. A published fragment is open while its
// frames arrive, complete once RECEIVED (its final sample table), and
// leaves the feed once it is in the index (PERSISTED) or the moment it
// fails (an error ack, a dropped or replaced connection): a failed
// fragment's parts are never served as if it completed.

// partialInterest is how long a stream keeps publishing its fragments in
// progress after the last WantPartial.
const partialInterest = 30 * time.Second

// PartialFragment is a fragment of the partial feed.
type PartialFragment struct {
	StreamID int64
	Number   uint64
	ServerNS int64
	Timecode int64 // set under mu (it arrives after the cluster start)
	// Header is the track header the fragment was sent with (its ID is not
	// known before the fragment is committed: compare Raw).
	Header *Header
	// PrevNumber is the fragment that the same connection sent before this
	// one (0 for its first), with the same Header when SameHeader.
	PrevNumber uint64
	SameHeader bool

	mu       sync.Mutex
	samples  []Sample // absolute times, as received, until complete
	payload  []byte   // append-only: a snapshot's slice stays valid
	reorder  [mkv.MaxTracks]int
	complete bool
	final    *Meta
	frag     Fragment
	gone     bool
	changed  chan struct{}    // nil until someone waits
	version  int              // changes counted, for the snapshot cache
	cached   *PartialSnapshot // the snapshot of version cachedAt
	cachedAt int
}

// PartialSnapshot is what a fragment of the partial feed holds at one moment.
type PartialSnapshot struct {
	// Fragment has the fragment's number, timestamps and size so far;
	// ProducerNS is the earliest frame so far and DurationNS the span of
	// its first track so far (final once Complete). Ordinal is 0.
	Fragment Fragment
	Header   *Header
	// Meta holds the samples so far with times relative to
	// Fragment.ProducerNS and decode times derived as the index stores
	// them (finishSamples).
	Meta *Meta
	// Payload holds the cluster bytes so far (Sample offsets index it).
	Payload []byte
	// Settled counts, per track index, how many of that track's first
	// samples (in decode order) have their final times: all but the last
	// few, which frames still to come may reorder or give a duration.
	// Every sample is settled once Complete.
	Settled  [mkv.MaxTracks]int
	Complete bool
}

// snapshot returns the fragment's state, or false once it left the feed.
func (p *PartialFragment) snapshot() (*PartialSnapshot, bool) {
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		return nil, false
	}
	if p.cached != nil && p.cachedAt == p.version {
		sn := p.cached // every LL-HLS viewer of the stream asks for the same one
		p.mu.Unlock()
		return sn, true
	}
	version := p.version
	sn := &PartialSnapshot{Header: p.Header, Payload: p.payload[:len(p.payload):len(p.payload)], Complete: p.complete}
	if p.complete {
		sn.Fragment, sn.Meta = p.frag, p.final
		p.mu.Unlock()
		for _, s := range sn.Meta.Samples {
			sn.Settled[s.Track]++
		}
		return sn, true
	}
	samples := slices.Clone(p.samples)
	reorder, timecode := p.reorder, p.Timecode
	p.mu.Unlock()

	tracks := 0
	start := int64(0)
	for i, s := range samples {
		tracks = max(tracks, int(s.Track)+1)
		if i == 0 || s.PTS < start {
			start = s.PTS
		}
	}
	var count [mkv.MaxTracks]int
	for _, s := range samples {
		count[s.Track]++
	}
	for t := range count {
		// A frame's decode time is final once every frame presented
		// before it has arrived: with frames at most d behind in
		// presentation order, d frames later; its duration once the next
		// frame is in.
		sn.Settled[t] = max(0, count[t]-reorder[t]-1)
	}
	dur := deriveTimes(samples, tracks, start, &sn.Settled)
	sn.Fragment = Fragment{StreamID: p.StreamID, Number: p.Number, ProducerNS: start, ServerNS: p.ServerNS,
		DurationNS: dur, Size: int64(len(sn.Payload)), Timecode: timecode}
	sn.Meta = &Meta{Samples: samples}
	p.mu.Lock()
	if p.version == version && !p.gone {
		p.cached, p.cachedAt = sn, version
	}
	p.mu.Unlock()
	return sn, true
}

// Snapshot returns the fragment's state now; false if it has left the feed
// (it is in the index, or it failed).
func (p *PartialFragment) Snapshot() (*PartialSnapshot, bool) { return p.snapshot() }

// Changed returns a channel closed at the fragment's next change (frames,
// completion, leaving the feed).
func (p *PartialFragment) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.changed
}

// Gone reports whether the fragment left the feed.
func (p *PartialFragment) Gone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gone
}

// wake counts a change and wakes the readers waiting for one (the channel
// is made only when someone waits).
func (p *PartialFragment) wake() {
	p.version++
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// append adds cluster bytes, and the samples of a block with them.
func (p *PartialFragment) append(b []byte, samples []Sample) {
	p.mu.Lock()
	if len(b) > 0 {
		p.payload = append(p.payload, b...)
		p.version++ // the payload snapshot grows (readers are woken with the samples)
	}
	if len(samples) > 0 {
		for _, s := range samples {
			// How far behind in presentation order this frame comes:
			// the earlier frames of its track presented after it.
			// (Decoders reorder a few frames: the last 32 samples tell.)
			d := 0
			for i := len(p.samples) - 1; i >= max(0, len(p.samples)-32); i-- {
				if p.samples[i].Track == s.Track && p.samples[i].PTS > s.PTS {
					d++
				}
			}
			p.reorder[s.Track] = max(p.reorder[s.Track], d)
		}
		p.samples = append(p.samples, samples...)
		p.wake()
	}
	p.mu.Unlock()
}

func (p *PartialFragment) setTimecode(tc int64) {
	p.mu.Lock()
	p.Timecode = tc
	p.mu.Unlock()
}

// finish marks the fragment complete with its final row and sample table.
func (p *PartialFragment) finish(f *Fragment, samples []Sample) {
	p.mu.Lock()
	p.complete, p.frag, p.final = true, *f, &Meta{Samples: samples}
	p.samples = nil
	p.wake()
	p.mu.Unlock()
}

func (p *PartialFragment) leave() {
	p.mu.Lock()
	if !p.gone {
		p.gone = true
		p.payload, p.samples, p.final, p.cached = nil, nil, nil, nil
		p.wake()
	}
	p.mu.Unlock()
}

// interested reports whether a reader asked for the feed in the last
// partialInterest; once that has passed it forgets the ask, so that
// wantedAny is false again.
func (f *partialFeed) interested(now time.Time) bool {
	w := f.wanted.Load()
	if w == 0 {
		return false
	}
	if now.UnixNano()-w > int64(partialInterest) {
		f.wanted.CompareAndSwap(w, 0)
		return false
	}
	return true
}

// wantedAny is the ingest's cheap per-frame check: some reader asked
// (recently or a while ago: interested says).
func (f *partialFeed) wantedAny() bool { return f.wanted.Load() != 0 }

// partialFeed is a stream's partial feed.
type partialFeed struct {
	wanted atomic.Int64 // unix ns of the last WantPartial
	mu     sync.Mutex
	frags  []*PartialFragment // in ingest order
	wake   chan struct{}
}

type partialHub struct {
	mu    sync.Mutex
	feeds map[int64]*partialFeed
}

func (h *partialHub) feed(streamID int64) *partialFeed {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.feeds == nil {
		h.feeds = map[int64]*partialFeed{}
	}
	f := h.feeds[streamID]
	if f == nil {
		f = &partialFeed{wake: make(chan struct{})}
		h.feeds[streamID] = f
	}
	return f
}

// WantPartial asks the stream's PutMedia connections to publish their
// fragments in progress from the next fragment on, for partialInterest.
func (s *Store) WantPartial(streamID int64, now time.Time) {
	f := s.partials.feed(streamID)
	if n := now.UnixNano(); f.wanted.Load() < n {
		f.wanted.Store(n)
	}
}

// Partial returns the stream's fragments that are published but not yet
// in the index, in ingest order, and a channel closed when that list
// changes (a fragment joins or leaves it). Take the channel before
// looking at the index, so no change is missed.
func (s *Store) Partial(streamID int64) ([]*PartialFragment, <-chan struct{}) {
	f := s.partials.feed(streamID)
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.frags), f.wake
}

// PartialByNumber returns the stream's published fragment number, if it
// is in the feed.
func (s *Store) PartialByNumber(streamID int64, number uint64) *PartialFragment {
	f := s.partials.feed(streamID)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.frags {
		if p.Number == number {
			return p
		}
	}
	return nil
}

// partialCap is the capacity a published fragment's payload copy starts
// with: a little more than the previous fragment's size, so it rarely grows.
func (c *Config) partialCap(prev int64) int {
	return int(min(prev+prev/8+4096, c.MaxFragmentSize))
}

// publish adds a fragment to its stream's feed if a reader wants it.
func (s *Store) publish(p *PartialFragment, now time.Time) bool {
	f := s.partials.feed(p.StreamID)
	if !f.interested(now) {
		return false
	}
	f.mu.Lock()
	f.frags = append(f.frags, p)
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
	return true
}

// unpublish takes a fragment out of its stream's feed (committed or
// failed); p may be nil.
func (s *Store) unpublish(p *PartialFragment) {
	if p == nil {
		return
	}
	f := s.partials.feed(p.StreamID)
	f.mu.Lock()
	if i := slices.Index(f.frags, p); i >= 0 {
		f.frags = slices.Delete(f.frags, i, i+1)
		close(f.wake)
		f.wake = make(chan struct{})
	}
	f.mu.Unlock()
	p.leave()
}

// startPartial publishes the fragment in progress in the partial feed:
// at its start, or (a reader came since) with the bytes and frames
// received so far, read back from the segment file. It is skipped when
// that fails: the fragment is then served once complete, as usual.
func (in *ingest) startPartial(now time.Time) {
	f := in.frag
	if in.stored == nil {
		return
	}
	f.partialTried = true
	p := &PartialFragment{StreamID: in.st.ID, Number: f.number, ServerNS: f.serverNS, Timecode: f.timecode, Header: in.stored,
		PrevNumber: in.prevNumber, SameHeader: in.prevHeader == in.stored, reorder: in.reorder}
	p.payload = make([]byte, f.size, max(int(f.size), in.s.cfg.partialCap(in.prevSize)))
	if f.size > 0 {
		if in.seg.Flush() != nil {
			return
		}
		r, err := in.s.Payloads.Open(in.st.ID, in.segID)
		if err != nil {
			return
		}
		_, err = r.ReadAt(p.payload, f.start)
		r.Close()
		if err != nil {
			return
		}
	}
	if !in.s.publish(p, now) {
		return
	}
	f.partial = p
	if len(f.samples) > 0 {
		p.append(nil, f.samples)
	}
}
