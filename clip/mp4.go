package clip

import (
	"encoding/binary"
	"math"
)

// movieTimescale is mvhd's (and so tkhd's and the edit lists') timescale,
// as ffmpeg's MP4 muxer has it.
const movieTimescale = 1000

// fixedSize is an upper bound of the file's bytes other than the sample
// data and the per-sample and per-chunk table entries.
func fixedSize(infos []trackInfo) int64 {
	n := int64(1024)
	for i := range infos {
		n += 1024 + int64(len(infos[i].stsd))
	}
	return n
}

// layout computes the file's head (ftyp, moov, mdat header) and its size.
func (c *Clip) layout() error {
	var data int64
	for i := range c.frags {
		for _, r := range c.frags[i].refs {
			data += int64(r.size)
		}
	}
	mdatHead := int64(8)
	if data+8 > math.MaxUint32 {
		mdatHead = 16
	}
	ftyp := c.ftyp()
	// The moov's size does not depend on the chunk offsets, only on
	// whether they need 64 bits.
	co64 := false
	moov := c.moov(nil, 0, co64)
	if int64(len(ftyp)+len(moov))+mdatHead+data > math.MaxUint32 {
		co64 = true
		moov = c.moov(nil, 0, co64)
	}
	start := int64(len(ftyp)+len(moov)) + mdatHead
	head := make([]byte, 0, start)
	head = append(head, ftyp...)
	head = c.moov(head, start, co64)
	if mdatHead == 8 {
		head = binary.BigEndian.AppendUint32(head, uint32(8+data))
		head = append(head, "mdat"...)
	} else {
		head = binary.BigEndian.AppendUint32(head, 1)
		head = append(head, "mdat"...)
		head = binary.BigEndian.AppendUint64(head, uint64(16+data))
	}
	c.head = head
	c.Size = int64(len(head)) + data
	return nil
}

func (c *Clip) ftyp() []byte {
	brands := []string{"isom", "iso2", "mp41"}
	if len(c.tracks) > 0 && c.tracks[0].info.kind == kindAVC {
		brands = []string{"isom", "iso2", "avc1", "mp41"}
	}
	b := boxStart(nil, "ftyp")
	b = append(b, "isom"...)
	b = binary.BigEndian.AppendUint32(b, 512)
	for _, br := range brands {
		b = append(b, br...)
	}
	return boxEnd(b, 0)
}

// boxStart appends a box header whose size boxEnd fills in.
func boxStart(b []byte, typ string) []byte {
	b = append(b, 0, 0, 0, 0)
	return append(b, typ...)
}

// boxEnd sets the size of the box that starts at start.
func boxEnd(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func fullBox(b []byte, typ string, version byte, flags uint32) []byte {
	b = boxStart(b, typ)
	return binary.BigEndian.AppendUint32(b, uint32(version)<<24|flags)
}

// unityMatrix is the identity transformation of mvhd and tkhd.
var unityMatrix = [9]uint32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000}

