package session

import (
	"time"

	"github.com/kvsgate/kvsgate/fragments"
)

// GapTolerance is how far apart (gap or overlap) two fragments' timestamps
// may be before DiscontinuityMode ON_DISCONTINUITY marks a discontinuity.
const GapTolerance = 50 * time.Millisecond

// Entry is one fragment in a session's window. Its Fragment has the fields
// of a FragmentQuery.Brief: Timecode, SegmentID and Offset may be zero.
type Entry struct {
	fragments.Fragment
	// StartNS is the fragment's timestamp in the session's timestamp source.
	StartNS int64
	// Discontinuity: a discontinuity comes before this fragment (by the
	// session's DiscontinuityMode, or because the track header changed).
	// Never set on the first entry: that one is counted in
	// Window.DiscontinuitySequence instead.
	Discontinuity bool
	// HeaderChange: the track header differs from the previous fragment's.
	HeaderChange bool
}

// Window is what a playlist or manifest shows at one moment.
type Window struct {
	Entries []Entry
	// MediaSequence is the sequence number of the first entry; each next
	// entry is one more. Stable across reloads.
	MediaSequence int64
	// DiscontinuitySequence counts the discontinuities before (and at) the
	// first entry since the session's beginning.
	DiscontinuitySequence int64
	// Ended: no fragment will be added (ON_DEMAND, or LIVE_REPLAY past its range).
	Ended bool
}

func (s *Session) selector() fragments.Selector {
	if s.Producer {
		return fragments.ByProducer
	}
	return fragments.ByServer
}

func (s *Session) start(f *fragments.Fragment) int64 {
	if s.Producer {
		return f.ProducerNS
	}
	return f.ServerNS
}

// discontinuous reports whether cur follows prev with a discontinuity.
func (s *Session) discontinuous(prev, cur *Entry) bool {
	if prev.HeaderID != cur.HeaderID {
		return true
	}
	switch s.Discontinuity {
	case DiscontinuityAlways:
		return true
	case DiscontinuityNever:
		return false
	}
	return fragments.Gap(&prev.Fragment, &cur.Fragment, s.selector(), int64(GapTolerance))
}

// Discontinuous reports whether a fragment cur that follows prev in a
// window comes with a discontinuity (by the DiscontinuityMode, or a new
// track header).
func (s *Session) Discontinuous(prev, cur *Entry) bool { return s.discontinuous(prev, cur) }

// link sets the flags of entries that follow prev (nil for none).
func (s *Session) link(prev *Entry, entries []Entry) {
	for i := range entries {
		cur := &entries[i]
		if prev != nil {
			cur.HeaderChange = prev.HeaderID != cur.HeaderID
			cur.Discontinuity = s.discontinuous(prev, cur)
		}
		prev = cur
	}
}

// Compute returns the session's window at now.
func (s *Session) Compute(idx fragments.Index, st *fragments.Stream, now time.Time) (*Window, error) {
	switch s.Mode {
	case OnDemand:
		return s.onDemand(idx, st, now)
	case LiveReplay:
		return s.liveReplay(idx, st, now)
	}
	return s.live(idx, st, now)
}

// rangeList lists up to limit fragments of the session's range in order of
// its timestamp, starting after (afterTS, afterOrd). With producer
// timestamps, of fragments with the same timestamp only the newest is kept.
func (s *Session) rangeList(idx fragments.Index, st *fragments.Stream, now time.Time, limit int) ([]Entry, bool, error) {
	end := int64(1<<63 - 1)
	if s.HasEnd {
		end = s.EndNS
	}
	afterTS, afterOrd := int64(-1<<62), int64(0)
	// One query for the whole list in the common case (a duplicate
	// producer timestamp or two may need another).
	pageSize := min(limit+1, 5001)
	out := make([]Entry, 0, pageSize)
	for len(out) < limit {
		page, err := idx.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: s.selector(), From: s.StartNS, To: end,
			AfterTS: afterTS, AfterOrdinal: afterOrd, MinServerNS: st.Cutoff(now), Limit: pageSize, Brief: true})
		if err != nil {
			return nil, false, err
		}
		for _, f := range page {
			e := Entry{Fragment: f, StartNS: s.start(&f)}
			if n := len(out); s.Producer && n > 0 && out[n-1].StartNS == e.StartNS {
				out[n-1] = e // the newest of equal producer timestamps
				continue
			}
			if len(out) == limit {
				return out, false, nil
			}
			out = append(out, e)
		}
		if len(page) < pageSize {
			return out, true, nil
		}
		last := page[len(page)-1]
		afterTS, afterOrd = s.start(&last), last.Ordinal
	}
	return out, false, nil
}

