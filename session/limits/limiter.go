package limits

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// NoOp marks a Request that is limited by fragment credits only.
const NoOp Op = math.MaxUint8

// SessionID names a playback session (session.Session.ID).
type SessionID [8]byte

// Request is what one API call draws on.
type Request struct {
	Op      Op        // its TPS limits; NoOp: none
	Stream  int64     // the stream's id; 0: none (account-level only)
	Session SessionID // the playback session of an HLS or DASH resource
	// Metadata and Media are the fragment credits it consumes.
	Metadata, Media int
}

// Error is a refused request.
type Error struct {
	// Connection is true for a connection limit, of kind Conn; false for a
	// rate or fragment credits.
	Connection bool
	Conn       Conn
	Limit      string        // the figure's name, e.g. fragment-media-credits
	Figure     int           // its value
	RetryAfter time.Duration // when the request would be admitted (rates only)
}

func (e *Error) Error() string {
	if e.Connection {
		return fmt.Sprintf("%s exceeded: %d at once", e.Limit, e.Figure)
	}
	return fmt.Sprintf("%s exceeded: %d per second", e.Limit, e.Figure)
}

// sweepEvery is how often idle entries are dropped, and idleAge how long an
// entry must have been unused to go: by then its buckets are full again (a
// fresh entry is the same) unless a request was over a minute of its rate.
const (
	sweepEvery = int64(time.Minute)
	idleAge    = int64(time.Minute)
)

// dead marks an entry the sweep dropped: whoever finds it takes a fresh one.
const dead = math.MinInt64

// entry is the use time a sweep looks at.
type entry struct{ used atomic.Int64 }

// touch records a use at now; false if the entry was dropped.
func (e *entry) touch(now int64) bool {
	for {
		u := e.used.Load()
		if u == dead {
			return false
		}
		if u >= now || e.used.CompareAndSwap(u, now) {
			return true
		}
	}
}

// sessionOps are the operations limited per session, a contiguous range.
const (
	firstSessionOp = GetHLSMasterPlaylist
	numSessionOps  = int(GetMP4MediaPart-firstSessionOp) + 1
)

type streamState struct {
	entry
	meta, media bucket
	tps         [NumOps]bucket
	conns       [numConns]atomic.Int32
}

type sessionState struct {
	entry
	tps [numSessionOps]bucket
}

// Limiter applies a Config. It is safe for concurrent use: each bucket has
// its own mutex, taken only by the requests that draw on it.
type Limiter struct {
	cfg       Config
	now       func() time.Time
	account   [NumOps]bucket
	streams   sync.Map // int64 -> *streamState
	sessions  sync.Map // SessionID -> *sessionState
	lastSweep atomic.Int64
	refused   atomic.Uint64
}

// New returns a limiter of cfg on the clock now (time.Now if nil).
func New(cfg Config, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{cfg: cfg, now: now}
	l.lastSweep.Store(now().UnixNano())
	return l
}

// Config returns the limiter's figures.
func (l *Limiter) Config() Config { return l.cfg }

// Refused counts the requests refused so far.
func (l *Limiter) Refused() uint64 { return l.refused.Load() }

// Admit admits r, taking what it draws on from every bucket, or refuses it
// with an *Error and takes nothing.
func (l *Limiter) Admit(r Request) error {
	if l.cfg.Off {
		return nil
	}
	return l.admit(r, l.now().UnixNano())
}

// draw is what a request takes from one bucket.
type draw struct {
	b    *bucket
	rate int64
	n    int64
	kind drawKind
}

// drawKind says which figure a draw's bucket applies (for the error).
type drawKind uint8

const (
	accountTPS drawKind = iota
	opTPS
	metadataCredits
	mediaCredits
)

func (l *Limiter) admit(r Request, now int64) error {
	// Buckets are locked in one order (account, stream operation, session,
	// metadata, media), so requests never wait on each other in a cycle.
	var ds [5]draw
	k := 0
	c := &l.cfg
	if r.Op < NumOps {
		if rate := c.AccountTPS[r.Op]; rate > 0 {
			ds[k] = draw{&l.account[r.Op], int64(rate), 1, accountTPS}
			k++
		}
	}
	if r.Stream != 0 {
		streamTPS := r.Op < NumOps && ops[r.Op].scope == PerStream && c.TPS[r.Op] > 0
		meta := r.Metadata > 0 && c.FragmentMetadataCredits > 0
		media := r.Media > 0 && c.FragmentMediaCredits > 0
		var st *streamState
		if streamTPS || meta || media {
			st = l.stream(r.Stream, now)
		}
		if streamTPS {
			ds[k] = draw{&st.tps[r.Op], int64(c.TPS[r.Op]), 1, opTPS}
			k++
		}
		if r.Op < NumOps && ops[r.Op].scope == PerSession && c.TPS[r.Op] > 0 && r.Session != (SessionID{}) {
			ss := l.session(r.Session, now)
			ds[k] = draw{&ss.tps[r.Op-firstSessionOp], int64(c.TPS[r.Op]), 1, opTPS}
			k++
		}
		if meta {
			ds[k] = draw{&st.meta, int64(c.FragmentMetadataCredits), int64(r.Metadata), metadataCredits}
			k++
		}
		if media {
			ds[k] = draw{&st.media, int64(c.FragmentMediaCredits), int64(r.Media), mediaCredits}
			k++
		}
	}
	return l.take(r.Op, ds[:k], now)
}

