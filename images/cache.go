package images

import (
	"container/list"
	"sync"
)

// cacheKey names one encoded image: a frame (stream, fragment number,
// sample index) rendered in one format, size and quality.
type cacheKey struct {
	stream  int64
	number  uint64
	sample  int
	format  Format
	w, h    int
	quality int // 0 for PNG
}

// cacheEntry is an encoded image, or (data nil) a frame that deterministically
// failed to decode, so hostile media is not decoded again on every poll.
type cacheEntry struct {
	key  cacheKey
	data []byte
	fail string
}

// entryOverhead is what an entry costs besides its bytes (key, list element,
// map slot), so that failures and tiny images count too.
const entryOverhead = 160

func (e *cacheEntry) cost() int64 { return int64(len(e.data)+len(e.fail)) + entryOverhead }

// lru is a cache of encoded images bounded by bytes, least recently used
// out first. A nil *lru caches nothing.
type lru struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // front: most recent
	items map[cacheKey]*list.Element
	hits  int64
	miss  int64
}

func newLRU(max int64) *lru {
	if max <= 0 {
		return nil
	}
	return &lru{max: max, order: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *lru) get(k cacheKey) (*cacheEntry, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		c.miss++
		return nil, false
	}
	c.hits++
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry), true
}

func (c *lru) put(e *cacheEntry) {
	if c == nil || e.cost() > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		c.size -= el.Value.(*cacheEntry).cost()
		el.Value = e
		c.order.MoveToFront(el)
	} else {
		c.items[e.key] = c.order.PushFront(e)
	}
	c.size += e.cost()
	for c.size > c.max {
		el := c.order.Back()
		old := el.Value.(*cacheEntry)
		c.order.Remove(el)
		delete(c.items, old.key)
		c.size -= old.cost()
	}
}

// CacheStats are the cache's counters.
type CacheStats struct {
	Entries      int
	Bytes, Limit int64
	Hits, Misses int64
}

func (c *lru) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Entries: len(c.items), Bytes: c.size, Limit: c.max, Hits: c.hits, Misses: c.miss}
}
