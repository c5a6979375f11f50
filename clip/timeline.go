package clip

import (
	"errors"
	"math"

	"github.com/kvsgate/kvsgate/fragments"
)

// errHugeGap: a sample duration would not fit stts's 32 bits.
var errHugeGap = errors.New("gap too long for one sample duration")

// trackTable is one track's sample tables as they are built. Times are in
// the track's timescale, relative to the clip's origin (its first
// fragment's timestamp); decode times before it (B-frames) are negative
// until finish makes the first one 0.
type trackTable struct {
	info   trackInfo
	n      int      // samples
	sizes  []uint32 // stsz
	stts   []run    // (count, duration)
	ctts   []run    // (count, composition offset)
	stss   []uint32 // sync samples (1-based), video only
	chunks []uint32 // samples per chunk, in chunk order
	negCTO bool     // some composition offset is negative: ctts version 1

	has              bool
	firstDT, lastDT  int64
	lastEnd          int64 // end of the last sample by its own duration
	presStart        int64 // earliest presentation time
	presEnd          int64 // latest presentation end
	lastNS, lastEndN int64 // the last sample's decode time and end in ns (fragment timestamps)
	mediaDur         int64 // set by finish
}

type run struct {
	count uint32
	value int64
}

func appendRun(runs []run, v int64) []run {
	if n := len(runs); n > 0 && runs[n-1].value == v && runs[n-1].count < math.MaxUint32 {
		runs[n-1].count++
		return runs
	}
	return append(runs, run{1, v})
}

// builder turns fragments' sample tables into the clip's.
type builder struct {
	tracks []*trackTable
	origin int64 // ns: the first fragment's timestamp
	// per fragment scratch
	first []int
}

func newBuilder(infos []trackInfo, origin int64) *builder {
	b := &builder{origin: origin, first: make([]int, len(infos))}
	for _, in := range infos {
		b.tracks = append(b.tracks, &trackTable{info: in})
	}
	return b
}

// check validates a fragment's sample table: tracks, byte ranges inside
// the payload, a key frame first on the video track, decode times that do
// not go back, whole G.711 samples.
func (b *builder) check(f *fragments.Fragment, m *fragments.Meta) error {
	for t := range b.first {
		b.first[t] = -1
	}
	prev := make([]int64, len(b.tracks))
	for i := range m.Samples {
		s := &m.Samples[i]
		t := int(s.Track)
		if t >= len(b.tracks) {
			return invalidFrame(f, "sample %d of track index %d (%d tracks)", i, t, len(b.tracks))
		}
		if s.Offset < 0 || s.Size < 0 || s.Offset > f.Size-s.Size || f.Size > math.MaxUint32 {
			return invalidFrame(f, "sample %d (%d bytes at %d) outside the %d-byte payload", i, s.Size, s.Offset, f.Size)
		}
		if s.Dur < 0 {
			return invalidFrame(f, "sample %d lasts %d ns", i, s.Dur)
		}
		tr := b.tracks[t]
		if b.first[t] < 0 {
			b.first[t] = i
			if tr.info.kind.video() && !s.Key {
				return invalidFrame(f, "the video does not start with a key frame")
			}
		} else if s.DTS < prev[t] {
			return invalidFrame(f, "sample %d: decode time %d ns before the previous one's %d ns", i, s.DTS, prev[t])
		}
		prev[t] = s.DTS
		if tr.info.kind == kindALaw && s.Size%int64(tr.info.channels) != 0 {
			return invalidFrame(f, "sample %d: %d bytes of G.711 is not a whole number of %d-channel samples", i, s.Size, tr.info.channels)
		}
	}
	return nil
}

// Upper bounds of the moov bytes a sample and a chunk add: stsz 4, stts 8,
// ctts 8, stss 4; stsc 12, co64 8.
const (
	perSample = 24
	perChunk  = 20
)

// cost is an upper bound of what a fragment adds to the file.
func (b *builder) cost(m *fragments.Meta) int64 {
	c := int64(len(b.tracks)) * perChunk
	for i := range m.Samples {
		c += m.Samples[i].Size + perSample
	}
	return c
}

