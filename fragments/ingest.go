package fragments

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// Fragment metadata limits (error 4009).
const (
	MaxMetadataTags     = 10
	MaxMetadataNameLen  = 128
	MaxMetadataValueLen = 256
	endOfFragmentTag    = "AWS_KINESISVIDEO_END_OF_FRAGMENT"
)

// PutOptions are the PutMedia request headers and hooks of one connection.
type PutOptions struct {
	// Relative: cluster timecodes are relative to ProducerStart.
	Relative bool
	// ProducerStart is x-amzn-producer-start-timestamp (unix ns); HasProducerStart
	// is false when the header was absent or unparsable.
	ProducerStart    int64
	HasProducerStart bool
	// Abort unblocks a read of the body in progress (the connection is
	// replaced or the server drains). Required.
	Abort func()
	// Now is the clock (tests); time.Now if nil.
	Now func() time.Time
	// Observer, if set, is told of each fragment received and persisted
	// (metrics).
	Observer PutObserver
}

// AckFunc sends one acknowledgement to the producer. It is called from two
// goroutines (the reader and the persister) and must be safe for that.
type AckFunc func(Ack) error

// putSlot is the PutMedia connection a stream has.
type putSlot struct {
	abort    func()
	busy     atomic.Bool // a fragment is in progress
	replaced atomic.Bool
	deleted  atomic.Bool
	done     chan struct{}
}

// Put ingests one PutMedia body: every Cluster becomes a fragment, acked
// BUFFERING, RECEIVED and (if the stream keeps data) PERSISTED once its
// payload and index entry are durable. It returns after the body ends, after
// an ERROR ack (the error is returned), or when the connection is replaced by
// a newer one or the server drains.
func (s *Store) Put(ctx context.Context, st *Stream, opts PutOptions, body io.Reader, ack AckFunc) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	slot := &putSlot{abort: opts.Abort, done: make(chan struct{})}
	s.mu.Lock()
	old := s.putters[st.ID]
	s.putters[st.ID] = slot
	s.mu.Unlock()
	if old != nil {
		// The newest connection wins: end the old one, and let it finish
		// before this one writes, so fragment order stays ingest order.
		old.replaced.Store(true)
		old.abort()
		select {
		case <-old.done:
		case <-time.After(10 * time.Second):
		}
	}
	in := &ingest{s: s, st: st, opts: opts, ack: ack, slot: slot, r: mkv.NewReader(body), lastPTS: map[uint64]int64{}}
	in.feed = s.partials.feed(st.ID)
	if st.Archived() {
		in.persist = newPersister(s, st, ack, opts)
	}
	err := in.run(ctx)
	if in.persist != nil {
		// Every fragment received is PERSISTED (or failed) before Put returns.
		in.persist.close()
		if perr := in.persist.err(); perr != nil && err == nil {
			err = perr
		}
	}
	in.closeSegment()
	s.mu.Lock()
	if s.putters[st.ID] == slot {
		delete(s.putters, st.ID)
	}
	s.mu.Unlock()
	close(slot.done)
	return err
}

// ingest is the state of one PutMedia connection.
type ingest struct {
	s    *Store
	st   *Stream
	opts PutOptions
	ack  AckFunc
	slot *putSlot
	r    *mkv.Reader

	header  *mkv.StreamHeader
	stored  *Header // header as stored; ID 0 until committed
	seg     SegmentWriter
	segID   int64
	persist *persister   // nil for streams without retention
	mem     bytes.Buffer // payload of a fragment of a stream without retention
	frag    *building
	lastPTS map[uint64]int64 // per track number: latest pts of earlier fragments
	tags    []mkv.SimpleTag  // metadata seen before its fragment started

	// The previous fragment of this connection and its header, and the
	// reordering seen so far, for the partial feed.
	feed       *partialFeed
	prevNumber uint64
	prevHeader *Header
	prevSize   int64
	reorder    [mkv.MaxTracks]int
}

