package session_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/sqlindex"
	"github.com/kvsgate/kvsgate/session"
)

// scanIndex counts breaks the way LIVE windows did before Index.Breaks: a
// walk over every fragment from the session's base. It is the reference of
// TestLiveDiscontinuitySequence and the baseline of
// BenchmarkLiveReloadOldSession.
type scanIndex struct{ fragments.Index }

func (x scanIndex) Breaks(q fragments.BreakQuery) (int64, error) {
	var n int64
	var prev *fragments.Fragment
	after := q.From - 1
	for after < q.To {
		page, err := x.Fragments(fragments.FragmentQuery{StreamID: q.StreamID, By: fragments.ByOrdinal, AfterOrdinal: after,
			MinServerNS: q.MinServerNS, Limit: 1000, Brief: true})
		if err != nil || len(page) == 0 {
			return n, err
		}
		for i := range page {
			if page[i].Ordinal > q.To {
				return n, nil
			}
			if prev != nil && q.IsBreak(prev, &page[i]) {
				n++
			}
			prev = &page[i]
		}
		after = page[len(page)-1].Ordinal
	}
	return n, nil
}

// oldStream commits n one-second fragments with random gaps, overlaps and
// header changes, ending now.
func oldStream(tb testing.TB, n int, seed uint64) (*sqlindex.Index, *fragments.Stream) {
	tb.Helper()
	idx, err := sqlindex.Open(filepath.Join(tb.TempDir(), "index.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { idx.Close() })
	st := &fragments.Stream{Name: "old", ARN: "arn:old", Version: "v", Status: "ACTIVE", CreationTime: time.Now(), RetentionHours: 24 * 365}
	if err := idx.CreateStream(st); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	at := time.Now().Add(-time.Duration(2*n) * time.Second).UnixNano()
	header := int64(1)
	var ps []*fragments.Pending
	for i := range n {
		if rng.IntN(200) == 0 {
			header++
		}
		producer := at - int64(1500*time.Millisecond)
		ps = append(ps, &fragments.Pending{Fragment: &fragments.Fragment{StreamID: st.ID, Number: uint64(1000 + i), ServerNS: at,
			ProducerNS: producer, DurationNS: 1e9, Size: 1000, HeaderID: header}, Meta: []byte{1, 0, 0}})
		at += 1e9
		switch rng.IntN(30) {
		case 0:
			at += int64(rng.IntN(3000)) * 1e6
		case 1:
			at -= int64(rng.IntN(200)) * 1e6
		}
		if len(ps) == 5000 || i == n-1 {
			if err := idx.Commit(ps); err != nil {
				tb.Fatal(err)
			}
			ps = ps[:0]
		}
	}
	return idx, st
}

// TestLiveDiscontinuitySequence checks LIVE windows' discontinuity
// sequences (Index.Breaks) against the walk from the session's base, for
// sessions of every age on a stream of random gaps and header changes.
func TestLiveDiscontinuitySequence(t *testing.T) {
	idx, st := oldStream(t, 12000, 3)
	now := time.Now()
	// The flags of a listing of the whole stream (ingest order is
	// timestamp order here): the discontinuity sequence of a window whose
	// first fragment is f counts those after the base up to f.
	flags := map[bool]map[session.Discontinuity][]session.Entry{}
	for _, producer := range []bool{false, true} {
		flags[producer] = map[session.Discontinuity][]session.Entry{}
		for _, mode := range []session.Discontinuity{session.DiscontinuityNever, session.DiscontinuityOnGap} {
			all, err := (&session.Session{Mode: session.OnDemand, Discontinuity: mode, Producer: producer, EndNS: 1 << 62, HasEnd: true, MaxResults: 1 << 20}).Compute(idx, st, now)
			if err != nil || len(all.Entries) != 12000 {
				t.Fatalf("listing: %v", err)
			}
			flags[producer][mode] = all.Entries
		}
	}
	check := func(stage string) {
		rng := rand.New(rand.NewPCG(5, 5))
		for i := range 60 {
			s := session.Session{Mode: session.Live, MaxResults: 1 + rng.IntN(20), BaseOrdinal: 1 + rng.Int64N(12000),
				Discontinuity: []session.Discontinuity{session.DiscontinuityNever, session.DiscontinuityOnGap}[i%2], Producer: i%4 >= 2}
			got, err := s.Compute(idx, st, now)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.Compute(scanIndex{idx}, st, now)
			if err != nil {
				t.Fatal(err)
			}
			if describe(got) != describe(want) {
				t.Fatalf("%s: %+v:\ngot  %s\nwant %s", stage, s, describe(got), describe(want))
			}
			var ds int64
			for _, e := range flags[s.Producer][s.Discontinuity] {
				if e.Ordinal > s.BaseOrdinal && e.Ordinal <= got.Entries[0].Ordinal && e.Discontinuity {
					ds++
				}
			}
			if got.DiscontinuitySequence != ds {
				t.Fatalf("%s: %+v: discontinuity sequence %d, the listing has %d", stage, s, got.DiscontinuitySequence, ds)
			}
		}
	}
	check("while the rows may still load")
	idx.WaitBriefs()
	check("loaded")
}

// BenchmarkLiveReloadOldSession reloads the window of a LIVE session
// (PRODUCER_TIMESTAMP, ON_DISCONTINUITY, 5 fragments) that started age
// fragments ago. Index.Breaks keeps the cost flat; the walk from the
// session's base (scan, the code before it) grows with the age.
func BenchmarkLiveReloadOldSession(b *testing.B) {
	const total = 200000
	idx, st := oldStream(b, total, 9)
	idx.WaitBriefs()
	now := time.Now()
	for _, age := range []int64{1000, 10000, 100000, 200000} {
		s := session.Session{Mode: session.Live, MaxResults: 5, BaseOrdinal: total - age + 1, Discontinuity: session.DiscontinuityOnGap, Producer: true}
		for _, v := range []struct {
			name string
			idx  fragments.Index
		}{{"breaks", idx}, {"scan", scanIndex{idx}}} {
			b.Run(fmt.Sprintf("age=%d/%s", age, v.name), func(b *testing.B) {
				// The first count of a kind on a stream fills the index's
				// per-block count cache, once (about 1 ms per 100,000
				// fragments); reloads are measured after it.
				if _, err := s.Compute(v.idx, st, now); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := s.Compute(v.idx, st, now); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
