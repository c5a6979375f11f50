// Package clip builds GetClip's MP4 files: a progressive MP4 (ftyp, moov,
// then one mdat) of a time range of a stream's fragments. It knows nothing
// of HTTP: New plans a clip from the fragment index alone (the moov is
// computed from the stored sample tables, so the file's length is known
// before a byte is sent), and WriteTo writes it, the sample data straight
// from the payload segments fragment by fragment, with memory that does not
// grow with the clip's length beyond its sample tables.
//
// Layout. The mdat holds the fragments in order; within a fragment the
// video samples (track 1) come first, then the audio samples (track 2):
// one chunk per track and fragment. Interleaving by fragment (about a
// second) keeps the file playable while it downloads and the chunk tables
// small (two entries a fragment instead of one a sample), and each chunk is
// read from one stretch of the stored Cluster.
//
// Timing. Every sample's time is computed from absolute nanoseconds: the
// fragment's timestamp in the selector's source (producer or server) plus
// the sample's offset from it, relative to the clip's first fragment, and
// converted to the track's timescale (90 kHz video, the sampling rate
// audio); a sample's duration is the difference to the next one's decode
// time, so nothing drifts however long the clip. A gap between fragments
// becomes a longer duration of the last sample before it (on each track),
// so timestamps after it stay right. A fragment that starts before the
// previous one has ended (server timestamps of a producer that sent faster
// than real time, or producer timestamps that went back) is moved as a
// whole to start when the previous one ends. Composition offsets (B-frames)
// go in ctts (version 0 when none is negative) and an edit list per track
// makes the first presented frame time 0 and starts a track that begins
// later than the other with an empty edit, as ffmpeg's MP4 muxer does.
// G.711 samples are timed by their byte count (the exact number of audio
// samples); their fragment timestamps are used only where they disagree
// with it by more than session.GapTolerance (a gap).
package clip

import (
	"errors"
	"fmt"
	"math"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/session"
)

// Errors of New besides those of CheckTracks and of the index.
var (
	// ErrNoFragments: no fragment in the range (ResourceNotFoundException).
	ErrNoFragments = errors.New("no fragments in the requested range")
	// ErrInvalidMediaFrame: a stored sample table that cannot make an MP4
	// (InvalidMediaFrameException): a fragment whose video does not start
	// with a key frame, a sample outside its fragment's payload, decode
	// times that go back, G.711 blocks that are not whole samples.
	ErrInvalidMediaFrame = errors.New("invalid media frame")
)

// Default limits, KVS's.
const (
	DefaultMaxFragments = 200
	DefaultMaxBytes     = 100 << 20
)

