package fragments

import (
	"io"
	"sync"
)

// Live fragments: readers that tail a stream (GetMedia) wait on a stream's
// wake channel, which is closed (and replaced) whenever a fragment becomes
// readable: on PERSISTED for streams that keep data, on RECEIVED for streams
// without retention. For the latter the hub also keeps the last few
// fragments in memory, since nothing is archived.

// liveKeep is how many recent fragments of a stream without retention stay
// in memory for readers that are a little behind.
const liveKeep = 16

// LiveFragment is a fragment of a stream without retention, held in memory.
type LiveFragment struct {
	Seq      int64 // per-stream sequence, from 1
	Fragment Fragment
	Header   *Header
	Meta     *Meta
	Payload  []byte
}

type liveFeed struct {
	wake   chan struct{}
	seq    int64
	recent []*LiveFragment
}

type liveHub struct {
	mu    sync.Mutex
	feeds map[int64]*liveFeed
}

func (h *liveHub) feed(streamID int64) *liveFeed {
	if h.feeds == nil {
		h.feeds = map[int64]*liveFeed{}
	}
	f := h.feeds[streamID]
	if f == nil {
		f = &liveFeed{wake: make(chan struct{})}
		h.feeds[streamID] = f
	}
	return f
}

// Wake returns a channel closed when the stream next gets a readable
// fragment. Take it before looking for fragments, so none is missed.
func (s *Store) Wake(streamID int64) <-chan struct{} {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return s.live.feed(streamID).wake
}

// notify wakes the stream's readers; lf (streams without retention) is kept
// in memory for them.
func (s *Store) notify(streamID int64, lf *LiveFragment) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	f := s.live.feed(streamID)
	if lf != nil {
		f.seq++
		lf.Seq = f.seq
		f.recent = append(f.recent, lf)
		if len(f.recent) > liveKeep {
			f.recent = append(f.recent[:0], f.recent[len(f.recent)-liveKeep:]...)
		}
	}
	close(f.wake)
	f.wake = make(chan struct{})
}

// LiveAfter returns the in-memory fragments of a stream without retention
// whose Seq is after seq, and the newest Seq.
func (s *Store) LiveAfter(streamID, seq int64) ([]*LiveFragment, int64) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	f := s.live.feed(streamID)
	var out []*LiveFragment
	for _, lf := range f.recent {
		if lf.Seq > seq {
			out = append(out, lf)
		}
	}
	return out, f.seq
}

// Ingesting reports whether a PutMedia connection is open on the stream.
func (s *Store) Ingesting(streamID int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putters[streamID] != nil
}

// OpenFragment returns a reader of a stored fragment's payload (its Cluster
// as received). Close it when done.
func (s *Store) OpenFragment(f *Fragment) (*FragmentReader, error) {
	seg, err := s.Payloads.Open(f.StreamID, f.SegmentID)
	if err != nil {
		return nil, err
	}
	return &FragmentReader{SectionReader: io.NewSectionReader(seg, f.Offset, f.Size), seg: seg}, nil
}

// FragmentReader reads one fragment's payload.
type FragmentReader struct {
	*io.SectionReader
	seg SegmentReader
}

// Close closes the segment.
func (r *FragmentReader) Close() error { return r.seg.Close() }
