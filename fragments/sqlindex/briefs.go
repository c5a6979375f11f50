package sqlindex

import (
	"errors"
	"math"
	"sort"
	"sync"

	"github.com/kvsgate/kvsgate/fragments"
)

// A stream's brief rows are an in-memory copy of the FragmentQuery.Brief
// columns of its fragments, in ordinal order, 40 bytes a fragment: a
// 5000-fragment playlist window is a binary search and a copy instead of
// 5000 SQLite rows (about 3 ms on the 2-core test machine,
// docs/PERFORMANCE.md). They live outside the Go heap (chunk_unix.go). They
// are loaded in the background when the index opens (or a stream is first
// asked for after a failed load; until the load ends SQLite answers), kept
// up to date by Commit, Expire and DeleteStream, and used for a timestamp
// selector only while that timestamp never decreases from one ordinal to
// the next (then timestamp order is ordinal order, and a range is a slice
// of ordinals).
type briefRow struct {
	number     uint64
	producerNS int64
	serverNS   int64
	durationNS int64
	size       uint32
	headerID   uint32
}

// briefChunk rows make a chunk: appending never copies older rows, and
// expiry drops whole chunks.
const briefChunk = 4096

// briefLoadPage is how many rows the loader reads per query.
const briefLoadPage = 20000

// streamBriefs are one stream's brief rows.
type streamBriefs struct {
	mu     sync.RWMutex
	ready  bool  // loaded: queries may use it
	failed bool  // given up (a value does not fit a briefRow, or released): never used
	first  int64 // ordinal of the first row
	off    int   // position of the first row in chunks[0]
	n      int
	chunks [][]briefRow
	// Whether the timestamps never decrease with the ordinal.
	serverSorted, producerSorted bool
	// expired: Expire deleted the ordinals up to this one.
	expired int64
	// breaks caches break counts per chunk and block (breaks.go), under cmu.
	cmu    sync.Mutex
	breaks map[breakKind]*breakCounts
}

func newStreamBriefs() *streamBriefs {
	return &streamBriefs{serverSorted: true, producerSorted: true}
}

// at returns row i (0 is the first).
func (s *streamBriefs) at(i int) *briefRow { return s.pos(s.off + i) }

// add appends the fragment with the next ordinal. It reports false if f
// does not have it.
func (s *streamBriefs) add(f *fragments.Fragment) bool {
	if s.failed {
		return true
	}
	if f.Size < 0 || f.Size > math.MaxUint32 || f.HeaderID < 0 || f.HeaderID > math.MaxUint32 {
		s.fail() // never used: SQLite answers
		return true
	}
	if next := s.first + int64(s.n); s.n > 0 && f.Ordinal != next {
		if f.Ordinal < next || f.Ordinal-1 > s.expired {
			return false
		}
		s.trim(f.Ordinal - 1) // the ordinals between were expired
	}
	r := briefRow{number: f.Number, producerNS: f.ProducerNS, serverNS: f.ServerNS, durationNS: f.DurationNS,
		size: uint32(f.Size), headerID: uint32(f.HeaderID)}
	if s.n == 0 {
		s.freeAll()
		s.first, s.off = f.Ordinal, 0
	} else {
		last := s.at(s.n - 1)
		s.serverSorted = s.serverSorted && r.serverNS >= last.serverNS
		s.producerSorted = s.producerSorted && r.producerNS >= last.producerNS
	}
	if p := s.off + s.n; p/briefChunk == len(s.chunks) {
		c, err := newChunk()
		if err != nil {
			s.fail()
			return true
		}
		s.chunks = append(s.chunks, c)
	}
	c := &s.chunks[len(s.chunks)-1]
	*c = append(*c, r)
	s.n++
	return true
}

// fail gives the rows up for good: SQLite answers for the stream.
func (s *streamBriefs) fail() {
	s.failed, s.n = true, 0
	s.freeAll()
}

// freeAll releases every chunk.
func (s *streamBriefs) freeAll() {
	for _, c := range s.chunks {
		freeChunk(c)
	}
	s.off, s.chunks, s.breaks = 0, nil, nil
}

