package fragments

import (
	"sync"
	"time"
)

// A persister makes a connection's complete fragments durable behind its
// reader: while it syncs and commits fragment n, the connection goes on
// receiving fragment n+1. Fragments queued together share one fdatasync and
// one index transaction; PERSISTED acks go out in fragment order as their
// commits finish. A failure (error 5001) stops the connection: the
// persister acks ERROR for the first fragment it could not store, drops
// what follows and aborts the reader.
type persister struct {
	s     *Store
	st    *Stream
	ack   AckFunc
	abort func()
	obs   PutObserver // nil: none
	now   func() time.Time
	jobs  chan persistJob
	done  chan struct{}

	mu     sync.Mutex
	failed error
}

// persistJob is a fragment whose bytes are flushed to seg, or (fence) a
// request to report when everything queued before it is done.
type persistJob struct {
	seg   SegmentWriter
	p     *Pending
	stats FragmentStats
	fence chan struct{}
}

func newPersister(s *Store, st *Stream, ack AckFunc, opts PutOptions) *persister {
	p := &persister{s: s, st: st, ack: ack, abort: opts.Abort, obs: opts.Observer, now: opts.Now,
		jobs: make(chan persistJob, 32), done: make(chan struct{})}
	go p.run()
	return p
}

// add queues a complete fragment. It blocks while the queue is full.
func (p *persister) add(seg SegmentWriter, pend *Pending, stats FragmentStats) {
	p.jobs <- persistJob{seg: seg, p: pend, stats: stats}
}

// wait returns once everything queued so far is persisted (or failed).
func (p *persister) wait() {
	f := make(chan struct{})
	p.jobs <- persistJob{fence: f}
	<-f
}

// close waits for the queue to drain and stops the persister.
func (p *persister) close() {
	close(p.jobs)
	<-p.done
}

// err returns the failure that stopped the persister, if any.
func (p *persister) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

func (p *persister) run() {
	defer close(p.done)
	batch := make([]persistJob, 0, cap(p.jobs))
	for j := range p.jobs {
		batch = append(batch[:0], j)
	fill:
		for len(batch) < cap(batch) {
			select {
			case j, ok := <-p.jobs:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		p.persist(batch)
	}
}

func (p *persister) persist(batch []persistJob) {
	var pend []*Pending
	var stats []FragmentStats
	var fences []chan struct{}
	synced := map[SegmentWriter]bool{}
	var err error
	for _, j := range batch {
		if j.fence != nil {
			fences = append(fences, j.fence)
			continue
		}
		if p.err() != nil {
			p.s.unpublish(j.p.partial) // after a failure nothing more is stored or acked
			continue
		}
		if err == nil && !synced[j.seg] {
			synced[j.seg] = true
			err = j.seg.Sync()
		}
		pend = append(pend, j.p)
		stats = append(stats, j.stats)
	}
	if len(pend) > 0 {
		if err == nil {
			err = p.s.commit(pend)
		}
		if err != nil {
			p.fail(pend[0], err)
		} else {
			p.s.notify(p.st.ID, nil)
		}
		for _, pd := range pend {
			p.s.unpublish(pd.partial) // in the index now, or failed
		}
		if err == nil {
			for i, pd := range pend {
				p.ack(Ack{EventType: AckPersisted, FragmentTimecode: pd.Fragment.Timecode, FragmentNumber: pd.Fragment.Number})
				if p.obs != nil {
					st := stats[i]
					st.Persist = p.now().Sub(st.end)
					p.obs.Persisted(st)
				}
			}
		}
	}
	for _, f := range fences {
		close(f)
	}
}

func (p *persister) fail(first *Pending, err error) {
	p.mu.Lock()
	p.failed = &PutError{ID: ErrArchival, Detail: err.Error()}
	p.mu.Unlock()
	p.ack(Ack{EventType: AckError, FragmentTimecode: first.Fragment.Timecode, FragmentNumber: first.Fragment.Number, ErrorID: ErrArchival})
	p.abort()
}
