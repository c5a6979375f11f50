package images

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

func TestOutputSize(t *testing.T) {
	for _, c := range []struct{ sw, sh, w, h, ww, wh int }{
		{1920, 1080, 0, 0, 1920, 1080},
		{1920, 1080, 640, 360, 640, 360},
		{1920, 1080, 640, 0, 640, 360},
		{1920, 1080, 0, 360, 640, 360},
		{1920, 1080, 100, 100, 100, 100},
		{1920, 1080, 1, 0, 1, 1},          // rounds to 0.56: at least 1
		{1920, 1080, 0, 1, 2, 1},          // 1.78 rounds to 2
		{1080, 1920, 3840, 0, 3840, 2160}, // 6827 capped
		{1080, 1920, 0, 2160, 1215, 2160},
		{320, 240, 0, 2160, 2880, 2160},
		{320, 240, 3840, 0, 3840, 2160}, // 2880 fits
		{300, 200, 0, 201, 302, 201},    // 301.5 rounds half up
	} {
		if w, h := OutputSize(c.sw, c.sh, c.w, c.h); w != c.ww || h != c.wh {
			t.Errorf("OutputSize(%d, %d, %d, %d) = %d x %d, want %d x %d", c.sw, c.sh, c.w, c.h, w, h, c.ww, c.wh)
		}
	}
}

func TestFrameAt(t *testing.T) {
	// Decode order I0 P3 B1 B2 of track 0, an audio frame between.
	s := []fragments.Sample{{Track: 0, PTS: 0}, {Track: 0, PTS: 300}, {Track: 1, PTS: 50}, {Track: 0, PTS: 100}, {Track: 0, PTS: 200}}
	for rel, want := range map[int64]int{-1: -1, 0: 0, 99: 0, 100: 3, 150: 3, 200: 4, 299: 4, 300: 1, 1e9: 1} {
		if got := FrameAt(s, rel); got != want {
			t.Errorf("FrameAt(%d) = %d, want %d", rel, got, want)
		}
	}
	if FrameAt([]fragments.Sample{{Track: 1}}, 10) != -1 {
		t.Error("an audio frame was chosen")
	}
}