// trim drops the rows with ordinals up to ord.
func (s *streamBriefs) trim(ord int64) {
	k := int(min(max(ord-s.first+1, 0), int64(s.n)))
	if k == 0 {
		return
	}
	s.first += int64(k)
	s.off += k
	s.n -= k
	for s.off >= briefChunk {
		freeChunk(s.chunks[0])
		s.chunks[0] = nil
		s.chunks = s.chunks[1:]
		s.off -= briefChunk
		for _, c := range s.breaks {
			c.chunks = c.chunks[min(1, len(c.chunks)):]
			c.blocks = c.blocks[min(briefChunk/breakBlock, len(c.blocks)):]
		}
	}
	if s.n == 0 {
		s.freeAll()
	}
}

// fragment returns row i as a Brief fragment of stream id.
func (s *streamBriefs) fragment(id int64, i int) fragments.Fragment {
	r := s.at(i)
	return fragments.Fragment{StreamID: id, Ordinal: s.first + int64(i), Number: r.number, ProducerNS: r.producerNS,
		ServerNS: r.serverNS, DurationNS: r.durationNS, Size: int64(r.size), HeaderID: int64(r.headerID)}
}

// query answers a Brief FragmentQuery as the SQL of Fragments does, or
// reports false if these rows cannot (the selected timestamp is not in
// ordinal order).
func (s *streamBriefs) query(q fragments.FragmentQuery, lowTS, lowOrd int64) ([]fragments.Fragment, bool) {
	limit := q.Limit
	if limit < 0 {
		limit = math.MaxInt // SQLite: a negative LIMIT is none
	}
	var start int
	var ts func(*briefRow) int64
	switch q.By {
	case fragments.ByOrdinal:
		start = int(min(max(q.AfterOrdinal+1-s.first, 0), int64(s.n)))
		if s.serverSorted {
			start = max(start, sort.Search(s.n, func(i int) bool { return s.at(i).serverNS >= q.MinServerNS }))
		}
	case fragments.ByProducer:
		if !s.producerSorted {
			return nil, false
		}
		ts = func(r *briefRow) int64 { return r.producerNS }
	default:
		if !s.serverSorted {
			return nil, false
		}
		ts = func(r *briefRow) int64 { return r.serverNS }
	}
	if ts != nil {
		// The first row after (lowTS, lowOrd) in (timestamp, ordinal) order.
		start = sort.Search(s.n, func(i int) bool {
			t := ts(s.at(i))
			return t > lowTS || (t == lowTS && s.first+int64(i) > lowOrd)
		})
	}
	out := make([]fragments.Fragment, 0, max(0, min(limit, s.n-start, 8192)))
	for i := start; i < s.n && len(out) < limit; i++ {
		r := s.at(i)
		if ts != nil && ts(r) > q.To {
			break
		}
		if q.By != fragments.ByServer && r.serverNS < q.MinServerNS {
			continue
		}
		out = append(out, s.fragment(q.StreamID, i))
	}
	return out, true
}