func (s *Session) onDemand(idx fragments.Index, st *fragments.Stream, now time.Time) (*Window, error) {
	entries, _, err := s.rangeList(idx, st, now, s.MaxResults)
	if err != nil {
		return nil, err
	}
	s.link(nil, entries)
	w := &Window{Entries: entries, Ended: true}
	if len(entries) > 0 {
		w.MediaSequence = entries[0].Ordinal
	}
	return w, nil
}

// liveReplay plays the range from its start as if live: a fragment is
// listed once its predecessors' durations have elapsed since the session
// began.
func (s *Session) liveReplay(idx fragments.Index, st *fragments.Stream, now time.Time) (*Window, error) {
	elapsed := now.UnixNano() - s.CreatedNS
	all, exhausted, err := s.rangeList(idx, st, now, 1<<30)
	if err != nil {
		return nil, err
	}
	var played int64
	n := 0
	for n < len(all) && played <= elapsed {
		played += all[n].DurationNS
		n++
	}
	included := all[:n]
	s.link(nil, included)
	first := max(0, n-s.MaxResults)
	w := &Window{Entries: included[first:], MediaSequence: int64(first), Ended: s.HasEnd && exhausted && n == len(all)}
	w.DiscontinuitySequence = countDiscontinuities(included[:first+min(1, len(included)-first)])
	if len(w.Entries) > 0 {
		w.Entries[0].Discontinuity = false
	}
	return w, nil
}

// countDiscontinuities counts the discontinuity flags of entries.
func countDiscontinuities(entries []Entry) int64 {
	var n int64
	for i := range entries {
		if entries[i].Discontinuity {
			n++
		}
	}
	return n
}

// live lists the newest fragments, in ingest order. With producer
// timestamps a fragment that is not newer than one listed before it is
// left out, so nothing older than the newest listed fragment appears later.
func (s *Session) live(idx fragments.Index, st *fragments.Stream, now time.Time) (*Window, error) {
	last, err := idx.LastOrdinal(st.ID)
	if err != nil {
		return nil, err
	}
	from := max(s.BaseOrdinal-1, last-int64(2*s.MaxResults)-1, 0)
	frags, err := idx.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, AfterOrdinal: from,
		MinServerNS: st.Cutoff(now), Limit: 2*s.MaxResults + 2, Brief: true})
	if err != nil {
		return nil, err
	}
	var list []Entry
	for _, f := range frags {
		e := Entry{Fragment: f, StartNS: s.start(&f)}
		if n := len(list); s.Producer && n > 0 && e.StartNS <= list[n-1].StartNS {
			if e.StartNS == list[n-1].StartNS {
				list[n-1] = e
			}
			continue
		}
		list = append(list, e)
	}
	s.link(nil, list)
	first := max(0, len(list)-s.MaxResults)
	w := &Window{Entries: list[first:]}
	if len(w.Entries) == 0 {
		return w, nil
	}
	w.MediaSequence = w.Entries[0].Ordinal
	if s.Discontinuity == DiscontinuityAlways {
		w.DiscontinuitySequence = w.MediaSequence
	} else {
		ds, err := s.discontinuitiesSince(idx, st, now, w.Entries[0].Ordinal)
		if err != nil {
			return nil, err
		}
		w.DiscontinuitySequence = ds
	}
	w.Entries[0].Discontinuity = false
	return w, nil
}

// discontinuitiesSince counts discontinuities between the session's base
// and the fragment with ordinal upTo (inclusive), for LIVE sessions. The
// index counts them (fragments.Index.Breaks) in time that does not grow
// with the session's age.
func (s *Session) discontinuitiesSince(idx fragments.Index, st *fragments.Stream, now time.Time, upTo int64) (int64, error) {
	return idx.Breaks(s.breakQuery(st, now, max(s.BaseOrdinal, 1), upTo))
}

// breakQuery is the fragments.BreakQuery of the session's discontinuities
// between the fragments with ordinals from and to.
func (s *Session) breakQuery(st *fragments.Stream, now time.Time, from, to int64) fragments.BreakQuery {
	return fragments.BreakQuery{StreamID: st.ID, From: from, To: to, MinServerNS: st.Cutoff(now),
		Gaps: s.Discontinuity == DiscontinuityOnGap, By: s.selector(), Tolerance: int64(GapTolerance)}
}
