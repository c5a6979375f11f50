package clip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/hls"
)

// Tracks of the tests: H.264 640x480 (a real SPS), AAC LC 48 kHz stereo,
// G.711 A-law and µ-law 8 kHz mono (WAVEFORMATEX).
var (
	tVideo = mkv.Track{Number: 1, UID: 1, Type: 1, CodecID: "V_MPEG4/ISO/AVC", Width: 640, Height: 480,
		CodecPrivate: []byte{1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 0x1d, 0x67, 0x64, 0, 0x1e, 0xac, 0xb2, 1, 0x40, 0x7b, 0x60, 0x2d, 0x41, 0x80, 0x41, 0x50, 0, 0, 3, 0, 0x10, 0, 0, 3, 3, 0x28, 0xf1, 0x62, 0xe4, 0x80, 1, 0, 5, 0x68, 0xeb, 0xcc, 0xb2, 0x2c}}
	tAAC  = mkv.Track{Number: 2, UID: 2, Type: 2, CodecID: "A_AAC", SamplingFreq: 48000, Channels: 2, CodecPrivate: []byte{0x11, 0x90}}
	tALaw = mkv.Track{Number: 2, UID: 2, Type: 2, CodecID: "A_MS/ACM", SamplingFreq: 8000, Channels: 1,
		CodecPrivate: []byte{6, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0, 0, 0}}
	tULaw = mkv.Track{Number: 2, UID: 2, Type: 2, CodecID: "A_MS/ACM", SamplingFreq: 8000, Channels: 1,
		CodecPrivate: []byte{7, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0, 0, 0}}
)

const ms = int64(1e6)

// tSample is a sample of a test fragment; times in ns from the fragment's start.
type tSample struct {
	track         uint8
	key           bool
	pts, dts, dur int64
	data          []byte
}

// fakeArchive is an in-memory index over payload files in a temp dir.
type fakeArchive struct {
	t       *testing.T
	dir     string
	frags   []fragments.Fragment
	metas   map[int64]*fragments.Meta
	headers map[int64]*fragments.Header
}

func newArchive(t *testing.T, headers ...[]mkv.Track) *fakeArchive {
	a := &fakeArchive{t: t, dir: t.TempDir(), metas: map[int64]*fragments.Meta{}, headers: map[int64]*fragments.Header{}}
	for i, tr := range headers {
		a.headers[int64(i+1)] = &fragments.Header{ID: int64(i + 1), StreamID: 1, TimecodeScale: 1e6, Tracks: tr}
	}
	return a
}

// add stores a fragment: its samples' bytes with 5 bytes of "block
// header" before each, at offset 7 of its own segment file.
func (a *fakeArchive) add(header int64, producerNS, serverNS int64, samples []tSample) {
	ord := int64(len(a.frags) + 1)
	payload := []byte{0x1f, 0x43, 0xb6, 0x75, 0x01}
	m := &fragments.Meta{}
	var end int64
	for _, s := range samples {
		payload = append(payload, 0xa3, 0x80, 0x81, 0, 0)
		m.Samples = append(m.Samples, fragments.Sample{Track: s.track, Key: s.key, PTS: s.pts, DTS: s.dts, Dur: s.dur, Offset: int64(len(payload)), Size: int64(len(s.data))})
		payload = append(payload, s.data...)
		end = max(end, s.pts+s.dur)
	}
	seg := append(bytes.Repeat([]byte{0xee}, 7), payload...)
	if err := os.WriteFile(filepath.Join(a.dir, fmt.Sprint(ord)), seg, 0o644); err != nil {
		a.t.Fatal(err)
	}
	a.frags = append(a.frags, fragments.Fragment{StreamID: 1, Ordinal: ord, Number: uint64(1000 + ord), ProducerNS: producerNS, ServerNS: serverNS,
		DurationNS: end, Size: int64(len(payload)), SegmentID: ord, Offset: 7, HeaderID: header})
	a.metas[ord] = m
}

