package sqlindex

import (
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
)

// dataset shapes fragments: unsorted timestamps go back now and then.
type dataset struct {
	name                             string
	n                                int
	serverUnsorted, producerUnsorted bool
}

var datasets = []dataset{
	{name: "sorted", n: 10000},
	{name: "producer-unsorted", n: 3000, producerUnsorted: true},
	{name: "server-unsorted", n: 3000, serverUnsorted: true},
}

const t0 = int64(1795289339000000000)

// randomFragments makes n fragments of about 1 s with random gaps,
// overlaps, equal producer timestamps and header changes.
func randomFragments(rng *rand.Rand, streamID int64, d dataset, firstNumber uint64) []*fragments.Pending {
	var ps []*fragments.Pending
	server, producer := t0, t0-int64(1500*time.Millisecond)
	header := int64(1)
	for i := range d.n {
		dur := int64(900+rng.IntN(200)) * 1e6
		f := &fragments.Fragment{StreamID: streamID, Number: firstNumber + uint64(i), ServerNS: server, ProducerNS: producer,
			DurationNS: dur, Size: int64(rng.IntN(1 << 20)), Timecode: int64(i), SegmentID: int64(i / 100), Offset: int64(i % 100 * 4096)}
		if rng.IntN(50) == 0 {
			header = int64(1 + rng.IntN(4))
		}
		f.HeaderID = header
		ps = append(ps, &fragments.Pending{Fragment: f, Meta: []byte{1, 0, 0}})
		server += dur + int64(rng.IntN(40))*1e6
		switch r := rng.IntN(40); {
		case r == 0:
			producer += dur + int64(rng.IntN(5000))*1e6 // a gap
		case r == 1:
			producer += dur - int64(rng.IntN(200))*1e6 // an overlap
		case r == 2:
			// the same producer timestamp again
		case r == 3 && d.producerUnsorted:
			producer -= int64(rng.IntN(20)) * 1e9
		default:
			producer += dur + int64(rng.IntN(30))*1e6
		}
		if d.serverUnsorted && rng.IntN(100) == 0 {
			server -= int64(rng.IntN(10)) * 1e9
		}
	}
	return ps
}

