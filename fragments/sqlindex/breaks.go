package sqlindex

import (
	"sort"

	"github.com/kvsgate/kvsgate/fragments"
)

// breakKind is what a BreakQuery counts as a break.
type breakKind struct {
	gaps bool
	by   fragments.Selector
	tol  int64
}

func kindOf(q *fragments.BreakQuery) breakKind {
	if !q.Gaps {
		return breakKind{}
	}
	return breakKind{gaps: true, by: q.By, tol: q.Tolerance}
}

// isBreak is q.IsBreak on brief rows.
func (k breakKind) isBreak(prev, cur *briefRow) bool {
	if prev.headerID != cur.headerID {
		return true
	}
	if !k.gaps {
		return false
	}
	p := fragments.Fragment{ServerNS: prev.serverNS, ProducerNS: prev.producerNS, DurationNS: prev.durationNS}
	c := fragments.Fragment{ServerNS: cur.serverNS, ProducerNS: cur.producerNS}
	return fragments.Gap(&p, &c, k.by, k.tol)
}

// Breaks implements fragments.Index. From the stream's brief rows it costs
// a binary search, a walk over at most two partial chunks and one cached
// count per whole chunk in between; without them (not loaded yet, or
// server timestamps out of ordinal order, so that the retained fragments
// need not be a range of ordinals) it scans the index.
func (x *Index) Breaks(q fragments.BreakQuery) (int64, error) {
	if q.To <= q.From {
		return 0, nil
	}
	s := x.streamBriefs(q.StreamID)
	s.mu.RLock()
	if s.ready && !s.failed && s.serverSorted {
		n := s.countBreaks(&q)
		s.mu.RUnlock()
		return n, nil
	}
	s.mu.RUnlock()
	return x.scanBreaks(&q)
}

// countBreaks answers q from the rows; the caller holds s.mu (read).
func (s *streamBriefs) countBreaks(q *fragments.BreakQuery) int64 {
	retained := sort.Search(s.n, func(i int) bool { return s.at(i).serverNS >= q.MinServerNS })
	lo := max(q.From, s.first+int64(retained))
	hi := min(q.To, s.first+int64(s.n)-1)
	if hi <= lo {
		return 0
	}
	k := kindOf(q)
	row := func(p int) *briefRow { return &s.chunks[p/briefChunk][p%briefChunk] }
	loPos, hiPos := s.off+int(lo-s.first), s.off+int(hi-s.first)
	var n int64
	// p is the position of the later fragment of each pair.
	for p := loPos + 1; p <= hiPos; {
		if start := p - 1; start%briefChunk == 0 && start+briefChunk-1 <= hiPos {
			n += s.chunkBreaks(k, start/briefChunk)
			p = start + briefChunk
			continue
		}
		if k.isBreak(row(p-1), row(p)) {
			n++
		}
		p++
	}
	return n
}

// chunkBreaks returns the breaks between the rows of the full chunk c,
// counted once per kind. Full chunks never change; the caller holds s.mu
// (read), and the count cache has its own lock.
func (s *streamBriefs) chunkBreaks(k breakKind, c int) int64 {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.breaks == nil {
		s.breaks = map[breakKind][]int64{}
	}
	counts := s.breaks[k]
	for len(counts) < len(s.chunks) {
		counts = append(counts, -1)
	}
	s.breaks[k] = counts
	if counts[c] < 0 {
		rows := s.chunks[c]
		var n int64
		for i := 1; i < len(rows); i++ {
			if k.isBreak(&rows[i-1], &rows[i]) {
				n++
			}
		}
		counts[c] = n
	}
	return counts[c]
}

// scanBreaks answers q from SQLite, a page of rows at a time.
func (x *Index) scanBreaks(q *fragments.BreakQuery) (int64, error) {
	const page = 5000
	var n int64
	var prev fragments.Fragment
	havePrev := false
	after := q.From - 1
	for {
		c, err := x.raw.get()
		if err != nil {
			return 0, err
		}
		rows := 0
		err = c.query(`SELECT `+briefCols+` FROM fragments WHERE stream_id = ? AND ordinal > ? AND ordinal <= ? AND server_ns >= ? ORDER BY ordinal LIMIT ?`,
			[]int64{q.StreamID, after, q.To, q.MinServerNS, page}, func(col func(int) int64) {
				cur := fragments.Fragment{Ordinal: col(0), ProducerNS: col(2), ServerNS: col(3), DurationNS: col(4), HeaderID: col(6)}
				if havePrev && q.IsBreak(&prev, &cur) {
					n++
				}
				prev, havePrev = cur, true
				after = cur.Ordinal
				rows++
			})
		x.raw.put(c, err != nil)
		if err != nil || rows < page {
			return n, err
		}
	}
}