func appendMatrix(b []byte) []byte {
	for _, v := range unityMatrix {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// rescale converts v from timescale from to timescale to, rounding up.
func rescale(v int64, from, to uint32) int64 {
	q, r := v/int64(from), v%int64(from)
	return q*int64(to) + (r*int64(to)+int64(from)-1)/int64(from)
}

// edit is a track's edit list: an empty edit of empty movie units, then
// its media from mediaTime for dur movie units.
type edit struct {
	empty, mediaTime, dur int64
	needed                bool
}

// edits computes each track's edit list and duration in the movie timescale.
func (c *Clip) edits() ([]edit, int64) {
	var start int64 = math.MaxInt64 // earliest presentation, ns
	for _, tr := range c.tracks {
		if tr.has {
			start = min(start, timescaleToNS(tr.presStart, tr.info.timescale))
		}
	}
	eds := make([]edit, len(c.tracks))
	var movieDur int64
	for i, tr := range c.tracks {
		if !tr.has {
			continue
		}
		ts := tr.info.timescale
		e := &eds[i]
		e.empty = (timescaleToNS(tr.presStart, ts) - start + 5e5) / 1e6 // ms, rounded
		e.mediaTime = max(0, tr.presStart-tr.firstDT)
		e.dur = rescale(tr.presEnd-tr.presStart, ts, movieTimescale)
		e.needed = e.empty > 0 || e.mediaTime != 0
		if !e.needed {
			e.dur = rescale(tr.mediaDur, ts, movieTimescale)
		}
		movieDur = max(movieDur, e.empty+e.dur)
	}
	return eds, movieDur
}

// moov appends the moov box; chunk offsets count from dataStart (the
// first byte of mdat's payload).
func (c *Clip) moov(b []byte, dataStart int64, co64 bool) []byte {
	eds, movieDur := c.edits()
	moov := len(b)
	b = boxStart(b, "moov")

	nextID := uint32(1)
	for i, tr := range c.tracks {
		if tr.has {
			nextID = uint32(i + 2)
		}
	}
	v := byte(0)
	if movieDur > math.MaxUint32 {
		v = 1
	}
	at := len(b)
	b = fullBox(b, "mvhd", v, 0)
	b = appendTimes(b, v, movieTimescale, movieDur)
	b = binary.BigEndian.AppendUint32(b, 0x00010000) // rate 1.0
	b = binary.BigEndian.AppendUint16(b, 0x0100)     // volume 1.0
	b = append(b, make([]byte, 10)...)
	b = appendMatrix(b)
	b = append(b, make([]byte, 24)...) // pre_defined
	b = binary.BigEndian.AppendUint32(b, nextID)
	b = boxEnd(b, at)

	for i, tr := range c.tracks {
		if tr.has {
			b = c.trak(b, i, tr, eds[i], dataStart, co64)
		}
	}
	return boxEnd(b, moov)
}

// appendTimes appends creation and modification times (0), a timescale and
// a duration, 32 or 64 bits by version.
func appendTimes(b []byte, version byte, timescale uint32, dur int64) []byte {
	if version == 1 {
		b = append(b, make([]byte, 16)...)
		b = binary.BigEndian.AppendUint32(b, timescale)
		return binary.BigEndian.AppendUint64(b, uint64(dur))
	}
	b = append(b, make([]byte, 8)...)
	b = binary.BigEndian.AppendUint32(b, timescale)
	return binary.BigEndian.AppendUint32(b, uint32(dur))
}

func (c *Clip) trak(b []byte, index int, tr *trackTable, e edit, dataStart int64, co64 bool) []byte {
	in := &tr.info
	trak := len(b)
	b = boxStart(b, "trak")

	// tkhd: enabled, in movie; creation and modification 0 (unknown).
	tkDur := e.empty + e.dur
	v := byte(0)
	if tkDur > math.MaxUint32 {
		v = 1
	}
	at := len(b)
	b = fullBox(b, "tkhd", v, 3)
	if v == 1 {
		b = append(b, make([]byte, 16)...)
		b = binary.BigEndian.AppendUint32(b, uint32(index+1))
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(tkDur))
	} else {
		b = append(b, make([]byte, 8)...)
		b = binary.BigEndian.AppendUint32(b, uint32(index+1))
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(tkDur))
	}
	b = append(b, make([]byte, 8)...)       // reserved
	b = binary.BigEndian.AppendUint16(b, 0) // layer
	if in.kind.video() {
		b = binary.BigEndian.AppendUint16(b, 0) // alternate group
		b = binary.BigEndian.AppendUint16(b, 0) // volume
	} else {
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint16(b, 0x0100)
	}
	b = binary.BigEndian.AppendUint16(b, 0)
	b = appendMatrix(b)
	b = binary.BigEndian.AppendUint32(b, uint32(in.width)<<16)
	b = binary.BigEndian.AppendUint32(b, uint32(in.height)<<16)
	b = boxEnd(b, at)

	if e.needed {
		edts := len(b)
		b = boxStart(b, "edts")
		v := byte(0)
		if e.empty > math.MaxUint32 || e.dur > math.MaxUint32 || e.mediaTime > math.MaxInt32 {
			v = 1
		}
		at := len(b)
		b = fullBox(b, "elst", v, 0)
		n := uint32(1)
		if e.empty > 0 {
			n = 2
		}
		b = binary.BigEndian.AppendUint32(b, n)
		entry := func(dur, mediaTime int64) {
			if v == 1 {
				b = binary.BigEndian.AppendUint64(b, uint64(dur))
				b = binary.BigEndian.AppendUint64(b, uint64(mediaTime))
			} else {
				b = binary.BigEndian.AppendUint32(b, uint32(dur))
				b = binary.BigEndian.AppendUint32(b, uint32(int32(mediaTime)))
			}
			b = binary.BigEndian.AppendUint32(b, 0x00010000) // media rate 1.0
		}
		if e.empty > 0 {
			entry(e.empty, -1)
		}
		entry(e.dur, e.mediaTime)
		b = boxEnd(b, at)
		b = boxEnd(b, edts)
	}

	mdia := len(b)
	b = boxStart(b, "mdia")
	v = 0
	if tr.mediaDur > math.MaxUint32 {
		v = 1
	}
	at = len(b)
	b = fullBox(b, "mdhd", v, 0)
	b = appendTimes(b, v, in.timescale, tr.mediaDur)
	b = binary.BigEndian.AppendUint16(b, 0x55c4) // language "und"
	b = binary.BigEndian.AppendUint16(b, 0)
	b = boxEnd(b, at)

	handler, name := "soun", "SoundHandler"
	if in.kind.video() {
		handler, name = "vide", "VideoHandler"
	}
	at = len(b)
	b = fullBox(b, "hdlr", 0, 0)
	b = binary.BigEndian.AppendUint32(b, 0) // pre_defined
	b = append(b, handler...)
	b = append(b, make([]byte, 12)...)
	b = append(b, name...)
	b = append(b, 0)
	b = boxEnd(b, at)

	minf := len(b)
	b = boxStart(b, "minf")
	at = len(b)
	if in.kind.video() {
		b = fullBox(b, "vmhd", 0, 1)
		b = append(b, make([]byte, 8)...) // graphicsmode, opcolor
	} else {
		b = fullBox(b, "smhd", 0, 0)
		b = append(b, make([]byte, 4)...) // balance, reserved
	}
	b = boxEnd(b, at)
	dinf := len(b)
	b = boxStart(b, "dinf")
	at = len(b)
	b = fullBox(b, "dref", 0, 0)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = fullBox(b, "url ", 0, 1) // self-contained
	b = boxEnd(b, len(b)-12)
	b = boxEnd(b, at)
	b = boxEnd(b, dinf)

	b = c.stbl(b, index, tr, dataStart, co64)
	b = boxEnd(b, minf)
	b = boxEnd(b, mdia)
	return boxEnd(b, trak)
}