// take takes every draw, or none.
func (l *Limiter) take(op Op, ds []draw, now int64) error {
	for i := range ds {
		ds[i].b.mu.Lock()
		ds[i].b.refill(now, ds[i].rate)
	}
	var refused *draw
	var wait int64
	for i := range ds {
		d := &ds[i]
		if w := want(d.n, d.rate); d.b.level < w {
			if t := d.b.wait(w, d.rate); refused == nil || t > wait {
				refused, wait = d, t
			}
		}
	}
	for i := range ds {
		if refused == nil {
			ds[i].b.level -= ds[i].n * unit
		}
		ds[i].b.mu.Unlock()
	}
	if refused == nil {
		return nil
	}
	l.refused.Add(1)
	e := &Error{Figure: int(refused.rate), RetryAfter: time.Duration(wait)}
	switch refused.kind {
	case accountTPS:
		e.Limit = ops[op].name + "-account-tps"
	case opTPS:
		e.Limit = ops[op].name + "-tps"
	case metadataCredits:
		e.Limit = "fragment-metadata-credits"
	case mediaCredits:
		e.Limit = "fragment-media-credits"
	}
	return e
}

// Connect counts a connection of the given kind on r's stream and admits
// r; release ends the connection. Over the connection limit it refuses
// with a Connection *Error, over a rate with the rate's; either way nothing
// is counted or taken.
func (l *Limiter) Connect(kind Conn, r Request) (release func(), err error) {
	if l.cfg.Off {
		return func() {}, nil
	}
	now := l.now().UnixNano()
	st := l.stream(r.Stream, now)
	n := &st.conns[kind]
	if limit := int32(l.cfg.Connections[kind]); limit > 0 {
		if n.Add(1) > limit {
			n.Add(-1)
			l.refused.Add(1)
			name := "get-media-connections"
			if kind == FragmentListConns {
				name = "get-media-for-fragment-list-connections"
			}
			return nil, &Error{Connection: true, Conn: kind, Limit: name, Figure: int(limit)}
		}
	} else {
		n.Add(1)
	}
	if err := l.admit(r, now); err != nil {
		n.Add(-1)
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { n.Add(-1) }) }, nil
}

// stream returns the stream's entry, touched at now.
func (l *Limiter) stream(id int64, now int64) *streamState {
	return touched[int64, streamState](l, &l.streams, id, now)
}

// session returns the session's entry, touched at now.
func (l *Limiter) session(id SessionID, now int64) *sessionState {
	return touched[SessionID, sessionState](l, &l.sessions, id, now)
}

// an entryPtr is a *streamState or a *sessionState.
type entryPtr[T any] interface {
	*T
	use() *entry
}

func (e *entry) use() *entry { return e }

// touched returns m's entry for id (a new one if it has none, or only a
// swept one), touched at now.
func touched[K comparable, T any, P entryPtr[T]](l *Limiter, m *sync.Map, id K, now int64) P {
	for {
		v, ok := m.Load(id)
		if !ok {
			fresh := P(new(T))
			fresh.use().used.Store(now)
			var loaded bool
			if v, loaded = m.LoadOrStore(id, fresh); !loaded {
				l.maybeSweep(now)
			}
		}
		e := v.(P)
		if e.use().touch(now) {
			return e
		}
		m.CompareAndDelete(id, e)
	}
}

// maybeSweep starts a sweep when the last was sweepEvery ago.
func (l *Limiter) maybeSweep(now int64) {
	last := l.lastSweep.Load()
	if now-last >= sweepEvery && l.lastSweep.CompareAndSwap(last, now) {
		go l.Sweep(time.Unix(0, now))
	}
}

// Sweep drops the entries of streams and sessions unused since idleAge
// before now (and with no connection open), so memory stays bounded however
// many sessions come and go. It returns how many entries are left. New
// entries are swept on their own, about once a minute.
func (l *Limiter) Sweep(now time.Time) int {
	t := now.UnixNano()
	left := 0
	drop := func(m *sync.Map, k, v any, e *entry) {
		if u := e.used.Load(); u != dead && t-u >= idleAge && e.used.CompareAndSwap(u, dead) {
			m.CompareAndDelete(k, v)
			return
		}
		left++
	}
	l.streams.Range(func(k, v any) bool {
		st := v.(*streamState)
		open := false
		for i := range st.conns {
			open = open || st.conns[i].Load() > 0
		}
		if open {
			left++
			return true
		}
		drop(&l.streams, k, v, &st.entry)
		return true
	})
	l.sessions.Range(func(k, v any) bool {
		drop(&l.sessions, k, v, &v.(*sessionState).entry)
		return true
	})
	return left
}
