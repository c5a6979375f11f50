package limits

import "sync"

// unit is one token in a bucket's level: levels are kept in billionths of
// a token, so a refill of rate tokens per second is exactly rate units per
// nanosecond, with no rounding.
const unit = 1_000_000_000

// bucket is a token bucket refilled continuously at its rate (tokens per
// second), holding at most one second of it.
type bucket struct {
	mu      sync.Mutex
	level   int64 // units; negative: in debt
	last    int64 // clock (ns) of the last refill
	started bool  // a new bucket is full
}

// refill brings the level up to now. The caller holds mu.
func (b *bucket) refill(now, rate int64) {
	full := rate * unit
	if !b.started {
		b.level, b.last, b.started = full, now, true
		return
	}
	el := now - b.last
	if el <= 0 { // the clock went back, or no time passed
		return
	}
	b.last = now
	if need := full - b.level; el >= (need+rate-1)/rate {
		b.level = full
	} else {
		b.level += el * rate
	}
}

// want is the level a request of n tokens needs: n, or a full bucket when
// n is more than it holds.
func want(n, rate int64) int64 { return min(n, rate) * unit }

// wait is how long until the level reaches w (ns).
func (b *bucket) wait(w, rate int64) int64 {
	if b.level >= w {
		return 0
	}
	return (w - b.level + rate - 1) / rate
}
