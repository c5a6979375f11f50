package web

import (
	"container/list"
	"sync"

	"github.com/kvsgate/kvsgate/fragments"
)

// segmentCache keeps the index rows of recently requested fragments and
// the HLS media segments built from them. Every viewer of a LIVE stream
// asks for the same newest fragment within a playlist reload or two: with
// the cache, the first request reads the index, the sample table and the
// payload and builds the segment, and the others (waiting for that build
// instead of repeating it) get its bytes. A committed fragment never
// changes, so entries need no invalidation: callers still check the
// retention cutoff and the session's range on every request, and the
// least recently used fragments are dropped beyond maxBytes of segments or
// maxFrags fragments.
// The server's segment cache: 32 MB of segments (about 250 one-second
// 1 Mbit/s segments: the newest few of many streams), 4096 fragment rows.
const (
	segmentCacheBytes     = 32 << 20
	segmentCacheFragments = 4096
)

type segmentCache struct {
	maxBytes int64
	maxFrags int

	mu    sync.Mutex
	bytes int64
	frags map[fragKey]*cachedFragment
	lru   list.List // of *cachedFragment, most recently used first
}

type fragKey struct {
	stream int64
	number uint64
}

// segVariant is what a segment's bytes depend on besides the fragment.
type segVariant struct {
	ts       bool // MPEG-TS, else fMP4
	track    int  // fMP4 track, 1-based
	producer bool // media times from producer timestamps, else server
	part     int  // LL-HLS: a partial segment, index + 1; 0 for the whole
}

type cachedFragment struct {
	key    fragKey
	frag   *fragments.Fragment
	bodies map[segVariant]*cachedBody
	size   int64
	elem   *list.Element // nil once evicted
}

type cachedBody struct {
	ready chan struct{} // closed when b or err is set
	b     []byte
	err   error
}

func newSegmentCache(maxBytes int64, maxFrags int) *segmentCache {
	return &segmentCache{maxBytes: maxBytes, maxFrags: maxFrags, frags: map[fragKey]*cachedFragment{}}
}

// fragment returns the fragment (stream, number), from the cache or load.
// Errors are not cached.
func (c *segmentCache) fragment(stream int64, number uint64, load func() (*fragments.Fragment, error)) (*fragments.Fragment, error) {
	k := fragKey{stream, number}
	c.mu.Lock()
	if e := c.frags[k]; e != nil {
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		return e.frag, nil
	}
	c.mu.Unlock()
	f, err := load()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entry(f).frag, nil
}

// entry returns f's entry, adding it. c.mu is held.
func (c *segmentCache) entry(f *fragments.Fragment) *cachedFragment {
	k := fragKey{f.StreamID, f.Number}
	e := c.frags[k]
	if e == nil {
		e = &cachedFragment{key: k, frag: f, bodies: map[segVariant]*cachedBody{}}
		e.elem = c.lru.PushFront(e)
		c.frags[k] = e
		c.evict()
	} else {
		c.lru.MoveToFront(e.elem)
	}
	return e
}

// body returns the segment v of f, built once by build however many ask
// at the same time. A failed build is not kept: all who waited for it get
// its error, the next request builds again.
func (c *segmentCache) body(f *fragments.Fragment, v segVariant, build func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	e := c.entry(f)
	if b := e.bodies[v]; b != nil {
		c.mu.Unlock()
		<-b.ready
		return b.b, b.err
	}
	b := &cachedBody{ready: make(chan struct{})}
	e.bodies[v] = b
	c.mu.Unlock()

	b.b, b.err = build()

	c.mu.Lock()
	if b.err != nil {
		delete(e.bodies, v)
	} else if e.elem != nil {
		e.size += int64(len(b.b))
		c.bytes += int64(len(b.b))
		c.evict()
	}
	close(b.ready)
	c.mu.Unlock()
	return b.b, b.err
}

// evict drops least recently used fragments beyond the limits, keeping the
// most recent one. c.mu is held.
func (c *segmentCache) evict() {
	for (c.bytes > c.maxBytes || len(c.frags) > c.maxFrags) && c.lru.Len() > 1 {
		e := c.lru.Remove(c.lru.Back()).(*cachedFragment)
		e.elem = nil
		delete(c.frags, e.key)
		c.bytes -= e.size
	}
}