// building is a fragment being received.
type building struct {
	number       uint64
	began        time.Time // arrival of its first byte
	serverNS     int64
	timecode     int64
	hasTimecode  bool
	clusterOpen  bool
	start        int64 // payload offset in the segment
	size         int64
	samples      []Sample         // PTS/DTS absolute until finished
	partial      *PartialFragment // published in the partial feed, or nil
	partialTried bool             // a late start failed: not again for this fragment
	tags         []mkv.SimpleTag
	minPTS       int64
	maxPTS       map[uint64]int64
	trackHasData [mkv.MaxTracks]bool
}

func (in *ingest) now() time.Time { return in.opts.Now() }

func (in *ingest) stopping() bool {
	select {
	case <-in.s.draining:
		return true
	default:
	}
	return in.slot.replaced.Load()
}

func (in *ingest) run(ctx context.Context) error {
	for {
		if in.frag == nil && in.stopping() {
			return nil
		}
		ev, err := in.r.Next()
		if err == io.EOF {
			if in.frag != nil {
				return in.finish()
			}
			return nil
		}
		if err != nil {
			if perr := in.persistErr(); perr != nil {
				in.discard() // the persister failed, acked ERROR and aborted the read
				return perr
			}
			if in.stopping() {
				in.discard()
				return nil
			}
			if mkv.IsInvalid(err) {
				if errors.Is(err, mkv.ErrTooLarge) {
					return in.fail(ErrMaxFragmentSize, err.Error())
				}
				return in.fail(ErrInvalidMKV, err.Error())
			}
			return in.fail(ErrStreamRead, err.Error())
		}
		if err := in.handle(ev); err != nil {
			if err == errStop {
				return nil
			}
			var pe *PutError
			if errors.As(err, &pe) {
				return in.fail(pe.ID, pe.Detail)
			}
			return in.fail(ErrInternal, err.Error())
		}
	}
}

func (in *ingest) handle(ev *mkv.Event) error {
	switch ev.Kind {
	case mkv.KindEBMLHeader:
		if in.frag != nil {
			if err := in.finish(); err != nil {
				return err
			}
		}
		in.header, in.stored = nil, nil
	case mkv.KindTracks:
		in.header = ev.Header
		in.stored = &Header{StreamID: in.st.ID, TimecodeScale: ev.Header.TimecodeScale, Tracks: slices.Clone(ev.Header.Tracks), Raw: slices.Clone(ev.Header.Raw)}
	case mkv.KindClusterStart:
		if in.frag != nil {
			if err := in.finish(); err != nil {
				return err
			}
			if in.stopping() {
				return errStop
			}
		}
		return in.begin(ev)
	case mkv.KindTimecode:
		f := in.frag
		if f.hasTimecode {
			return &PutError{ErrInvalidMKV, "two cluster Timecodes"}
		}
		f.timecode, f.hasTimecode = ev.Timecode, true
		if f.partial != nil {
			f.partial.setTimecode(f.timecode)
		}
		if err := in.write(ev.Raw); err != nil {
			return err
		}
		return in.ack(Ack{EventType: AckBuffering, FragmentTimecode: f.timecode, FragmentNumber: f.number})
	case mkv.KindBlock:
		return in.block(ev)
	case mkv.KindClusterOther:
		return in.write(ev.Raw)
	case mkv.KindClusterEnd:
		in.frag.clusterOpen = false
	case mkv.KindTags:
		return in.metadata(ev.Tags)
	}
	return nil
}

var errStop = errors.New("stop")

func (in *ingest) begin(ev *mkv.Event) error {
	// Mark the connection busy and check for a drain under the lock Drain
	// holds while it looks at busy: either Drain sees this fragment busy and
	// lets it finish, or the fragment is not started (and never acked).
	in.s.mu.Lock()
	in.slot.busy.Store(true)
	stop := in.stopping()
	if stop {
		in.slot.busy.Store(false)
	}
	in.s.mu.Unlock()
	if stop {
		return errStop
	}
	now := in.now()
	f := &building{number: in.s.nextNumber(now), began: now, serverNS: in.s.serverTime(now), clusterOpen: true, maxPTS: map[uint64]int64{}}
	f.tags, in.tags = in.tags, nil
	if in.st.Archived() {
		if in.seg == nil || in.seg.Size() >= in.s.cfg.SegmentSize {
			if err := in.newSegment(); err != nil {
				return err
			}
		}
		f.start = in.seg.Size()
	} else {
		in.mem.Reset()
	}
	in.frag = f
	if in.seg != nil && in.feed.interested(now) {
		in.startPartial(now)
	}
	return in.write(ev.Raw)
}