// loadAllBriefs starts loading the brief rows of every stream, one stream
// at a time, in the background.
func (x *Index) loadAllBriefs() error {
	rows, err := x.r.Query(`SELECT id FROM streams ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		x.streamBriefs(id)
	}
	return rows.Err()
}

// WaitBriefs waits until the brief rows being loaded are loaded (or failed
// to load). Queries do not need to: until then SQLite answers them.
func (x *Index) WaitBriefs() { x.loads.Wait() }

// Reload reloads a stream's in-memory rows from the database, for tools
// (tests) that change fragment rows behind the index's back.
func (x *Index) Reload(id int64) {
	x.releaseBriefs(id)
	x.streamBriefs(id)
	x.WaitBriefs()
}

// newBriefs starts the (empty) brief rows of a new stream.
func (x *Index) newBriefs(id int64) {
	s := newStreamBriefs()
	s.ready = true
	x.bmu.Lock()
	x.briefs[id] = s
	x.bmu.Unlock()
}

// briefQuery answers a Brief query from memory if the stream's rows are
// loaded and can; the first Brief query of a stream starts the load.
func (x *Index) briefQuery(q fragments.FragmentQuery, lowTS, lowOrd int64) ([]fragments.Fragment, bool) {
	s := x.streamBriefs(q.StreamID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.ready || s.failed {
		return nil, false
	}
	return s.query(q, lowTS, lowOrd)
}

// streamBriefs returns the stream's brief rows, starting their load if
// this is the first ask.
func (x *Index) streamBriefs(id int64) *streamBriefs {
	x.bmu.Lock()
	defer x.bmu.Unlock()
	s := x.briefs[id]
	if s == nil {
		s = newStreamBriefs()
		x.briefs[id] = s
		x.loads.Add(1)
		go x.loadBriefs(id, s)
	}
	return s
}

// loadBriefs reads a stream's rows into s. The last page is read with
// Commit held off, so that every later commit finds s ready and adds to it.
func (x *Index) loadBriefs(id int64, s *streamBriefs) {
	defer x.loads.Done()
	x.loadOne.Lock() // one load at a time
	defer x.loadOne.Unlock()
	after := int64(0)
	rows := make([]fragments.Fragment, 0, briefLoadPage)
	read := func() (int, error) {
		c, err := x.raw.get()
		if err != nil {
			return 0, err
		}
		rows = rows[:0]
		err = c.query(`SELECT `+briefCols+` FROM fragments WHERE stream_id = ? AND ordinal > ? ORDER BY ordinal LIMIT ?`,
			[]int64{id, after, briefLoadPage}, func(col func(int) int64) {
				rows = append(rows, fragments.Fragment{Ordinal: col(0), Number: uint64(col(1)), ProducerNS: col(2), ServerNS: col(3),
					DurationNS: col(4), Size: col(5), HeaderID: col(6)})
			})
		x.raw.put(c, err != nil)
		s.mu.Lock()
		for i := range rows {
			if err == nil && !s.add(&rows[i]) {
				// Expire deleted rows between two pages and has not
				// told s yet: start again later.
				err = errors.New("sqlindex: rows expired during the load")
			}
		}
		s.mu.Unlock()
		if len(rows) > 0 {
			after = rows[len(rows)-1].Ordinal
		}
		return len(rows), err
	}
	readAll := func() error {
		for {
			if n, err := read(); err != nil || n < briefLoadPage {
				return err
			}
		}
	}
	if err := readAll(); err != nil {
		x.dropBriefs(id, s)
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := readAll(); err != nil {
		x.dropBriefs(id, s)
		return
	}
	x.bmu.Lock()
	defer x.bmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded(x.briefs[id] == s) // not if the stream was deleted meanwhile
}

// loaded ends a load: rows Expire deleted meanwhile go, and s is ready if
// the stream still exists. The caller holds s.mu.
func (s *streamBriefs) loaded(exists bool) {
	s.trim(s.expired)
	s.ready = exists
}

// dropBriefs forgets a stream's rows (a failed load: the next query tries again).
func (x *Index) dropBriefs(id int64, s *streamBriefs) {
	x.bmu.Lock()
	if x.briefs[id] == s {
		delete(x.briefs, id)
	}
	x.bmu.Unlock()
	s.release()
}

// release frees the rows of a stream state no longer in x.briefs.
func (s *streamBriefs) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail()
}

// releaseBriefs forgets the rows of stream id.
func (x *Index) releaseBriefs(id int64) {
	x.bmu.Lock()
	s := x.briefs[id]
	delete(x.briefs, id)
	x.bmu.Unlock()
	if s != nil {
		s.release()
	}
}

// loadedBriefs returns the stream's brief rows if they exist (loaded or loading).
func (x *Index) loadedBriefs(id int64) *streamBriefs {
	x.bmu.Lock()
	defer x.bmu.Unlock()
	return x.briefs[id]
}

// addBriefs adds committed fragments to the rows of their streams. The
// caller holds x.mu (Commit).
func (x *Index) addBriefs(batch []*fragments.Pending) {
	for _, p := range batch {
		s := x.loadedBriefs(p.Fragment.StreamID)
		if s == nil {
			continue
		}
		s.mu.Lock()
		if s.ready && !s.add(p.Fragment) {
			s.fail() // cannot happen: ordinals are dense
		}
		s.mu.Unlock()
	}
}

// expireBriefs drops the rows with ordinals up to ord.
func (x *Index) expireBriefs(id, ord int64) {
	s := x.loadedBriefs(id)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expired = max(s.expired, ord)
	if s.ready {
		s.trim(ord)
	}
}
