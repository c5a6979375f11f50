package fragments

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config holds the archive's settings.
type Config struct {
	Region  string // for ARNs, default us-west-2
	Account string // for ARNs, default 000000000000
	// MaxFragmentDuration rejects longer fragments (4002). Default 20 s.
	MaxFragmentDuration time.Duration
	// MaxFragmentSize rejects larger fragments (4001). Default 50 MB.
	MaxFragmentSize int64
	// SegmentSize rotates payload files after this many bytes. Default 256 MiB.
	SegmentSize int64
	// RetentionInterval is how often expired fragments are deleted. Default 1 min.
	RetentionInterval time.Duration
	Logger            *slog.Logger
}

func (c *Config) defaults() {
	if c.Region == "" {
		c.Region = "us-west-2"
	}
	if c.Account == "" {
		c.Account = "000000000000"
	}
	if c.MaxFragmentDuration == 0 {
		c.MaxFragmentDuration = 20 * time.Second
	}
	if c.MaxFragmentSize == 0 {
		c.MaxFragmentSize = 50 << 20
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = 256 << 20
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Store is the archive: streams, fragment payloads and their index.
type Store struct {
	Index    Index
	Payloads Payloads
	cfg      Config
	log      *slog.Logger

	commits chan commitReq
	stop    chan struct{}
	wg      sync.WaitGroup

	lastNumber atomic.Uint64
	lastServer atomic.Int64

	mu      sync.Mutex
	putters map[int64]*putSlot // the PutMedia connection of each stream
	open    map[int64]bool     // segments being written

	live     liveHub
	partials partialHub

	drainOnce sync.Once
	draining  chan struct{} // closed on Drain: ingests stop at the next fragment boundary
}

type commitReq struct {
	ps   []*Pending
	done chan error
}

// NewStore starts a store on an index and payload storage.
func NewStore(idx Index, pl Payloads, cfg Config) (*Store, error) {
	cfg.defaults()
	s := &Store{
		Index: idx, Payloads: pl, cfg: cfg, log: cfg.Logger,
		commits:  make(chan commitReq, 256),
		stop:     make(chan struct{}),
		putters:  map[int64]*putSlot{},
		open:     map[int64]bool{},
		draining: make(chan struct{}),
	}
	n, err := idx.MaxFragmentNumber()
	if err != nil {
		return nil, err
	}
	s.lastNumber.Store(n)
	s.wg.Add(2)
	go s.committer()
	go s.retentionLoop()
	return s, nil
}

// Config returns the store's settings.
func (s *Store) Config() Config { return s.cfg }

// Drain asks every PutMedia to stop at its next fragment boundary: idle
// ones at once, busy ones once their fragment is complete.
func (s *Store) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.putters {
		if !p.busy.Load() {
			p.abort()
		}
	}
}

// Close stops background work and closes the index. Ingests must have ended.
func (s *Store) Close() error {
	close(s.stop)
	s.wg.Wait()
	return s.Index.Close()
}

// nextNumber allocates a fragment number. Numbers are unix milliseconds
// shifted left by 12 bits, bumped to stay strictly increasing: they grow in
// ingest order and stay unique across restarts, even for numbers handed out
// in acks of fragments a crash lost.
func (s *Store) nextNumber(now time.Time) uint64 {
	floor := uint64(now.UnixMilli()) << 12
	for {
		old := s.lastNumber.Load()
		v := max(old+1, floor)
		if s.lastNumber.CompareAndSwap(old, v) {
			return v
		}
	}
}

// serverTime returns a strictly increasing server timestamp (unix ns), so
// that server-timestamp order is ingest order.
func (s *Store) serverTime(now time.Time) int64 {
	t := now.UnixNano()
	for {
		old := s.lastServer.Load()
		v := max(old+1, t)
		if s.lastServer.CompareAndSwap(old, v) {
			return v
		}
	}
}

// commit durably indexes fragments whose payloads are synced, in one
// transaction. Concurrent callers share a transaction (group commit).
func (s *Store) commit(ps []*Pending) error {
	req := commitReq{ps: ps, done: make(chan error, 1)}
	select {
	case s.commits <- req:
	case <-s.stop:
		return fmt.Errorf("store closed")
	}
	return <-req.done
}

func (s *Store) committer() {
	defer s.wg.Done()
	batch := make([]commitReq, 0, 64)
	pend := make([]*Pending, 0, 256)
	for {
		select {
		case <-s.stop:
			return
		case r := <-s.commits:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case r := <-s.commits:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		pend = pend[:0]
		for _, r := range batch {
			pend = append(pend, r.ps...)
		}
		err := s.Index.Commit(pend)
		for _, r := range batch {
			r.done <- err
		}
	}
}

func newVersion() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StreamARN builds the ARN of a stream created at t.
func (s *Store) StreamARN(name string, t time.Time) string {
	return fmt.Sprintf("arn:aws:kinesisvideo:%s:%s:stream/%s/%d", s.cfg.Region, s.cfg.Account, name, t.UnixMilli())
}