func (in *ingest) write(p []byte) error {
	f := in.frag
	if f.size+int64(len(p)) > in.s.cfg.MaxFragmentSize {
		return &PutError{ErrMaxFragmentSize, fmt.Sprintf("fragment over %d bytes", in.s.cfg.MaxFragmentSize)}
	}
	f.size += int64(len(p))
	if f.partial != nil {
		f.partial.append(p, nil)
	}
	if in.seg == nil {
		in.mem.Write(p)
		return nil
	}
	if _, err := in.seg.Write(p); err != nil {
		return &PutError{ErrArchival, err.Error()}
	}
	return nil
}

func (in *ingest) block(ev *mkv.Event) error {
	f := in.frag
	b := &ev.Block
	if !f.hasTimecode {
		return &PutError{ErrInvalidMKV, "block before cluster Timecode"}
	}
	ti := slices.IndexFunc(in.header.Tracks, func(t mkv.Track) bool { return t.Number == b.Track })
	if ti < 0 {
		return &PutError{ErrTrackMismatch, fmt.Sprintf("block of track %d, not in Tracks", b.Track)}
	}
	scale := in.header.TimecodeScale
	tc := f.timecode + int64(b.Timecode)
	if tc > (math.MaxInt64-in.opts.ProducerStart)/scale-1 {
		return &PutError{ErrProducerTimestamp, fmt.Sprintf("timecode %d out of range", tc)}
	}
	pts := tc * scale
	if in.opts.Relative {
		pts += in.opts.ProducerStart
	}
	if prev, ok := in.lastPTS[b.Track]; ok && pts <= prev {
		return &PutError{ErrTimecodeOrder, fmt.Sprintf("track %d frame at %d ns is not after the previous fragment's last frame at %d ns", b.Track, pts, prev)}
	}
	dur := int64(0)
	if b.Duration >= 0 {
		dur = b.Duration * scale / int64(max(len(b.Frames), 1))
	} else if d := in.header.Tracks[ti].DefaultDuration; d > 0 {
		dur = d
	}
	base := f.size
	first := len(f.samples)
	for i, fr := range b.Frames {
		p := pts + int64(i)*dur
		f.samples = append(f.samples, Sample{Track: uint8(ti), Key: b.Key, PTS: p, Dur: dur, Offset: base + int64(fr.Off), Size: int64(fr.Len)})
		if len(f.samples) == 1 || p < f.minPTS {
			f.minPTS = p
		}
		if m, ok := f.maxPTS[b.Track]; !ok || p > m {
			f.maxPTS[b.Track] = p
		}
	}
	f.trackHasData[ti] = true
	if span := pts - f.minPTS; span > int64(in.s.cfg.MaxFragmentDuration) {
		return &PutError{ErrMaxFragmentDuration, fmt.Sprintf("fragment spans more than %s", in.s.cfg.MaxFragmentDuration)}
	}
	if err := in.write(ev.Raw); err != nil {
		return err
	}
	if f.partial != nil {
		f.partial.append(nil, f.samples[first:])
	} else if in.seg != nil && !f.partialTried && in.feed.wantedAny() && in.feed.interested(in.now()) {
		in.startPartial(in.now()) // a reader came during the fragment
	}
	return nil
}