// add appends a checked fragment's samples and returns them in mdat
// order, and its chunks.
func (b *builder) add(e *entry, m *fragments.Meta) ([]sampleRef, []chunkPart, error) {
	base := e.ts - b.origin
	// A fragment that starts before the previous one's last sample on some
	// track moves as a whole to where the previous one ends.
	var shift int64
	overlap := false
	for t, i := range b.first {
		tr := b.tracks[t]
		if i < 0 || !tr.has {
			continue
		}
		ts := tr.info.timescale
		if nsToTimescale(base+m.Samples[i].DTS, ts) <= nsToTimescale(tr.lastNS, ts) {
			overlap = true
		}
	}
	if overlap {
		for t, i := range b.first {
			tr := b.tracks[t]
			if i < 0 || !tr.has {
				continue
			}
			tick := (1e9 + int64(tr.info.timescale) - 1) / int64(tr.info.timescale)
			shift = max(shift, max(tr.lastEndN, tr.lastNS+tick)-(base+m.Samples[i].DTS))
		}
	}
	base += shift
	for t, i := range b.first {
		tr := b.tracks[t]
		if i >= 0 && tr.has && nsToTimescale(base+m.Samples[i].DTS, tr.info.timescale)-tr.lastDT > math.MaxUint32 {
			return nil, nil, errHugeGap
		}
	}

	counts := make([]uint32, len(b.tracks))
	for i := range m.Samples {
		s := &m.Samples[i]
		t := int(s.Track)
		tr := b.tracks[t]
		ts := tr.info.timescale
		a := base + s.DTS
		var dt, pts, end int64
		if tr.info.kind == kindALaw {
			d := s.Size / int64(tr.info.channels)
			switch {
			case !tr.has:
				dt = nsToTimescale(a, ts)
			case i == b.first[t]:
				// The fragment's timestamp only if it disagrees with the
				// byte count by more than the tolerance (a gap).
				dt = nsToTimescale(a, ts)
				if dt <= tr.lastDT || abs(timescaleToNS(dt-tr.lastEnd, ts)) <= gapTolerance {
					dt = tr.lastEnd
				}
			default:
				dt = tr.lastEnd
			}
			pts, end = dt, dt+d
		} else {
			dt = nsToTimescale(a, ts)
			pts = nsToTimescale(base+s.PTS, ts)
			end = nsToTimescale(a+s.Dur, ts)
		}
		ownDur := end - dt
		if tr.has {
			if dt <= tr.lastDT {
				dt = tr.lastDT + 1 // equal decode times (duplicate timecodes)
			}
			tr.stts = appendRun(tr.stts, dt-tr.lastDT)
		} else {
			tr.has, tr.firstDT, tr.presStart, tr.presEnd = true, dt, pts, pts
		}
		cto := pts - dt
		if cto < 0 {
			tr.negCTO = true
		}
		tr.ctts = appendRun(tr.ctts, cto)
		tr.sizes = append(tr.sizes, uint32(s.Size))
		tr.n++
		if tr.info.kind.video() && s.Key {
			tr.stss = append(tr.stss, uint32(tr.n))
		}
		tr.presStart = min(tr.presStart, pts)
		tr.presEnd = max(tr.presEnd, pts+ownDur)
		tr.lastDT, tr.lastEnd = dt, max(dt, dt+ownDur)
		tr.lastNS, tr.lastEndN = a, a+s.Dur
		if tr.info.kind == kindALaw {
			tr.lastEndN = a + timescaleToNS(ownDur, ts)
		}
		counts[t]++
	}

	refs := make([]sampleRef, 0, len(m.Samples))
	var parts []chunkPart
	for t, tr := range b.tracks {
		if counts[t] == 0 {
			continue
		}
		tr.chunks = append(tr.chunks, counts[t])
		p := chunkPart{track: t}
		for i := range m.Samples {
			if s := &m.Samples[i]; int(s.Track) == t {
				refs = append(refs, sampleRef{uint32(s.Offset), uint32(s.Size)})
				p.size += s.Size
			}
		}
		parts = append(parts, p)
	}
	return refs, parts, nil
}

// finish closes the tables: the last sample of each track lasts its own
// duration (or, without one, as long as the one before it).
func (b *builder) finish() []*trackTable {
	for _, tr := range b.tracks {
		if !tr.has {
			continue
		}
		d := tr.lastEnd - tr.lastDT
		if d <= 0 {
			d = 1
			if n := len(tr.stts); n > 0 {
				d = tr.stts[n-1].value
			}
		}
		tr.stts = appendRun(tr.stts, d)
		tr.mediaDur = tr.lastDT + d - tr.firstDT
		tr.presEnd = max(tr.presEnd, tr.presStart+1)
	}
	return b.tracks
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