func TestSplit(t *testing.T) {
	mk := func(costs ...int) []*gop {
		var out []*gop
		for _, c := range costs {
			f := &Fragment{Samples: make([]fragments.Sample, c)}
			out = append(out, &gop{frag: f, key: 0, last: c - 1})
		}
		return out
	}
	sizes := func(runs [][]*gop) string {
		var s []int
		for _, r := range runs {
			n := 0
			for _, g := range r {
				n += g.cost()
			}
			s = append(s, n)
		}
		return fmt.Sprint(s)
	}
	for _, c := range []struct {
		costs []int
		n     int
		want  string
	}{
		{[]int{1, 1, 1, 1}, 2, "[2 2]"},
		{[]int{1, 1, 1, 1, 1}, 2, "[2 3]"},
		{[]int{1, 100, 1}, 3, "[1 100 1]"},
		{[]int{10, 1, 1}, 2, "[10 2]"},
		{[]int{10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2, "[10 10]"},
		{[]int{1, 1, 1, 10}, 2, "[3 10]"},
		{[]int{5}, 4, "[5]"},
		{[]int{1, 1, 1}, 8, "[1 1 1]"},
		{[]int{3, 3, 3, 3, 3, 3}, 3, "[6 6 6]"},
		{[]int{1, 2, 3}, 1, "[6]"},
	} {
		gs := mk(c.costs...)
		runs := split(gs, c.n)
		if got := sizes(runs); got != c.want {
			t.Errorf("split(%v, %d) = %s, want %s", c.costs, c.n, got, c.want)
		}
		var back []*gop
		for _, r := range runs {
			back = append(back, r...)
		}
		if len(back) != len(gs) {
			t.Errorf("split(%v, %d) lost GOPs", c.costs, c.n)
		}
		for i := range back {
			if back[i] != gs[i] {
				t.Errorf("split(%v, %d) reordered GOPs", c.costs, c.n)
			}
		}
	}
}

func TestShowinfoPos(t *testing.T) {
	for line, want := range map[string][2]int64{
		"[Parsed_showinfo_3 @ 0x5558] n:   0 pts:  79999 pts_time:0.0666 pos:    63895 fmt:yuv420p sar:1/1": {0, 63895},
		"[Parsed_showinfo_2 @ 0x1] n:  12 pts:NOPTS pts_time:NOPTS pos:0 fmt:rgba":                          {12, 0},
		"[Parsed_showinfo_2 @ 0x1] n:  12 pts:1 pts_time:1 pos:       -1 fmt:rgba":                          {-1, -1},
		"[Parsed_showinfo_2 @ 0x1] color_range:pc color_space:unknown":                                      {-1, -1},
		"[h264 @ 0x1] n: 1 pos: 5":                         {-1, -1},
		"[Parsed_showinfo_2 @ 0x1] n:  1 pts: 1 pos:  12x": {-1, -1},
		"[Parsed_showinfo_2 @ 0x1] n: x1 pts: 1 pos:  12":  {-1, -1},
		"[Parsed_showinfo_2 @ 0x1] n:  7 pts: 1 pos:   9":  {7, 9},
	} {
		n, pos, ok := showinfoPos(line)
		if want[0] < 0 && ok || want[0] >= 0 && (!ok || n != want[0] || pos != want[1]) {
			t.Errorf("showinfoPos(%q) = %d, %d, %v; want %v", line, n, pos, ok, want)
		}
	}
}

func TestLRU(t *testing.T) {
	c := newLRU(3 * (100 + entryOverhead))
	key := func(i int) cacheKey { return cacheKey{stream: 1, number: uint64(i), format: JPEG} }
	put := func(i int) { c.put(&cacheEntry{key: key(i), data: make([]byte, 100)}) }
	put(1)
	put(2)
	put(3)
	if _, ok := c.get(key(1)); !ok { // 1 is now the most recent
		t.Fatal("1 missing")
	}
	put(4) // evicts 2
	if _, ok := c.get(key(2)); ok {
		t.Fatal("2 kept: not least recently used first")
	}
	for _, i := range []int{1, 3, 4} {
		if _, ok := c.get(key(i)); !ok {
			t.Fatalf("%d evicted", i)
		}
	}
	c.put(&cacheEntry{key: key(9), data: make([]byte, 10000)}) // larger than the cache: not kept
	if st := c.stats(); st.Entries != 3 || st.Bytes != 3*(100+entryOverhead) || st.Bytes > st.Limit {
		t.Fatalf("stats %+v", st)
	}
	put(3) // replacing keeps the size right
	if st := c.stats(); st.Entries != 3 || st.Bytes != 3*(100+entryOverhead) {
		t.Fatalf("after replace %+v", st)
	}
	var off *lru = newLRU(-1)
	off.put(&cacheEntry{key: key(1), data: []byte{1}})
	if _, ok := off.get(key(1)); ok || off.stats() != (CacheStats{}) {
		t.Fatal("a disabled cache cached")
	}
}

func TestParseTrack(t *testing.T) {
	sps := []byte{0x67, 0x64, 0, 0x1f, 0xac}
	pps := []byte{0x68, 0xee, 0x3c, 0x80}
	avcc := append([]byte{1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, byte(len(sps))}, sps...)
	avcc = append(append(avcc, 1, 0, byte(len(pps))), pps...)
	c, err := parseTrack(&mkv.Track{CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: avcc})
	if err != nil || c.codec != codecH264 || c.lengthSize != 4 {
		t.Fatalf("%+v %v", c, err)
	}
	want := append(append(append([]byte{0, 0, 0, 1}, sps...), 0, 0, 0, 1), pps...)
	if !bytes.Equal(c.params, want) {
		t.Fatalf("params %x, want %x", c.params, want)
	}
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{2}, avcc[1:]...),
		"length 3":    append(append([]byte{}, avcc[:4]...), append([]byte{0xfe}, avcc[5:]...)...),
		"truncated":   avcc[:len(avcc)-2],
		"no PPS":      avcc[:8+len(sps)],
		"PPS as SPS":  append(append([]byte{1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, byte(len(pps))}, pps...), 0),
		"zero length": {1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0, 0},
	} {
		if _, err := parseTrack(&mkv.Track{CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: b}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseTrack(&mkv.Track{CodecID: "A_AAC", CodecPrivate: []byte{0x11, 0x90}}); err == nil {
		t.Error("AAC accepted")
	}
	if _, err := parseTrack(&mkv.Track{CodecID: "V_MPEGH/ISO/HEVC", CodecPrivate: make([]byte, 23)}); err == nil {
		t.Error("an empty hvcC accepted")
	}
}

// TestWalk: NAL units up to the first length that overruns; empty ones
// and ones with the forbidden bit skipped; reference and VCL flags.
func TestWalk(t *testing.T) {
	c := &trackConfig{codec: codecH264, lengthSize: 4}
	nal := func(b ...byte) []byte { return append([]byte{0, 0, 0, byte(len(b))}, b...) }
	var s []byte
	s = append(s, nal(0x06, 1, 2)...)  // SEI
	s = append(s, nal()...)            // empty
	s = append(s, nal(0x85, 1)...)     // forbidden bit set
	s = append(s, nal(0x01, 9, 9)...)  // non-reference slice
	s = append(s, 0, 0, 0, 9, 0x41, 1) // overruns: the end
	if ai := c.inspect(s); ai.vcl != 1 || ai.ref {
		t.Fatalf("inspect %+v: want one non-reference slice", ai)
	}
	got := c.appendAU(nil, s, false)
	want := append(append(append([]byte{}, audH264...), 0, 0, 0, 1, 0x06, 1, 2), 0, 0, 0, 1, 0x01, 9, 9)
	if !bytes.Equal(got, want) {
		t.Fatalf("appendAU %x, want %x", got, want)
	}
	if ai := c.inspect(nal(0x65, 1)); ai.vcl != 1 || !ai.ref {
		t.Fatalf("IDR: %+v", ai)
	}
	// In-band delimiters and end of sequence are not passed on.
	if got := c.appendAU(nil, append(nal(0x09, 0xf0), append(nal(0x0a), nal(0x41, 1)...)...), true); !bytes.Equal(got, append(append(append([]byte{}, audH264...), c.params...), 0, 0, 0, 1, 0x41, 1)) {
		t.Fatalf("delimiters kept: %x", got)
	}
	// H.265: TRAIL_N at the top temporal layer is no reference; TRAIL_R
	// is, and so is TRAIL_N below the top layer.
	h := &trackConfig{codec: codecHEVC, lengthSize: 4, maxTID: 1}
	for _, tc := range []struct {
		hdr [2]byte
		ref bool
	}{{[2]byte{0x00, 0x02}, false}, {[2]byte{0x02, 0x02}, true}, {[2]byte{0x00, 0x01}, true}, {[2]byte{0x26, 0x01}, true}} {
		if ai := h.inspect(nal(tc.hdr[0], tc.hdr[1], 0xaa)); ai.vcl != 1 || ai.ref != tc.ref {
			t.Errorf("HEVC %x: %+v, want ref %v", tc.hdr, ai, tc.ref)
		}
	}
}

// FuzzAnnexB: the converter takes any sample bytes without panicking, and
// its output is start-code framed.
func FuzzAnnexB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0x65, 1}, uint8(4), false)
	f.Add([]byte{0, 2, 0x26, 1, 0, 9}, uint8(2), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint8(1), false)
	f.Fuzz(func(t *testing.T, b []byte, ls uint8, hevc bool) {
		c := &trackConfig{codec: codecH264, lengthSize: []int{1, 2, 4}[int(ls)%3]}
		if hevc {
			c.codec = codecHEVC
		}
		ai := c.inspect(b)
		out := c.appendAU(nil, b, false)
		if ai.vcl > 0 && len(out) <= len(audH264) {
			t.Fatal("slices counted but none written")
		}
		if !bytes.HasPrefix(out, []byte{0, 0, 0, 1}) {
			t.Fatal("no start code")
		}
	})
}