func (in *ingest) metadata(tags []mkv.SimpleTag) error {
	end := false
	dst := &in.tags
	if in.frag != nil {
		dst = &in.frag.tags
	}
	for _, t := range tags {
		if t.Name == endOfFragmentTag {
			end = true
			continue
		}
		if strings.HasPrefix(t.Name, "AWS_") {
			return &PutError{ErrInvalidMetadata, fmt.Sprintf("tag name %q starts with AWS_", t.Name)}
		}
		if len(t.Name) > MaxMetadataNameLen || len(t.Value) > MaxMetadataValueLen {
			return &PutError{ErrMetadataLimit, fmt.Sprintf("tag %.40q over %d/%d bytes", t.Name, MaxMetadataNameLen, MaxMetadataValueLen)}
		}
		*dst = append(*dst, t)
		if len(*dst) > MaxMetadataTags {
			return &PutError{ErrMetadataLimit, fmt.Sprintf("more than %d metadata tags", MaxMetadataTags)}
		}
	}
	if end && in.frag != nil {
		if err := in.finish(); err != nil {
			return err
		}
	}
	return nil
}

// finish completes the fragment in progress: RECEIVED, then PERSISTED once
// it is durable.
func (in *ingest) finish() error {
	f := in.frag
	if !f.hasTimecode {
		return &PutError{ErrInvalidMKV, "cluster without Timecode"}
	}
	for i, t := range in.header.Tracks {
		if !f.trackHasData[i] {
			return &PutError{ErrFramesMissing, fmt.Sprintf("no frames for track %d", t.Number)}
		}
	}
	if in.slot.deleted.Load() {
		return &PutError{ErrStreamNotActive, "the stream was deleted"}
	}
	if in.opts.Relative && !in.opts.HasProducerStart {
		return &PutError{ErrProducerTimestamp, "RELATIVE timecodes need x-amzn-producer-start-timestamp"}
	}
	if f.minPTS < 0 {
		return &PutError{ErrProducerTimestamp, fmt.Sprintf("producer timestamp %d ns out of range", f.minPTS)}
	}
	frag := &Fragment{
		StreamID: in.st.ID, Number: f.number, ProducerNS: f.minPTS, ServerNS: f.serverNS,
		Size: f.size, Timecode: f.timecode, SegmentID: in.segID, Offset: f.start,
	}
	frag.DurationNS = finishSamples(f.samples, len(in.header.Tracks), f.minPTS)
	if frag.DurationNS > int64(in.s.cfg.MaxFragmentDuration) {
		return &PutError{ErrMaxFragmentDuration, fmt.Sprintf("fragment lasts %s", time.Duration(frag.DurationNS))}
	}
	for t, p := range f.maxPTS {
		in.lastPTS[t] = p
	}
	in.prevNumber, in.prevHeader, in.prevSize = f.number, in.stored, f.size
	if f.partial != nil {
		in.reorder = f.partial.reorder
		f.partial.finish(frag, f.samples)
	}
	in.frag = nil
	in.slot.busy.Store(false)
	if err := in.ack(Ack{EventType: AckReceived, FragmentTimecode: f.timecode, FragmentNumber: f.number}); err != nil {
		return err
	}
	end := in.now()
	stats := FragmentStats{Number: f.number, Bytes: f.size, Frames: len(f.samples), Ingestion: end.Sub(f.began), end: end}
	if in.opts.Observer != nil {
		in.opts.Observer.Received(stats)
	}
	if in.seg == nil {
		// No retention: nothing is archived, nothing is PERSISTED; live
		// readers get the fragment from memory.
		in.s.notify(in.st.ID, &LiveFragment{Fragment: *frag, Header: in.stored, Meta: &Meta{Samples: f.samples, Tags: f.tags}, Payload: bytes.Clone(in.mem.Bytes())})
		return nil
	}
	if err := in.seg.Flush(); err != nil {
		in.seg.Truncate(f.start)
		if f.partial != nil {
			in.s.unpublish(f.partial)
		}
		return &PutError{ErrArchival, err.Error()}
	}
	// The persister syncs, commits and acks PERSISTED while this connection
	// goes on with the next fragment.
	meta := AppendMeta(nil, &Meta{Samples: f.samples, Tags: f.tags})
	in.persist.add(in.seg, &Pending{Fragment: frag, Meta: meta, Header: in.stored, partial: f.partial}, stats)
	return nil
}

func (in *ingest) persistErr() error {
	if in.persist == nil {
		return nil
	}
	return in.persist.err()
}