// Limits bound a clip: it holds the first MaxFragments fragments of its
// range, or fewer if the next one would make the file (ftyp, moov and mdat)
// larger than MaxBytes. The first fragment is always included, even if it
// alone is larger. Zero values mean the defaults.
type Limits struct {
	MaxFragments int
	MaxBytes     int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxFragments <= 0 {
		l.MaxFragments = DefaultMaxFragments
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

// Request is a clip's range.
type Request struct {
	StreamID int64
	// Producer: the range and the media times are producer timestamps
	// (PRODUCER_TIMESTAMP); else server timestamps.
	Producer bool
	// StartNS and EndNS bound the fragments' start times (unix ns, both
	// inclusive).
	StartNS, EndNS int64
	// MinServerNS is the retention cutoff: older fragments are never used.
	MinServerNS int64
	Limits      Limits
}

// Cut says why a clip ends before its range does.
type Cut string

// Reasons a clip is cut.
const (
	NotCut Cut = ""
	// CutFragments: the range holds more than Limits.MaxFragments fragments.
	CutFragments Cut = "fragments"
	// CutBytes: the next fragment would make the file larger than Limits.MaxBytes.
	CutBytes Cut = "bytes"
	// CutCodecChange: the next fragment's tracks differ (new codec private
	// data): one MP4 track has one sample description here, so the clip
	// ends at the last fragment before the change.
	CutCodecChange Cut = "codec-change"
	// CutGap: the next fragment follows a gap longer than a 32-bit sample
	// duration holds (13 h of 90 kHz video).
	CutGap Cut = "gap"
)

// Index is what a clip reads of the fragment index (fragments.Index has it).
type Index interface {
	Fragments(q fragments.FragmentQuery) ([]fragments.Fragment, error)
	Meta(streamID, ordinal int64) (*fragments.Meta, error)
	Header(id int64) (*fragments.Header, error)
}

// Segments opens payload segments (fragments.Payloads has it).
type Segments interface {
	Open(streamID, segmentID int64) (fragments.SegmentReader, error)
}

// Clip is a planned clip. Close it when done.
type Clip struct {
	// Size is the length of the file WriteTo writes.
	Size int64
	// Fragments is how many fragments it holds.
	Fragments int
	// FirstNS and LastNS are the timestamps (in the selector's source) of
	// its first and last fragments.
	FirstNS, LastNS int64
	// Cut says why it ends before its range does; NextNS is then the
	// timestamp of the first fragment left out, where a clip continuing
	// this one would start.
	Cut    Cut
	NextNS int64

	tracks []*trackTable
	head   []byte // ftyp, moov and the mdat header
	frags  []fragOut
	segs   map[int64]fragments.SegmentReader
}

// fragOut is one fragment's samples in mdat order.
type fragOut struct {
	seg   fragments.SegmentReader
	off   int64 // the payload's offset in seg
	refs  []sampleRef
	parts []chunkPart
}

// chunkPart is one chunk of the mdat: a fragment's samples of one track.
type chunkPart struct {
	track int
	size  int64
}

// sampleRef is a sample's bytes in its fragment's payload (fragments are at
// most a few tens of MB).
type sampleRef struct{ off, size uint32 }

// entry is a fragment of the range with its timestamp in the selector's source.
type entry struct {
	f  fragments.Fragment
	ts int64
}

// New plans the clip of a range: the fragments (producer-timestamp
// duplicates removed), the track checks of CheckTracks on the first one,
// the sample tables and the moov. It opens the payload segments it will
// read, so fragments that expire meanwhile can still be sent.
func New(idx Index, segs Segments, r Request) (*Clip, error) {
	lim := r.Limits.withDefaults()
	list, err := listRange(idx, &r, lim.MaxFragments+1)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, ErrNoFragments
	}
	h, err := idx.Header(list[0].f.HeaderID)
	if err != nil {
		return nil, err
	}
	infos, err := trackInfos(h)
	if err != nil {
		return nil, err
	}
	c := &Clip{segs: map[int64]fragments.SegmentReader{}, FirstNS: list[0].ts}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	b := newBuilder(infos, list[0].ts)
	budget := lim.MaxBytes - fixedSize(infos)
	headerID := list[0].f.HeaderID
	for i := range list {
		e := &list[i]
		if i == lim.MaxFragments {
			c.Cut, c.NextNS = CutFragments, e.ts
			break
		}
		if e.f.HeaderID != headerID {
			h, err := idx.Header(e.f.HeaderID)
			if err != nil {
				return nil, err
			}
			next, err := trackInfos(h)
			if err != nil || !sameTracks(infos, next) {
				c.Cut, c.NextNS = CutCodecChange, e.ts
				break
			}
			headerID = e.f.HeaderID
		}
		meta, err := idx.Meta(e.f.StreamID, e.f.Ordinal)
		if err != nil {
			return nil, err
		}
		if err := b.check(&e.f, meta); err != nil {
			return nil, err
		}
		if cost := b.cost(meta); i > 0 && cost > budget {
			c.Cut, c.NextNS = CutBytes, e.ts
			break
		} else {
			budget -= cost
		}
		refs, parts, err := b.add(e, meta)
		if errors.Is(err, errHugeGap) {
			c.Cut, c.NextNS = CutGap, e.ts
			break
		}
		if err != nil {
			return nil, err
		}
		seg := c.segs[e.f.SegmentID]
		if seg == nil {
			if seg, err = segs.Open(e.f.StreamID, e.f.SegmentID); err != nil {
				return nil, err
			}
			c.segs[e.f.SegmentID] = seg
		}
		c.frags = append(c.frags, fragOut{seg: seg, off: e.f.Offset, refs: refs, parts: parts})
		c.Fragments++
		c.LastNS = e.ts
	}
	c.tracks = b.finish()
	if err := c.layout(); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// Close closes the payload segments.
func (c *Clip) Close() error {
	var first error
	for id, s := range c.segs {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.segs, id)
	}
	return first
}

// listRange lists up to limit fragments of the range in order of the
// selector's timestamp (then ingest order). With producer timestamps, of
// fragments with the same timestamp only the first ingested is kept: the
// API reference's ClipFragmentSelector says that of fragments ingested more
// than once "only the oldest ingested collection of fragments are returned".
func listRange(idx Index, r *Request, limit int) ([]entry, error) {
	by := fragments.ByServer
	if r.Producer {
		by = fragments.ByProducer
	}
	ts := func(f *fragments.Fragment) int64 {
		if r.Producer {
			return f.ProducerNS
		}
		return f.ServerNS
	}
	var out []entry
	afterTS, afterOrd := int64(math.MinInt64), int64(0)
	// One query in the common case; duplicates may need another.
	pageSize := min(limit+1, 5001)
	for len(out) < limit {
		page, err := idx.Fragments(fragments.FragmentQuery{StreamID: r.StreamID, By: by, From: r.StartNS, To: r.EndNS,
			AfterTS: afterTS, AfterOrdinal: afterOrd, MinServerNS: r.MinServerNS, Limit: pageSize})
		if err != nil {
			return nil, err
		}
		for _, f := range page {
			e := entry{f: f, ts: ts(&f)}
			if n := len(out); r.Producer && n > 0 && out[n-1].ts == e.ts {
				continue // a later copy of a fragment already listed
			}
			if len(out) == limit {
				return out, nil
			}
			out = append(out, e)
		}
		if len(page) < pageSize {
			break
		}
		last := &page[len(page)-1]
		afterTS, afterOrd = ts(last), last.Ordinal
	}
	return out, nil
}

// nsToTimescale converts a time in ns to units of ts per second, rounding
// to the nearest unit, without overflow for any int64 time.
func nsToTimescale(ns int64, ts uint32) int64 {
	q, r := ns/1e9, ns%1e9
	if r < 0 {
		q, r = q-1, r+1e9
	}
	return q*int64(ts) + (r*int64(ts)+5e8)/1e9
}

// timescaleToNS converts units of ts per second to ns (rounded down).
func timescaleToNS(v int64, ts uint32) int64 {
	q, r := v/int64(ts), v%int64(ts)
	if r < 0 {
		q, r = q-1, r+int64(ts)
	}
	return q*1e9 + r*1e9/int64(ts)
}

// gapTolerance is how far G.711's byte-count timing may stray from its
// fragments' timestamps before the timestamps win (a gap).
const gapTolerance = int64(session.GapTolerance)

func invalidFrame(f *fragments.Fragment, format string, args ...any) error {
	return fmt.Errorf("%w: fragment %d: %s", ErrInvalidMediaFrame, f.Number, fmt.Sprintf(format, args...))
}