// FuzzParseTrack: any codec private data parses or fails with
// ErrUnsupported, never panics; a track that parses has a reorder delay
// between 0 and 16 (read from its SPS by mp4ff, which sees hostile bytes
// here first), and any bytes may be asked whether they warm a decoder.
func FuzzParseTrack(f *testing.F) {
	// testdata/fuzz/FuzzParseTrack: x264's avcC and x265's hvcC of 64x64
	// streams with 2 B-frames.
	f.Add([]byte{1, 0x64, 0, 0x0a, 0xff, 0xe1, 0, 0}, false)
	f.Fuzz(func(t *testing.T, private []byte, hevc bool) {
		tr := &mkv.Track{Number: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: private}
		if hevc {
			tr.CodecID = "V_MPEGH/ISO/HEVC"
		}
		c, err := parseTrack(tr)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v does not wrap ErrUnsupported", err)
			}
			return
		}
		if c.reorder < 0 || c.reorder > 16 {
			t.Fatalf("reorder delay %d", c.reorder)
		}
		c.warmable(private)
		c.warmable(c.params)
	})
}

// TestPad: after pad, a wanted access unit starts on the grid and an
// unwanted one at least slack bytes from it (so no position ffmpeg may
// report for it is selected), and what pad wrote is one filler data NAL
// unit the converter's rules leave alone.
func TestPad(t *testing.T) {
	for _, c := range []*trackConfig{{codec: codecH264}, {codec: codecHEVC}} {
		hdr := fillerH264
		if c.codec == codecHEVC {
			hdr = fillerHEVC
		}
		for n := range 3 * grid {
			for _, wanted := range []bool{true, false} {
				before := bytes.Repeat([]byte{0xaa}, n)
				out := c.pad(before, wanted)
				r := len(out) % grid
				switch {
				case n == 0 && len(out) != 0:
					t.Fatalf("%v: %d bytes padded at the start", c.codec, len(out))
				case n == 0:
				case wanted && r != 0:
					t.Fatalf("%v: %d bytes, wanted: next start %d, off the grid", c.codec, n, len(out))
				case !wanted && (r < slack || r > grid-slack):
					t.Fatalf("%v: %d bytes, unwanted: next start %d, within %d of the grid", c.codec, n, len(out), slack)
				}
				fill := out[n:]
				if len(fill) == 0 {
					continue
				}
				if len(fill) > 2*grid || !bytes.HasPrefix(fill, append(append([]byte{}, startCode...), hdr...)) || fill[len(fill)-1] != 0x80 ||
					bytes.Count(fill[len(startCode)+len(hdr):len(fill)-1], []byte{0xff}) != len(fill)-len(startCode)-len(hdr)-1 {
					t.Fatalf("%v: filler %x", c.codec, fill)
				}
				if c.isVCL(fill[len(startCode):]) || c.isDelimiter(fill[len(startCode):]) {
					t.Fatalf("%v: the filler is a slice or a delimiter", c.codec)
				}
			}
		}
	}
}