// finishSamples turns absolute sample times into times relative to start,
// fills in missing durations and decode times, and returns the fragment
// duration: the span of its first track (the video, when there is video),
// from that track's earliest frame to the end of its last. Audio that a
// muxer puts in the cluster of the next key frame makes fragments overlap
// when measured over all tracks; the first track's span does not, and the
// durations of consecutive fragments add up to the stream's length. Decode order is storage order; with B-frames, decode times are
// the sorted presentation times shifted back just enough that no frame is
// decoded after it is shown.
func finishSamples(samples []Sample, tracks int, start int64) int64 {
	return deriveTimes(samples, tracks, start, nil)
}

// deriveTimes is finishSamples; with settled set, of a fragment still
// arriving: the decode-time shift of track t is taken over its first
// settled[t] samples only (of the last ones, the sorted presentation times
// are not final yet and would overstate it).
func deriveTimes(samples []Sample, tracks int, start int64, settled *[mkv.MaxTracks]int) int64 {
	var first, end int64
	for t := 0; t < tracks; t++ {
		var idx []int
		for i := range samples {
			if int(samples[i].Track) == t {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		pts := make([]int64, len(idx))
		for k, i := range idx {
			pts[k] = samples[i].PTS
		}
		slices.Sort(pts)
		if t == 0 {
			first = pts[0]
		}
		// Fill missing durations from the presentation order.
		var typical int64
		if len(pts) > 1 {
			typical = (pts[len(pts)-1] - pts[0]) / int64(len(pts)-1)
		}
		for _, i := range idx {
			if samples[i].Dur == 0 {
				k, _ := slices.BinarySearch(pts, samples[i].PTS)
				if k+1 < len(pts) && pts[k+1] > pts[k] {
					samples[i].Dur = pts[k+1] - pts[k]
				} else {
					samples[i].Dur = typical
				}
			}
		}
		var shift int64
		for k, i := range idx {
			if settled != nil && k >= settled[t] {
				break
			}
			shift = max(shift, pts[k]-samples[i].PTS)
		}
		for k, i := range idx {
			samples[i].DTS = pts[k] - shift
			if t == 0 {
				end = max(end, samples[i].PTS+samples[i].Dur)
			}
		}
	}
	for i := range samples {
		samples[i].PTS -= start
		samples[i].DTS -= start
	}
	return end - first
}

// fail rejects the fragment in progress and sends an ERROR ack.
func (in *ingest) fail(id int, detail string) error {
	a := Ack{EventType: AckError, ErrorID: id}
	if in.frag != nil {
		a.FragmentTimecode, a.FragmentNumber = in.frag.timecode, in.frag.number
	}
	in.discard()
	pe := &PutError{ID: id, Detail: detail}
	if in.stopping() {
		return nil
	}
	if err := in.ack(a); err != nil {
		return errors.Join(pe, err)
	}
	return pe
}

// discard drops the fragment in progress.
func (in *ingest) discard() {
	if in.frag != nil && in.seg != nil {
		in.seg.Truncate(in.frag.start)
	}
	if in.frag != nil && in.frag.partial != nil {
		in.s.unpublish(in.frag.partial)
	}
	in.frag = nil
	in.slot.busy.Store(false)
}

func (in *ingest) newSegment() error {
	if in.persist != nil && in.seg != nil {
		in.persist.wait() // the old segment is synced before it is closed
	}
	in.closeSegment()
	id, err := in.s.Index.NewSegment(in.st.ID)
	if err != nil {
		return &PutError{ErrArchival, err.Error()}
	}
	w, err := in.s.Payloads.Create(in.st.ID, id)
	if err != nil {
		return &PutError{ErrArchival, err.Error()}
	}
	in.s.mu.Lock()
	in.s.open[id] = true
	in.s.mu.Unlock()
	in.seg, in.segID = w, id
	return nil
}

func (in *ingest) closeSegment() {
	if in.seg == nil {
		return
	}
	in.seg.Close()
	if err := in.s.Index.CloseSegment(in.segID); err != nil {
		in.s.log.Error("close segment", "segment", in.segID, "err", err)
	}
	in.s.mu.Lock()
	delete(in.s.open, in.segID)
	in.s.mu.Unlock()
	in.seg = nil
}
