package hls

// TEMPORARY: replaced by the hls-ts branch.

import "io"

func WriteTS(w io.Writer, s *Segment) error { return nil }