// TestWarmable: an H.264 key frame warms decoders only if it is an IDR
// picture (an open GOP's I picture repeated would repeat its frame_num and
// picture order count); an H.265 one always (an end-of-sequence NAL unit
// comes before each copy).
func TestWarmable(t *testing.T) {
	h264 := &trackConfig{codec: codecH264}
	au := func(nals ...byte) []byte {
		b := append([]byte(nil), audH264...)
		for _, n := range nals {
			b = append(b, 0, 0, 0, 1, n, 0x88, 0x84, 0x21)
		}
		return b
	}
	for _, c := range []struct {
		au   []byte
		want bool
	}{
		{au(0x67, 0x68, 0x65), true},  // SPS, PPS, IDR slice
		{au(0x67, 0x68, 0x25), true},  // IDR slice, nal_ref_idc 1
		{au(0x67, 0x68, 0x41), false}, // non-IDR I slice (open GOP)
		{au(0x06, 0x41), false},       // SEI (recovery point), non-IDR slice
		{au(0x67, 0x68, 0xe5), false}, // forbidden_zero_bit set
		{audH264, false},
	} {
		if got := h264.warmable(c.au); got != c.want {
			t.Errorf("warmable(% x) = %v, want %v", c.au, got, c.want)
		}
	}
	if !(&trackConfig{codec: codecHEVC}).warmable(append(append([]byte(nil), audHEVC...), 0, 0, 0, 1, 0x2a, 0x01)) {
		t.Error("an H.265 CRA key frame is not warmable")
	}
}