func (a *fakeArchive) Fragments(q fragments.FragmentQuery) ([]fragments.Fragment, error) {
	ts := func(f *fragments.Fragment) int64 {
		if q.By == fragments.ByProducer {
			return f.ProducerNS
		}
		return f.ServerNS
	}
	var out []fragments.Fragment
	for _, f := range a.frags {
		t := ts(&f)
		if f.StreamID != q.StreamID || t < q.From || t > q.To || f.ServerNS < q.MinServerNS ||
			t < q.AfterTS || t == q.AfterTS && f.Ordinal <= q.AfterOrdinal {
			continue
		}
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(x, y fragments.Fragment) int {
		if c := ts(&x) - ts(&y); c != 0 {
			return int(max(-1, min(1, c)))
		}
		return int(x.Ordinal - y.Ordinal)
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (a *fakeArchive) Meta(_, ordinal int64) (*fragments.Meta, error) {
	m := a.metas[ordinal]
	if m == nil {
		return nil, fragments.ErrNotFound
	}
	c := *m
	c.Samples = slices.Clone(m.Samples)
	return &c, nil
}

func (a *fakeArchive) Header(id int64) (*fragments.Header, error) {
	h := a.headers[id]
	if h == nil {
		return nil, fragments.ErrNotFound
	}
	return h, nil
}

func (a *fakeArchive) Open(_, segmentID int64) (fragments.SegmentReader, error) {
	return os.Open(filepath.Join(a.dir, fmt.Sprint(segmentID)))
}

// video is n frames of 25 fps from 0, a key frame first, each frame's bytes
// from seed.
func video(n int, seed byte) []tSample {
	var s []tSample
	for k := range n {
		s = append(s, tSample{track: 0, key: k == 0, pts: int64(k) * 40 * ms, dts: int64(k) * 40 * ms, dur: 40 * ms, data: bytes.Repeat([]byte{seed + byte(k)}, 300+k)})
	}
	return s
}

// interleave merges two tracks' samples by decode time (stable), as a
// muxer stores them.
func interleave(a, b []tSample) []tSample {
	out := append(slices.Clone(a), b...)
	slices.SortStableFunc(out, func(x, y tSample) int { return int(max(-1, min(1, x.dts-y.dts))) })
	return out
}

// build writes a clip of the archive's whole range.
func build(t *testing.T, a *fakeArchive, r Request) (*Clip, []byte) {
	t.Helper()
	if r.EndNS == 0 {
		r.StreamID, r.StartNS, r.EndNS = 1, -1<<62, 1<<62
	}
	c, err := New(a, a, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var out bytes.Buffer
	n, err := c.WriteTo(&out)
	if err != nil || n != c.Size || int64(out.Len()) != c.Size {
		t.Fatalf("WriteTo: %d bytes, %v; Size %d", n, err, c.Size)
	}
	return c, out.Bytes()
}

// pTrack is a track of a clip as mp4ff reads it.
type pTrack struct {
	timescale uint32
	handler   string
	entry     string // sample entry 4CC
	dts, pts  []int64
	data      [][]byte
	sync      []bool
	elst      []mp4.ElstEntry
}

// parse decodes a clip with mp4ff and expands its sample tables.
func parse(t *testing.T, b []byte) []pTrack {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("mp4ff: %v", err)
	}
	if f.Moov == nil || f.Mdat == nil || f.IsFragmented() {
		t.Fatal("not a progressive MP4")
	}
	var out []pTrack
	for _, trak := range f.Moov.Traks {
		stbl := trak.Mdia.Minf.Stbl
		p := pTrack{timescale: trak.Mdia.Mdhd.Timescale, handler: trak.Mdia.Hdlr.HandlerType, entry: stbl.Stsd.Children[0].Type()}
		if trak.Edts != nil {
			p.elst = trak.Edts.Elst[0].Entries
		}
		var dt int64
		for i, n := range stbl.Stts.SampleCount {
			for range n {
				p.dts = append(p.dts, dt)
				dt += int64(stbl.Stts.SampleTimeDelta[i])
			}
		}
		p.dts = append(p.dts, dt) // the end
		var offsets []uint64
		if stbl.Stco != nil {
			for _, o := range stbl.Stco.ChunkOffset {
				offsets = append(offsets, uint64(o))
			}
		} else {
			offsets = stbl.Co64.ChunkOffset
		}
		sample := 0
		for ci, off := range offsets {
			per := uint32(0)
			for _, e := range stbl.Stsc.Entries {
				if e.FirstChunk <= uint32(ci+1) {
					per = e.SamplesPerChunk
				}
			}
			for range per {
				size := uint64(stbl.Stsz.SampleSize[sample])
				p.data = append(p.data, b[off:off+size])
				off += size
				sample++
			}
		}
		if sample != len(stbl.Stsz.SampleSize) || sample != len(p.dts)-1 {
			t.Fatalf("%d samples in chunks, %d sizes, %d times", sample, len(stbl.Stsz.SampleSize), len(p.dts)-1)
		}
		for i := range sample {
			cto := int64(0)
			if stbl.Ctts != nil {
				cto = int64(stbl.Ctts.GetCompositionTimeOffset(uint32(i + 1)))
			}
			p.pts = append(p.pts, p.dts[i]+cto)
			p.sync = append(p.sync, stbl.Stss == nil || slices.Contains(stbl.Stss.SampleNumber, uint32(i+1)))
		}
		out = append(out, p)
	}
	return out
}

// wantData is the samples' bytes of a track in clip order.
func wantData(frags [][]tSample, track uint8) [][]byte {
	var d [][]byte
	for _, f := range frags {
		for _, s := range f {
			if s.track == track {
				d = append(d, s.data)
			}
		}
	}
	return d
}

func checkData(t *testing.T, p pTrack, want [][]byte) {
	t.Helper()
	if len(p.data) != len(want) {
		t.Fatalf("%d samples, want %d", len(p.data), len(want))
	}
	for i := range want {
		if !bytes.Equal(p.data[i], want[i]) {
			t.Fatalf("sample %d: %d bytes % x..., want %d bytes % x...", i, len(p.data[i]), p.data[i][:min(4, len(p.data[i]))], len(want[i]), want[i][:min(4, len(want[i]))])
		}
	}
}

// TestClipSamplesAndTiming: video with B-frames and AAC over three
// fragments: every sample's bytes in order, decode times from the
// fragments' timestamps, composition offsets, sync samples, and an edit
// list that shows the first frame at 0.
func TestClipSamplesAndTiming(t *testing.T) {
	a := newArchive(t, []mkv.Track{tVideo, tAAC})
	// Presentation order I0 P3 B1 B2 P6 B4 B5 ..., as ingest stores them:
	// decode times the sorted presentation times shifted back one frame.
	order := []int{0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11}
	var frags [][]tSample
	for f := range 3 {
		var v []tSample
		for k, p := range order {
			v = append(v, tSample{track: 0, key: k == 0, pts: int64(p) * 40 * ms, dts: int64(k-1) * 40 * ms, dur: 40 * ms, data: []byte{byte(f), byte(k), 1, 2}})
		}
		var au []tSample
		for k := range 24 { // 24 frames of 1024 at 48 kHz: 512 ms
			d := int64(k) * 1024 * 1e9 / 48000
			au = append(au, tSample{track: 1, key: true, pts: d, dts: d, dur: 1024 * int64(1e9) / 48000, data: []byte{0x21, byte(f), byte(k)}})
		}
		s := interleave(v, au)
		frags = append(frags, s)
		start := 1_790_000_000*1e9 + int64(f)*520*ms // 13 frames of 40 ms
		a.add(1, start, start+5*ms, s)
	}
	c, b := build(t, a, Request{})
	if c.Fragments != 3 || c.Cut != NotCut || c.FirstNS != a.frags[0].ServerNS || c.LastNS != a.frags[2].ServerNS {
		t.Fatalf("clip %+v", c)
	}
	tr := parse(t, b)
	if len(tr) != 2 || tr[0].handler != "vide" || tr[0].entry != "avc1" || tr[0].timescale != 90000 ||
		tr[1].handler != "soun" || tr[1].entry != "mp4a" || tr[1].timescale != 48000 {
		t.Fatalf("tracks %+v", tr)
	}
	checkData(t, tr[0], wantData(frags, 0))
	checkData(t, tr[1], wantData(frags, 1))
	v := tr[0]
	for i := range v.pts {
		f, k := i/len(order), i%len(order)
		// Server timestamps (the default): fragments 520 ms apart, decode
		// times one frame before the first presentation.
		if want := (int64(f)*520*ms + int64(k)*40*ms) * 90000 / 1e9; v.dts[i] != want {
			t.Fatalf("video sample %d: decode time %d, want %d", i, v.dts[i], want)
		}
		if want := (int64(f)*520*ms + int64(order[k]+1)*40*ms) * 90000 / 1e9; v.pts[i] != want {
			t.Fatalf("video sample %d: presentation time %d, want %d", i, v.pts[i], want)
		}
		if v.sync[i] != (k == 0) {
			t.Fatalf("video sample %d: sync %v", i, v.sync[i])
		}
	}
	// The edit list starts the video at its first presented frame: one
	// frame (3600) into its media, at movie time 0.
	if len(v.elst) != 1 || v.elst[0].MediaTime != 3600 || v.elst[0].SegmentDuration != 1560 {
		t.Fatalf("video edit list %+v, want one edit from 3600 of 1560 ms", v.elst)
	}
	au := tr[1]
	for i := range au.data {
		f, k := int64(i/24), int64(i%24)
		if want := ((f*520*ms+k*1024*1e9/48000)*48000 + 5e8) / 1e9; au.dts[i] != want || au.pts[i] != want || !au.sync[i] {
			t.Fatalf("audio sample %d at %d/%d sync %v, want %d", i, au.dts[i], au.pts[i], au.sync[i], want)
		}
	}
	// The last audio frame of a fragment lasts to the next fragment's first
	// (520 ms after its start: 8 ms past its own end).
	if d := au.dts[24] - au.dts[23]; d != 520*48-23*1024 {
		t.Fatalf("last audio frame of fragment 1 lasts %d, want %d", d, 520*48-23*1024)
	}
	if au.elst != nil {
		t.Fatalf("audio edit list %+v, want none", au.elst)
	}
}

// TestClipWritePaths: sendfile-style ReadFrom of large samples, windows of
// small ones, and samples larger than the copy buffer give the same bytes.
func TestClipWritePaths(t *testing.T) {
	a := newArchive(t, []mkv.Track{tVideo, tAAC})
	var frags [][]tSample
	for f := range 4 {
		v := video(25, byte(f*40))
		for k := range v {
			v[k].data = bytes.Repeat([]byte{byte(f), byte(k)}, 50*(k+1)) // 100 B to 2.5 kB
		}
		var au []tSample
		for k := range 47 {
			d := int64(k) * 1024 * 1e9 / 48000
			au = append(au, tSample{track: 1, key: true, pts: d, dts: d, dur: 21 * ms, data: []byte{0x21, byte(f), byte(k)}})
		}
		frags = append(frags, interleave(v, au))
		a.add(1, int64(f)*1000*ms, int64(f)*1000*ms, frags[f])
	}
	defer func(min int64, size int) { sendfileMin, copyBufSize = min, size }(sendfileMin, copyBufSize)
	var outs [][]byte
	for _, c := range []struct {
		min  int64
		size int
		w    func(io.Writer) io.Writer
	}{
		{64 << 10, 256 << 10, func(w io.Writer) io.Writer { return w }},           // windows only
		{1000, 256 << 10, func(w io.Writer) io.Writer { return w }},               // ReadFrom from 1 kB
		{1000, 256 << 10, func(w io.Writer) io.Writer { return writerOnly{w} }},   // no ReadFrom: windows
		{1 << 30, 1024, func(w io.Writer) io.Writer { return writerOnly{w} }},     // 1 kB windows, larger samples copied
		{1 << 30, 4096, func(w io.Writer) io.Writer { return &oneByteWriter{w} }}, // short writes are no trouble
	} {
		sendfileMin, copyBufSize = c.min, c.size
		cl, err := New(a, a, Request{StreamID: 1, StartNS: 0, EndNS: 1 << 62})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		n, err := cl.WriteTo(c.w(&out))
		cl.Close()
		if err != nil || n != cl.Size || int64(out.Len()) != cl.Size {
			t.Fatalf("min %d buf %d: %d bytes, %v (Size %d)", c.min, c.size, n, err, cl.Size)
		}
		outs = append(outs, out.Bytes())
	}
	for i := 1; i < len(outs); i++ {
		if !bytes.Equal(outs[i], outs[0]) {
			t.Fatalf("write path %d differs from the first", i)
		}
	}
	tr := parse(t, outs[0])
	checkData(t, tr[0], wantData(frags, 0))
	checkData(t, tr[1], wantData(frags, 1))
}

type oneByteWriter struct{ w io.Writer }

func (o *oneByteWriter) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := o.w.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// TestClipGapAndOverlap: a gap makes the last frame before it longer and
// keeps the times after it; a fragment that starts before the previous one
// ends (producer timestamps gone back) is laid after it, whole.
func TestClipGapAndOverlap(t *testing.T) {
	a := newArchive(t, []mkv.Track{tVideo, tAAC})
	au := func(n int, seed byte) []tSample {
		var s []tSample
		for k := range n {
			d := int64(k) * 20 * ms
			s = append(s, tSample{track: 1, key: true, pts: d, dts: d, dur: 20 * ms, data: []byte{seed, byte(k)}})
		}
		return s
	}
	// 1 s at 0; 1 s at 3 s (a 2 s gap); 1 s at 3.5 s (half a second back).
	for i, start := range []int64{0, 3000, 3500} {
		a.add(1, start*ms, int64(i)*ms, interleave(video(25, byte(i*50)), au(50, byte(i))))
	}
	_, b := build(t, a, Request{StreamID: 1, Producer: true, StartNS: 0, EndNS: 10000 * ms})
	tr := parse(t, b)
	for ti, step := range []int64{40, 20} {
		p := tr[ti]
		n := len(p.data) / 3
		at := func(ms int64) int64 { return ms * int64(p.timescale) / 1000 }
		for i := range len(p.data) {
			want := []int64{0, 3000, 4000}[i/n] + int64(i%n)*step
			if p.dts[i] != at(want) {
				t.Fatalf("track %d sample %d at %d, want %d ms (%d)", ti, i, p.dts[i], want, at(want))
			}
		}
		if d := p.dts[n] - p.dts[n-1]; d != at(2000+step) {
			t.Fatalf("track %d: the frame before the gap lasts %d, want %d", ti, d, at(2000+step))
		}
		if end := p.dts[len(p.dts)-1]; end != at(5000) {
			t.Fatalf("track %d ends at %d, want %d", ti, end, at(5000))
		}
	}
}

// TestClipG711: A-law samples last their byte count; fragment timestamps
// a few ms off (rounded block timecodes) change nothing, a real gap is kept.
func TestClipG711(t *testing.T) {
	a := newArchive(t, []mkv.Track{tVideo, tALaw})
	al := func(n int, seed byte) []tSample {
		var s []tSample
		for k := range n {
			d := int64(k) * 40 * ms
			s = append(s, tSample{track: 1, key: true, pts: d, dts: d, dur: 40 * ms, data: bytes.Repeat([]byte{seed + byte(k)}, 320)})
		}
		return s
	}
	// Fragments of 1 s at 0, 1.003 s (3 ms late: timecode rounding) and
	// 3.003 s (a 1 s gap).
	for i, start := range []int64{0, 1003, 3003} {
		a.add(1, start*ms, start*ms, interleave(video(25, byte(i*50)), al(25, byte(i*50))))
	}
	_, b := build(t, a, Request{})
	tr := parse(t, b)
	p := tr[1]
	if p.entry != "alaw" || p.timescale != 8000 || len(p.data) != 75 {
		t.Fatalf("G.711 track: %s at %d, %d samples", p.entry, p.timescale, len(p.data))
	}
	for i := range 75 {
		want := int64(i) * 320
		if i >= 50 {
			want = 3003*8 + int64(i-50)*320
		}
		if p.dts[i] != want || p.pts[i] != want {
			t.Fatalf("sample %d at %d/%d, want %d", i, p.dts[i], p.pts[i], want)
		}
	}
}

// TestClipDedup: of fragments with the same producer timestamp the first
// ingested is kept (the API reference: "only the oldest ingested
// collection of fragments are returned"); server timestamps keep all.
func TestClipDedup(t *testing.T) {
	a := newArchive(t, []mkv.Track{tVideo})
	a.add(1, 0, 10*ms, video(25, 0))
	a.add(1, 1000*ms, 11*ms, video(25, 100))
	a.add(1, 0, 20*ms, video(25, 50)) // the same two again, later
	a.add(1, 1000*ms, 21*ms, video(25, 150))
	a.add(1, 2000*ms, 22*ms, video(25, 200))
	for _, c := range []struct {
		producer bool
		seeds    []byte
	}{{true, []byte{0, 100, 200}}, {false, []byte{0, 100, 50, 150, 200}}} {
		_, b := build(t, a, Request{StreamID: 1, Producer: c.producer, StartNS: 0, EndNS: 1 << 62})
		var want [][]byte
		for _, s := range c.seeds {
			want = append(want, wantData([][]tSample{video(25, s)}, 0)...)
		}
		checkData(t, parse(t, b)[0], want)
	}
}

// TestClipLimits: the fragment and byte limits, and the first fragment
// always.
func TestClipLimits(t *testing.T) {
	a := newArchive(t, []mkv.Track{tVideo})
	for i := range 5 {
		a.add(1, int64(i)*1000*ms, int64(i)*1000*ms, video(25, byte(i)))
	}
	full, _ := build(t, a, Request{})
	if full.Fragments != 5 || full.Cut != NotCut {
		t.Fatalf("whole range: %d fragments, cut %q", full.Fragments, full.Cut)
	}
	c, b := build(t, a, Request{StreamID: 1, StartNS: 0, EndNS: 1 << 62, Limits: Limits{MaxFragments: 3}})
	if c.Fragments != 3 || c.Cut != CutFragments || c.NextNS != 3000*ms || len(parse(t, b)[0].data) != 75 {
		t.Fatalf("3 fragments: %d, cut %q next %d", c.Fragments, c.Cut, c.NextNS)
	}
	for _, limit := range []int64{full.Size - 1, full.Size * 3 / 5, full.Size / 4, 1} {
		c, b := build(t, a, Request{StreamID: 1, StartNS: 0, EndNS: 1 << 62, Limits: Limits{MaxBytes: limit}})
		if c.Cut != CutBytes || c.NextNS != int64(c.Fragments)*1000*ms || len(parse(t, b)[0].data) != 25*c.Fragments {
			t.Fatalf("limit %d: %d fragments, cut %q next %d", limit, c.Fragments, c.Cut, c.NextNS)
		}
		if c.Fragments > 1 && c.Size > limit || c.Fragments == 1 && limit > full.Size/4 {
			t.Fatalf("limit %d: %d fragments in %d bytes", limit, c.Fragments, c.Size)
		}
		// Not far below: at most one more fragment would have fitted.
		if c.Size+full.Size/5+5*25*perSample < limit {
			t.Fatalf("limit %d: only %d bytes", limit, c.Size)
		}
	}
	// The byte count is planned with upper bounds of the tables' size (up
	// to perSample bytes a sample, perChunk a chunk, fixedSize): a limit
	// that leaves room for them does not cut.
	infos, _ := trackInfos(a.headers[1])
	if c, _ := build(t, a, Request{StreamID: 1, StartNS: 0, EndNS: 1 << 62, Limits: Limits{MaxBytes: full.Size + fixedSize(infos) + 5*(25*perSample+perChunk)}}); c.Cut != NotCut {
		t.Fatalf("a limit with room for the tables cuts: %q", c.Cut)
	}
	// A range of nothing.
	if _, err := New(a, a, Request{StreamID: 1, StartNS: 10000 * ms, EndNS: 20000 * ms}); !errors.Is(err, ErrNoFragments) {
		t.Fatalf("empty range: %v", err)
	}
}

// TestClipCodecChange: a header whose sample descriptions differ ends the
// clip; one that differs in nothing a clip carries does not.
func TestClipCodecChange(t *testing.T) {
	renamed := tVideo
	renamed.Name = "camera"
	other := tVideo
	other.CodecPrivate = append([]byte{1, 0x4d, 0, 0x1f}, tVideo.CodecPrivate[4:]...)
	a := newArchive(t, []mkv.Track{tVideo}, []mkv.Track{renamed}, []mkv.Track{other})
	for i, h := range []int64{1, 2, 2, 3, 3} {
		a.add(h, int64(i)*1000*ms, int64(i)*1000*ms, video(25, byte(i)))
	}
	c, _ := build(t, a, Request{})
	if c.Fragments != 3 || c.Cut != CutCodecChange || c.NextNS != 3000*ms {
		t.Fatalf("%d fragments, cut %q next %d", c.Fragments, c.Cut, c.NextNS)
	}
}

// TestClipInvalidFrames: stored sample tables that cannot make an MP4.
func TestClipInvalidFrames(t *testing.T) {
	for _, c := range []struct {
		name   string
		tracks []mkv.Track
		edit   func(m *fragments.Meta, f *fragments.Fragment)
	}{
		{"no key frame first", []mkv.Track{tVideo}, func(m *fragments.Meta, _ *fragments.Fragment) { m.Samples[0].Key = false }},
		{"sample past the payload", []mkv.Track{tVideo}, func(m *fragments.Meta, f *fragments.Fragment) { m.Samples[3].Size = f.Size }},
		{"negative offset", []mkv.Track{tVideo}, func(m *fragments.Meta, _ *fragments.Fragment) { m.Samples[3].Offset = -1 }},
		{"decode time back", []mkv.Track{tVideo}, func(m *fragments.Meta, _ *fragments.Fragment) { m.Samples[5].DTS = m.Samples[4].DTS - 1 }},
		{"track index", []mkv.Track{tVideo}, func(m *fragments.Meta, _ *fragments.Fragment) { m.Samples[5].Track = 1 }},
		{"negative duration", []mkv.Track{tVideo}, func(m *fragments.Meta, _ *fragments.Fragment) { m.Samples[5].Dur = -1 }},
		{"G.711 half a sample", []mkv.Track{tVideo, func() mkv.Track {
			st := tALaw
			st.CodecPrivate = slices.Clone(tALaw.CodecPrivate)
			st.CodecPrivate[2] = 2 // stereo
			return st
		}()}, func(m *fragments.Meta, _ *fragments.Fragment) {
			m.Samples[len(m.Samples)-1].Size-- // 319 bytes of stereo
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := newArchive(t, c.tracks)
			s := video(10, 0)
			if len(c.tracks) > 1 {
				s = append(s, tSample{track: 1, key: true, pts: 400 * ms, dts: 400 * ms, dur: 40 * ms, data: make([]byte, 320)})
			}
			a.add(1, 0, 0, video(10, 0))
			a.add(1, 1000*ms, 1000*ms, s)
			c.edit(a.metas[2], &a.frags[1])
			_, err := New(a, a, Request{StreamID: 1, StartNS: 0, EndNS: 1 << 62})
			if !errors.Is(err, ErrInvalidMediaFrame) {
				t.Fatalf("%v, want ErrInvalidMediaFrame", err)
			}
			// The first fragment alone is fine.
			if _, err := New(a, a, Request{StreamID: 1, StartNS: 0, EndNS: 999 * ms}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestClipOver4GB: 64-bit chunk offsets and mdat size when the file
// passes 4 GiB (planned only: nothing is written).
func TestClipOver4GB(t *testing.T) {
	a := newArchive(t, []mkv.Track{tVideo})
	const big = 3 << 30
	for i := range 2 {
		a.add(1, int64(i)*1000*ms, int64(i)*1000*ms, video(1, 0))
		a.frags[i].Size = big + 100
		a.metas[int64(i+1)].Samples[0].Size = big
	}
	c, err := New(a, a, Request{StreamID: 1, StartNS: 0, EndNS: 1 << 62, Limits: Limits{MaxBytes: 1 << 40}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := c.head
	mdat := head[len(head)-16:]
	if binary.BigEndian.Uint32(mdat) != 1 || string(mdat[4:8]) != "mdat" || binary.BigEndian.Uint64(mdat[8:]) != 16+2*big || c.Size != int64(len(head))+2*big {
		t.Fatalf("mdat header % x, Size %d", mdat, c.Size)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(head[:len(head)-16]))
	if err != nil {
		t.Fatal(err)
	}
	stbl := f.Moov.Trak.Mdia.Minf.Stbl
	if stbl.Co64 == nil || stbl.Stco != nil || !slices.Equal(stbl.Co64.ChunkOffset, []uint64{uint64(len(head)), uint64(len(head)) + big}) {
		t.Fatalf("chunk offsets: co64 %+v stco %+v", stbl.Co64, stbl.Stco)
	}
}

// mkvHeader reads the track header of a Matroska file.
func mkvHeader(t *testing.T, path string) []mkv.Track {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := mkv.NewReader(f)
	for {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if ev.Kind == mkv.KindTracks {
			return ev.Header.Tracks
		}
	}
}

func TestCheckTracks(t *testing.T) {
	hevc := mkvHeader(t, "../hls/testdata/hevc.mkv")[0]
	aacOnly := tAAC
	aacOnly.Number = 1
	noPriv := tVideo
	noPriv.CodecPrivate = nil
	badPriv := tVideo
	badPriv.CodecPrivate = []byte{1, 2, 3}
	badAAC := tAAC
	badAAC.CodecPrivate = nil
	vp8 := tVideo
	vp8.CodecID = "V_VP8"
	for _, c := range []struct {
		name   string
		tracks []mkv.Track
		want   error
	}{
		{"H.264", []mkv.Track{tVideo}, nil},
		{"H.264 + AAC", []mkv.Track{tVideo, tAAC}, nil},
		{"H.264 + A-law", []mkv.Track{tVideo, tALaw}, nil},
		{"H.265", []mkv.Track{hevc}, nil},
		{"H.265 + AAC", []mkv.Track{hevc, tAAC}, nil},
		{"H.265 + A-law", []mkv.Track{hevc, tALaw}, hls.ErrUnsupportedMedia},
		{"H.264 + µ-law", []mkv.Track{tVideo, tULaw}, hls.ErrUnsupportedMedia},
		{"AAC alone", []mkv.Track{aacOnly}, hls.ErrUnsupportedMedia},
		{"AAC first", []mkv.Track{aacOnly, tVideo}, hls.ErrUnsupportedMedia},
		{"VP8", []mkv.Track{vp8}, hls.ErrUnsupportedMedia},
		{"three tracks", []mkv.Track{tVideo, tAAC, tAAC}, hls.ErrUnsupportedMedia},
		{"no tracks", nil, hls.ErrUnsupportedMedia},
		{"no avcC", []mkv.Track{noPriv}, hls.ErrMissingCodecPrivate},
		{"bad avcC", []mkv.Track{badPriv, tAAC}, hls.ErrInvalidCodecPrivate},
		{"no AudioSpecificConfig", []mkv.Track{tVideo, badAAC}, hls.ErrMissingCodecPrivate},
	} {
		err := CheckTracks(&fragments.Header{Tracks: c.tracks})
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