func (c *Clip) stbl(b []byte, index int, tr *trackTable, dataStart int64, co64 bool) []byte {
	stbl := len(b)
	b = boxStart(b, "stbl")
	b = append(b, tr.info.stsd...)

	at := len(b)
	b = fullBox(b, "stts", 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(tr.stts)))
	for _, r := range tr.stts {
		b = binary.BigEndian.AppendUint32(b, r.count)
		b = binary.BigEndian.AppendUint32(b, uint32(r.value))
	}
	b = boxEnd(b, at)

	if len(tr.ctts) > 1 || len(tr.ctts) == 1 && tr.ctts[0].value != 0 {
		v := byte(0)
		if tr.negCTO {
			v = 1
		}
		at = len(b)
		b = fullBox(b, "ctts", v, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(tr.ctts)))
		for _, r := range tr.ctts {
			b = binary.BigEndian.AppendUint32(b, r.count)
			b = binary.BigEndian.AppendUint32(b, uint32(int32(r.value)))
		}
		b = boxEnd(b, at)
	}

	// stss only when some sample is not a sync sample (its absence means
	// all are).
	if tr.info.kind.video() && len(tr.stss) < tr.n {
		at = len(b)
		b = fullBox(b, "stss", 0, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(tr.stss)))
		for _, n := range tr.stss {
			b = binary.BigEndian.AppendUint32(b, n)
		}
		b = boxEnd(b, at)
	}

	at = len(b)
	b = fullBox(b, "stsc", 0, 0)
	countAt := len(b)
	b = binary.BigEndian.AppendUint32(b, 0)
	entries := uint32(0)
	for i, n := range tr.chunks {
		if i > 0 && tr.chunks[i-1] == n {
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(i+1)) // first chunk
		b = binary.BigEndian.AppendUint32(b, n)
		b = binary.BigEndian.AppendUint32(b, 1) // sample description index
		entries++
	}
	binary.BigEndian.PutUint32(b[countAt:], entries)
	b = boxEnd(b, at)

	at = len(b)
	b = fullBox(b, "stsz", 0, 0)
	b = binary.BigEndian.AppendUint32(b, 0) // sizes vary
	b = binary.BigEndian.AppendUint32(b, uint32(tr.n))
	for _, s := range tr.sizes {
		b = binary.BigEndian.AppendUint32(b, s)
	}
	b = boxEnd(b, at)

	at = len(b)
	if co64 {
		b = fullBox(b, "co64", 0, 0)
	} else {
		b = fullBox(b, "stco", 0, 0)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(tr.chunks)))
	// Chunks in mdat order: per fragment track 1's, then track 2's.
	off := dataStart
	for i := range c.frags {
		for _, part := range c.frags[i].parts {
			if part.track == index {
				if co64 {
					b = binary.BigEndian.AppendUint64(b, uint64(off))
				} else {
					b = binary.BigEndian.AppendUint32(b, uint32(off))
				}
			}
			off += part.size
		}
	}
	b = boxEnd(b, at)
	return boxEnd(b, stbl)
}
