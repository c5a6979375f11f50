// Package hls packages archived fragments for HLS: master and media
// playlists, fMP4 init and media segments, and MPEG-TS segments. It knows
// nothing of HTTP: it writes to an io.Writer from the fragment index's
// sample tables and the stored payload bytes.
package hls

import (
	"errors"
	"io"

	"github.com/kvsgate/kvsgate/fragments"
)

// Errors about a stream's tracks, named after the API exceptions they become.
var (
	ErrMissingCodecPrivate = errors.New("missing codec private data")
	ErrInvalidCodecPrivate = errors.New("invalid codec private data")
	ErrUnsupportedMedia    = errors.New("unsupported stream media type")
)

// Container is a segment format.
type Container int

// Segment formats: of HLS sessions (FMP4, MPEGTS) and of DASH sessions
// (DASHFMP4: fMP4 segments under DASH's track requirements, which also
// allow G.711 audio).
const (
	FMP4 Container = iota
	MPEGTS
	DASHFMP4
)

// Segment is one fragment to package as a media segment.
type Segment struct {
	Header *fragments.Header
	Meta   *fragments.Meta
	// Payload holds the stored Cluster; Sample.Offset and Sample.Size
	// index into it. Size is its length.
	Payload io.ReaderAt
	Size    int64
	// BaseNS is the fragment's timestamp in the session's timestamp source
	// (unix ns): a sample is presented at BaseNS + Sample.PTS and decoded
	// at BaseNS + Sample.DTS.
	BaseNS int64
	// Sequence is the fragment's per-stream ordinal (mfhd sequence number;
	// MPEG-TS continuity counters derive from it).
	Sequence int64
	// Part, if not nil, limits an fMP4 media segment to one partial
	// segment (LL-HLS): the samples of Meta.Samples[Part.From:Part.To].
	// Its last sample lasts until the track's next sample when there is
	// one, so the parts of a fragment written one after the other carry
	// exactly the samples, times and bytes of the whole segment.
	Part *Part
}

// sampleRange is the range of Meta.Samples a segment writes.
func (s *Segment) sampleRange() (from, to int) {
	if s.Part != nil {
		return max(0, s.Part.From), min(len(s.Meta.Samples), s.Part.To)
	}
	return 0, len(s.Meta.Samples)
}

// nextDTS returns the decode time of track's first sample at or after
// index i, if there is one.
func (s *Segment) nextDTS(track, i int) (int64, bool) {
	for ; i < len(s.Meta.Samples); i++ {
		if int(s.Meta.Samples[i].Track) == track {
			return s.Meta.Samples[i].DTS, true
		}
	}
	return 0, false
}
