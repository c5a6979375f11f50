package web

import (
	"sync"

	"github.com/kvsgate/kvsgate/fragments"
)

// windowIndex is the store's index for computing session windows: a LIVE
// playlist lists the newest fragments of its stream (an ordinal query that
// reaches the stream's newest ordinal), and every session of the stream
// with the same window size asks the same query until the next fragment
// is committed. Such results are kept per (stream, after, limit, newest
// ordinal); a later retention cutoff is applied to the kept rows, which is
// exact because they are every row from after to the newest. With 1000
// LIVE sessions on a stream the query was a fifth of the server's CPU
// (docs/PERFORMANCE.md).
type windowIndex struct {
	fragments.Index
	c *windowCache
}

// Results of at most this many rows are kept (MaxMediaPlaylistFragmentResults
// up to 500: a LIVE window asks for 2*max+2).
const windowCacheMaxRows = 1002

// windowCache holds recent results; it is emptied when it holds too many.
type windowCache struct {
	mu      sync.Mutex
	entries map[windowKey]*windowRows
}

const windowCacheEntries = 256

type windowKey struct {
	stream, after, last int64
	limit               int
	brief               bool
}

type windowRows struct {
	minServerNS int64
	rows        []fragments.Fragment
}

func (x windowIndex) Fragments(q fragments.FragmentQuery) ([]fragments.Fragment, error) {
	if q.By != fragments.ByOrdinal || q.Limit > windowCacheMaxRows {
		return x.Index.Fragments(q)
	}
	last, err := x.Index.LastOrdinal(q.StreamID)
	if err != nil {
		return nil, err
	}
	k := windowKey{q.StreamID, q.AfterOrdinal, last, q.Limit, q.Brief}
	if rows, ok := x.c.get(k, q.MinServerNS); ok {
		return rows, nil
	}
	rows, err := x.Index.Fragments(q)
	// Kept only if it reaches the newest ordinal: then it holds every row
	// after q.AfterOrdinal that the cutoff leaves.
	if err == nil && len(rows) > 0 && rows[len(rows)-1].Ordinal == last {
		x.c.put(k, q.MinServerNS, rows)
	}
	return rows, err
}

// get returns a copy of the rows kept for k that are not older than
// minServerNS, if they were queried with a cutoff no later than it.
func (c *windowCache) get(k windowKey, minServerNS int64) ([]fragments.Fragment, bool) {
	c.mu.Lock()
	e := c.entries[k]
	c.mu.Unlock()
	if e == nil || e.minServerNS > minServerNS {
		return nil, false
	}
	out := make([]fragments.Fragment, 0, len(e.rows))
	for _, f := range e.rows {
		if f.ServerNS >= minServerNS {
			out = append(out, f)
		}
	}
	return out, true
}

func (c *windowCache) put(k windowKey, minServerNS int64, rows []fragments.Fragment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= windowCacheEntries {
		c.entries = map[windowKey]*windowRows{}
	}
	c.entries[k] = &windowRows{minServerNS: minServerNS, rows: rows}
}
