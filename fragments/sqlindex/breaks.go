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
// a binary search, cached counts of the whole chunks and blocks in the
// range, and a walk over at most two partial blocks (see breakBlock);
// without them (not loaded yet, or
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

// breakBlock rows make a block, the unit of cached break counts inside a
// chunk: a count costs at most two partial chunks of blocks and two
// partial blocks of rows beside the whole chunks.
const breakBlock = 256

// breakCounts caches, for one breakKind, the breaks between the rows of
// each full chunk and of each full block (-1: not counted yet), by
// position in s.chunks. Full chunks and blocks never change.
type breakCounts struct {
	chunks, blocks []int64
}

// countBreaks answers q from the rows; the caller holds s.mu (read).
func (s *streamBriefs) countBreaks(q *fragments.BreakQuery) int64 {
	retained := sort.Search(s.n, func(i int) bool { return s.at(i).serverNS >= q.MinServerNS })
	lo := max(q.From, s.first+int64(retained))
	hi := min(q.To, s.first+int64(s.n)-1)
	if hi <= lo {
		return 0
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	k := kindOf(q)
	c := s.counts(k)
	loPos, hiPos := s.off+int(lo-s.first), s.off+int(hi-s.first)
	var n int64
	// p is the position of the later row of each pair.
	for p := loPos + 1; p <= hiPos; {
		switch start := p - 1; {
		case start%briefChunk == 0 && start+briefChunk-1 <= hiPos:
			n += s.chunkBreaks(k, c, start/briefChunk)
			p = start + briefChunk
		case start%breakBlock == 0 && start+breakBlock-1 <= hiPos:
			n += s.blockBreaks(k, c, start/breakBlock)
			p = start + breakBlock
		default:
			if k.isBreak(s.pos(p-1), s.pos(p)) {
				n++
			}
			p++
		}
	}
	return n
}

// pos returns the row at position p of s.chunks.
func (s *streamBriefs) pos(p int) *briefRow { return &s.chunks[p/briefChunk][p%briefChunk] }

// counts returns the cached counts of kind k, as long as s.chunks; the
// caller holds s.cmu.
func (s *streamBriefs) counts(k breakKind) *breakCounts {
	if s.breaks == nil {
		s.breaks = map[breakKind]*breakCounts{}
	}
	c := s.breaks[k]
	if c == nil {
		c = &breakCounts{}
		s.breaks[k] = c
	}
	for len(c.chunks) < len(s.chunks) {
		c.chunks = append(c.chunks, -1)
	}
	for len(c.blocks) < len(s.chunks)*(briefChunk/breakBlock) {
		c.blocks = append(c.blocks, -1)
	}
	return c
}

// chunkBreaks returns the breaks between the rows of full chunk i.
func (s *streamBriefs) chunkBreaks(k breakKind, c *breakCounts, i int) int64 {
	if c.chunks[i] < 0 {
		var n int64
		first := i * briefChunk / breakBlock
		for b := first; b < first+briefChunk/breakBlock; b++ {
			n += s.blockBreaks(k, c, b)
			if b > first && k.isBreak(s.pos(b*breakBlock-1), s.pos(b*breakBlock)) {
				n++
			}
		}
		c.chunks[i] = n
	}
	return c.chunks[i]
}

// blockBreaks returns the breaks between the rows of full block i.
func (s *streamBriefs) blockBreaks(k breakKind, c *breakCounts, i int) int64 {
	if c.blocks[i] < 0 {
		var n int64
		for p := i*breakBlock + 1; p < (i+1)*breakBlock; p++ {
			if k.isBreak(s.pos(p-1), s.pos(p)) {
				n++
			}
		}
		c.blocks[i] = n
	}
	return c.blocks[i]
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