// openTest opens an index with one stream and commits fragments made for it.
func openTest(t *testing.T, dir string, d dataset, seed uint64) (*Index, *fragments.Stream) {
	t.Helper()
	x, err := Open(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := &fragments.Stream{Name: "s" + strconv.FormatUint(seed, 10), ARN: "arn:s" + strconv.FormatUint(seed, 10), Version: "v", Status: "ACTIVE",
		CreationTime: time.Now(), RetentionHours: 1}
	if err := x.CreateStream(st); err != nil {
		t.Fatal(err)
	}
	ps := randomFragments(rand.New(rand.NewPCG(seed, 7)), st.ID, d, seed<<32)
	for len(ps) > 0 {
		k := min(len(ps), 1000)
		if err := x.Commit(ps[:k]); err != nil {
			t.Fatal(err)
		}
		ps = ps[k:]
	}
	return x, st
}

// brief is f with only the FragmentQuery.Brief fields.
func brief(f fragments.Fragment) fragments.Fragment {
	f.Timecode, f.SegmentID, f.Offset = 0, 0, 0
	return f
}

// fullRows lists the stream's fragments in ordinal order with every field.
func fullRows(t *testing.T, x *Index, id int64) []fragments.Fragment {
	t.Helper()
	all, err := x.Fragments(fragments.FragmentQuery{StreamID: id, By: fragments.ByOrdinal, MinServerNS: -1 << 63, Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// randomQuery picks a query over the rows: random selector, range, resume
// point, retention cutoff and limit.
func randomQuery(rng *rand.Rand, id int64, all []fragments.Fragment) fragments.FragmentQuery {
	q := fragments.FragmentQuery{StreamID: id, By: fragments.Selector(rng.IntN(3)), Limit: []int{0, 1, 5, 100, 5001}[rng.IntN(5)]}
	pick := func() *fragments.Fragment { return &all[rng.IntN(len(all))] }
	ts := func(f *fragments.Fragment) int64 {
		if q.By == fragments.ByProducer {
			return f.ProducerNS
		}
		return f.ServerNS
	}
	q.From, q.To = ts(pick())+int64(rng.IntN(3)-1), ts(pick())+int64(rng.IntN(3)-1)
	if rng.IntN(4) == 0 {
		q.From, q.To = -1<<62, 1<<62
	}
	if q.From > q.To {
		q.From, q.To = q.To, q.From
	}
	q.AfterTS = -1 << 62
	if rng.IntN(2) == 0 {
		f := pick()
		q.AfterTS, q.AfterOrdinal = ts(f), f.Ordinal
	}
	if rng.IntN(2) == 0 {
		q.MinServerNS = pick().ServerNS
	}
	return q
}

// TestBriefQueriesEqualFull checks that Brief queries, from memory where
// the timestamps allow and from SQLite otherwise, return the fields of the
// full query, through loads, commits, expiry and a reopen.
func TestBriefQueriesEqualFull(t *testing.T) {
	for di, d := range datasets {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			x, st := openTest(t, dir, d, uint64(di+1))
			rng := rand.New(rand.NewPCG(uint64(di), 99))
			memory := map[fragments.Selector]int{}
			check := func(stage string, queries int) {
				t.Helper()
				all := fullRows(t, x, st.ID)
				for range queries {
					q := randomQuery(rng, st.ID, all)
					full, err := x.Fragments(q)
					if err != nil {
						t.Fatal(err)
					}
					bq := q
					bq.Brief = true
					got, err := x.Fragments(bq)
					if err != nil {
						t.Fatal(err)
					}
					want := make([]fragments.Fragment, len(full))
					for i := range full {
						want[i] = brief(full[i])
					}
					if !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
						t.Fatalf("%s: %+v: brief query gave %d rows, full %d\nfirst brief %+v\nfirst full  %+v", stage, q, len(got), len(want), first(got), first(want))
					}
					lowTS, lowOrd := q.From, int64(0)
					if q.AfterTS > lowTS || (q.AfterTS == lowTS && q.AfterOrdinal > lowOrd) {
						lowTS, lowOrd = q.AfterTS, q.AfterOrdinal
					}
					if q.By == fragments.ByServer && q.MinServerNS > lowTS {
						lowTS, lowOrd = q.MinServerNS, 0
					}
					if _, ok := x.briefQuery(bq, lowTS, lowOrd); ok {
						memory[q.By]++
					}
				}
			}
			check("before the load", 20) // SQLite answers while the rows load
			x.WaitBriefs()
			check("loaded", 300)
			// Commits reach the rows; expiry drops a prefix.
			more := randomFragments(rand.New(rand.NewPCG(uint64(di), 5)), st.ID, dataset{n: 500}, 1<<40)
			all := fullRows(t, x, st.ID)
			last := all[len(all)-1]
			for i, p := range more {
				p.Fragment.ServerNS += last.ServerNS + int64(i+1)*2e9 - t0
				p.Fragment.ProducerNS += last.ProducerNS + int64(i+1)*2e9 - t0
			}
			if err := x.Commit(more); err != nil {
				t.Fatal(err)
			}
			if _, err := x.Expire(st.ID, all[len(all)/3].ServerNS); err != nil {
				t.Fatal(err)
			}
			check("after commits and expiry", 300)
			x.Close()
			x2, err := Open(filepath.Join(dir, "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer x2.Close()
			x = x2
			x.WaitBriefs()
			check("reopened", 200)
			// Memory answers what its order allows, and only that.
			if memory[fragments.ByOrdinal] == 0 {
				t.Error("no ordinal query was answered from memory")
			}
			if got := memory[fragments.ByServer] > 0; got == d.serverUnsorted {
				t.Errorf("server queries answered from memory: %d (server timestamps unsorted: %v)", memory[fragments.ByServer], d.serverUnsorted)
			}
			if got := memory[fragments.ByProducer] > 0; got == d.producerUnsorted {
				t.Errorf("producer queries answered from memory: %d (producer timestamps unsorted: %v)", memory[fragments.ByProducer], d.producerUnsorted)
			}
		})
	}
}

func first(fs []fragments.Fragment) *fragments.Fragment {
	if len(fs) == 0 {
		return nil
	}
	return &fs[0]
}

// TestBreaksEqualScan checks Index.Breaks, from memory and from SQLite,
// against counting the pairs of a full listing, on random gap patterns.
func TestBreaksEqualScan(t *testing.T) {
	for di, d := range datasets {
		t.Run(d.name, func(t *testing.T) {
			x, st := openTest(t, t.TempDir(), d, uint64(di+10))
			defer x.Close()
			x.WaitBriefs()
			all := fullRows(t, x, st.ID)
			rng := rand.New(rand.NewPCG(uint64(di), 3))
			var breaks int64
			for i := range 400 {
				q := fragments.BreakQuery{StreamID: st.ID, From: all[rng.IntN(len(all))].Ordinal, To: all[rng.IntN(len(all))].Ordinal,
					Gaps: rng.IntN(3) > 0, By: fragments.Selector(rng.IntN(2)), Tolerance: int64(50 * time.Millisecond)}
				if i%4 == 0 {
					q.From, q.To = 1, all[len(all)-1].Ordinal // whole chunks
				}
				if i%8 < 2 {
					q.Gaps, q.Tolerance = true, -1 // every pair is a break
				}
				if q.From > q.To {
					q.From, q.To = q.To, q.From
				}
				if rng.IntN(2) == 0 {
					q.MinServerNS = all[rng.IntN(len(all))].ServerNS
				}
				var want int64
				var prev *fragments.Fragment
				for j := range all {
					f := &all[j]
					if f.Ordinal < q.From || f.Ordinal > q.To || f.ServerNS < q.MinServerNS {
						continue
					}
					if prev != nil && q.IsBreak(prev, f) {
						want++
					}
					prev = f
				}
				got, err := x.Breaks(q)
				if err != nil {
					t.Fatal(err)
				}
				scanned, err := x.scanBreaks(&q)
				if err != nil {
					t.Fatal(err)
				}
				if got != want || scanned != want {
					t.Fatalf("%+v: Breaks %d, scan %d, want %d", q, got, scanned, want)
				}
				breaks += want
			}
			if breaks == 0 {
				t.Fatal("the datasets have no breaks")
			}
		})
	}
}

// TestBriefsFollowDeleteAndNewStreams checks that a deleted stream's rows
// go and a new stream's rows are there from its first commit.
func TestBriefsFollowDeleteAndNewStreams(t *testing.T) {
	x, st := openTest(t, t.TempDir(), dataset{n: 100}, 21)
	defer x.Close()
	x.WaitBriefs()
	if err := x.DeleteStream(st.ID); err != nil {
		t.Fatal(err)
	}
	if x.loadedBriefs(st.ID) != nil {
		t.Fatal("a deleted stream keeps its rows")
	}
	got, err := x.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, Limit: 10, Brief: true})
	if err != nil || len(got) != 0 {
		t.Fatalf("deleted stream: %d rows, %v", len(got), err)
	}
	st2 := &fragments.Stream{Name: "new", ARN: "arn:new", Version: "v", Status: "ACTIVE", CreationTime: time.Now(), RetentionHours: 1}
	if err := x.CreateStream(st2); err != nil {
		t.Fatal(err)
	}
	if err := x.Commit(randomFragments(rand.New(rand.NewPCG(1, 1)), st2.ID, dataset{n: 10}, 1<<50)); err != nil {
		t.Fatal(err)
	}
	q := fragments.FragmentQuery{StreamID: st2.ID, By: fragments.ByServer, From: 0, To: 1 << 62, Limit: 100, Brief: true}
	mem, ok := x.briefQuery(q, 0, 0)
	if !ok || len(mem) != 10 || mem[9].Ordinal != 10 {
		t.Fatalf("new stream from memory: %v, %d rows", ok, len(mem))
	}
}

// TestBriefsLoadDuringExpiry checks what a load does when Expire deletes
// rows meanwhile: rows it read that are gone are dropped at the end, and a
// page that starts past a deleted stretch is fine if Expire said so first
// (else the load starts again).
func TestBriefsLoadDuringExpiry(t *testing.T) {
	s := newStreamBriefs()
	for o := int64(1); o <= 10; o++ {
		if !s.add(&fragments.Fragment{Ordinal: o, ServerNS: o}) {
			t.Fatalf("ordinal %d refused", o)
		}
	}
	if s.add(&fragments.Fragment{Ordinal: 20, ServerNS: 20}) {
		t.Fatal("a row past a gap nobody expired was taken")
	}
	s.expired = 19 // Expire deleted up to 19 while the load ran
	if !s.add(&fragments.Fragment{Ordinal: 20, ServerNS: 20}) || s.first != 20 || s.n != 1 {
		t.Fatalf("after an expired gap: first %d, %d rows", s.first, s.n)
	}
	s.expired = 20
	s.loaded(true)
	if !s.ready || s.n != 0 {
		t.Fatalf("loaded: ready %v, %d rows (want none: all expired)", s.ready, s.n)
	}
	s2 := newStreamBriefs()
	s2.add(&fragments.Fragment{Ordinal: 1})
	s2.loaded(false)
	if s2.ready {
		t.Fatal("rows of a stream deleted during the load are used")
	}
}

// TestBriefsConcurrent runs commits, expiry, reloads, Brief queries and
// break counts at once (for the race detector), then checks that the rows
// in memory equal SQLite's.
func TestBriefsConcurrent(t *testing.T) {
	x, st := openTest(t, t.TempDir(), dataset{n: 2000}, 31)
	defer x.Close()
	all := fullRows(t, x, st.ID)
	last := all[len(all)-1]
	more := randomFragments(rand.New(rand.NewPCG(2, 2)), st.ID, dataset{n: 3000}, 1<<45)
	for i, p := range more {
		p.Fragment.ServerNS += last.ServerNS + int64(i+1)*2e9 - t0
		p.Fragment.ProducerNS += last.ProducerNS + int64(i+1)*2e9 - t0
	}
	done := make(chan struct{})
	errs := make(chan error, 8)
	go func() { // the writer: commits in small batches, expiring now and then
		defer close(done)
		for i := 0; i < len(more); i += 50 {
			if err := x.Commit(more[i : i+50]); err != nil {
				errs <- err
				return
			}
			if i%500 == 0 {
				if _, err := x.Expire(st.ID, all[i/5].ServerNS); err != nil {
					errs <- err
					return
				}
			}
			if i%1000 == 0 {
				x.Reload(st.ID)
			}
		}
	}()
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				q := randomQuery(rng, st.ID, all)
				q.Brief = true
				if _, err := x.Fragments(q); err != nil {
					errs <- err
					return
				}
				if _, err := x.Breaks(fragments.BreakQuery{StreamID: st.ID, From: 1, To: 1 << 40, Gaps: true, Tolerance: 1e6}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	x.WaitBriefs()
	full := fullRows(t, x, st.ID)
	got, err := x.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, MinServerNS: -1 << 63, Limit: 1 << 30, Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := x.briefQuery(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, Limit: 1, Brief: true}, 0, 0); !ok {
		t.Fatal("the rows are not in use after the writes")
	}
	if len(got) != len(full) || len(full) == 0 {
		t.Fatalf("memory has %d rows, SQLite %d", len(got), len(full))
	}
	for i := range full {
		if got[i] != brief(full[i]) {
			t.Fatalf("row %d: memory %+v, SQLite %+v", i, got[i], full[i])
		}
	}
}
