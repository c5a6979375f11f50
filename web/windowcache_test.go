package web

import (
	"slices"
	"testing"

	"github.com/kvsgate/kvsgate/fragments"
)

// fakeRows is an index of one stream's fragments (ordinal i has server
// time i), counting Fragments queries.
type fakeRows struct {
	fragments.Index
	rows    []fragments.Fragment
	queries int
}

func (f *fakeRows) LastOrdinal(int64) (int64, error) { return int64(len(f.rows)), nil }

func (f *fakeRows) Fragments(q fragments.FragmentQuery) ([]fragments.Fragment, error) {
	f.queries++
	var out []fragments.Fragment
	for _, r := range f.rows {
		if r.Ordinal > q.AfterOrdinal && r.ServerNS >= q.MinServerNS && len(out) < q.Limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeRows) commit() {
	n := int64(len(f.rows) + 1)
	f.rows = append(f.rows, fragments.Fragment{StreamID: 1, Ordinal: n, ServerNS: n})
}

func TestWindowIndex(t *testing.T) {
	idx := &fakeRows{}
	for i := 0; i < 20; i++ {
		idx.commit()
	}
	w := windowIndex{Index: idx, c: &windowCache{}}
	ask := func(after int64, limit int, minServer int64) []int64 {
		t.Helper()
		got, err := w.Fragments(fragments.FragmentQuery{StreamID: 1, By: fragments.ByOrdinal, AfterOrdinal: after, MinServerNS: minServer, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := idx.Fragments(fragments.FragmentQuery{StreamID: 1, By: fragments.ByOrdinal, AfterOrdinal: after, MinServerNS: minServer, Limit: limit})
		idx.queries--
		if !slices.Equal(got, want) {
			t.Fatalf("after %d limit %d cutoff %d: %v, want %v", after, limit, minServer, got, want)
		}
		var ords []int64
		for _, f := range got {
			ords = append(ords, f.Ordinal)
		}
		return ords
	}
	check := func(queries int) {
		t.Helper()
		if idx.queries != queries {
			t.Fatalf("%d index queries, want %d", idx.queries, queries)
		}
	}
	ask(9, 12, 0) // rows 10..20: reaches the newest, kept
	ask(9, 12, 0)
	check(1)
	ask(9, 12, 15) // a later cutoff: from the kept rows
	check(1)
	ask(9, 12, 15)
	ask(9, 12, 0) // the kept rows were queried with cutoff 0: still exact
	check(1)
	ask(0, 5, 0) // does not reach the newest: never kept
	ask(0, 5, 0)
	check(3)
	idx.commit() // a new newest fragment: queried again
	ask(9, 12, 0)
	check(4)
	ask(9, 12, 0)
	check(4)
	// A cutoff earlier than the kept one's is queried.
	ask(15, 12, 18)
	ask(15, 12, 17)
	check(6)
	// Other selectors and big windows go to the index.
	w.Fragments(fragments.FragmentQuery{StreamID: 1, By: fragments.ByServer, Limit: 12})
	w.Fragments(fragments.FragmentQuery{StreamID: 1, By: fragments.ByServer, Limit: 12})
	ask(0, windowCacheMaxRows+1, 0)
	ask(0, windowCacheMaxRows+1, 0)
	check(10)
	// What is returned is the caller's own.
	got, _ := w.Fragments(fragments.FragmentQuery{StreamID: 1, By: fragments.ByOrdinal, AfterOrdinal: 9, Limit: 12})
	got[0].Ordinal = 99
	if ask(9, 12, 0)[0] != 10 {
		t.Fatal("the cache shares its rows")
	}
}
