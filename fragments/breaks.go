package fragments

// BreakQuery counts discontinuities ("breaks") between consecutive
// fragments of a stream in ingest order: of the fragments with ordinals
// from From to To (inclusive) whose server timestamp is at least
// MinServerNS, each that follows another of them with a break counts.
type BreakQuery struct {
	StreamID    int64
	From, To    int64
	MinServerNS int64
	// Gaps: a gap or overlap over Tolerance (ns) on the By timestamp
	// (ByServer or ByProducer) is a break. A change of track header always
	// is one.
	Gaps      bool
	By        Selector
	Tolerance int64
}

// IsBreak reports whether cur following prev is a break under q.
func (q *BreakQuery) IsBreak(prev, cur *Fragment) bool {
	return prev.HeaderID != cur.HeaderID || (q.Gaps && Gap(prev, cur, q.By, q.Tolerance))
}

// Gap reports whether cur starts more than tolerance (ns) before or after
// prev ends, on the by timestamp (producer, else server).
func Gap(prev, cur *Fragment, by Selector, tolerance int64) bool {
	p, c := prev.ServerNS, cur.ServerNS
	if by == ByProducer {
		p, c = prev.ProducerNS, cur.ProducerNS
	}
	d := c - (p + prev.DurationNS)
	return d > tolerance || d < -tolerance
}
