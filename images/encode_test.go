package images

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"testing"
)

// zigzag maps the order of a DQT segment to natural order.
var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// dqt returns a JPEG's quantization tables by id, in natural order, and
// per component (1 Y, 2 Cb, 3 Cr) the id of its table.
func dqt(t *testing.T, b []byte) (map[int][64]int, map[int]int) {
	t.Helper()
	out, comp := map[int][64]int{}, map[int]int{}
	for i := 2; i+4 <= len(b) && b[i] == 0xff; {
		m, n := b[i+1], int(b[i+2])<<8|int(b[i+3])
		if m == 0xc0 || m == 0xc1 { // SOF: P, Y, X, Nf, then C, HV, Tq per component
			seg := b[i+4 : i+2+n]
			for c := range int(seg[5]) {
				comp[int(seg[6+3*c])] = int(seg[8+3*c])
			}
		}
		if m == 0xdb {
			seg := b[i+4 : i+2+n]
			for len(seg) >= 65 {
				if seg[0]>>4 != 0 {
					t.Fatal("16-bit table")
				}
				var tab [64]int
				for k := range 64 {
					tab[zigzag[k]] = int(seg[1+k])
				}
				out[int(seg[0]&15)] = tab
				seg = seg[65:]
			}
		}
		if m == 0xda {
			break
		}
		i += 2 + n
	}
	return out, comp
}

// TestQuantTablesAreLibjpegs: quantTable is what image/jpeg (which
// follows libjpeg) writes for every quality.
func TestQuantTablesAreLibjpegs(t *testing.T) {
	img := image.NewYCbCr(image.Rect(0, 0, 16, 16), image.YCbCrSubsampleRatio420)
	for q := 1; q <= 100; q++ {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
			t.Fatal(err)
		}
		tabs, comp := dqt(t, buf.Bytes())
		if tabs[comp[1]] != quantTable(&annexKLuma, q) || tabs[comp[2]] != quantTable(&annexKChroma, q) || comp[3] != comp[2] {
			t.Fatalf("quality %d: tables differ from image/jpeg's", q)
		}
	}
}

// TestJPEGQualityTables: the JPEGs ffmpeg makes carry the tables of the
// quality asked for (the DC quantizer aside, which mjpeg fixes at 8), and
// are smaller at lower qualities.
func TestJPEGQualityTables(t *testing.T) {
	dir := t.TempDir()
	ts := newTestStore(t)
	ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 1)))
	f := ts.fragments(t)[0]
	r := newTestRenderer(t, Config{})
	prev := 1 << 30
	for _, q := range []int{100, 95, 80, 50, 20, 5, 1} {
		res, err := r.Render(context.Background(), Spec{Format: JPEG, Quality: q}, []Request{{Frag: f, Sample: 0}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
		tabs, comp := dqt(t, res[0].Image)
		if len(comp) != 3 || comp[2] != comp[3] {
			t.Fatalf("quality %d: components use tables %v", q, comp)
		}
		for c, base := range map[int]*[64]int{1: &annexKLuma, 2: &annexKChroma} {
			want := quantTable(base, q)
			want[0] = 8
			if got := tabs[comp[c]]; got != want {
				t.Errorf("quality %d component %d: table %v, want %v", q, c, got, want)
			}
		}
		if n := len(res[0].Image); n >= prev {
			t.Errorf("quality %d: %d bytes, not fewer than %d at the higher quality", q, n, prev)
		} else {
			prev = n
		}
	}
}

// TestReadJPEG splits a stream of JPEGs (stuffed 0xFF bytes, fill bytes)
// and fails on truncation.
func TestReadJPEG(t *testing.T) {
	var stream bytes.Buffer
	var want [][]byte
	for i := range 3 {
		img := image.NewGray(image.Rect(0, 0, 40, 24))
		for p := range img.Pix {
			img.Pix[p] = uint8(p*37 + i*91) // noise: 0xFF bytes in the scan
		}
		img.Set(0, 0, color.Gray{255})
		var b bytes.Buffer
		jpeg.Encode(&b, img, &jpeg.Options{Quality: 100})
		if !bytes.Contains(b.Bytes()[200:], []byte{0xff, 0}) {
			t.Fatal("no stuffed byte in the test image")
		}
		want = append(want, b.Bytes())
		stream.Write(b.Bytes())
	}
	rd := bufio.NewReader(bytes.NewReader(stream.Bytes()))
	for i := range want {
		got, err := readJPEG(rd)
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("image %d: %v (%d bytes, want %d)", i, err, len(got), len(want[i]))
		}
	}
	if _, err := readJPEG(rd); err != io.EOF {
		t.Fatalf("after the last: %v, want EOF", err)
	}
	for _, cut := range []int{1, 3, 100, len(want[0]) - 1} {
		if _, err := readJPEG(bufio.NewReader(bytes.NewReader(want[0][:cut]))); err == nil {
			t.Errorf("cut at %d: no error", cut)
		}
	}
	if _, err := readJPEG(bufio.NewReader(bytes.NewReader([]byte("\x89PNG\r\n")))); !errors.Is(err, errBadJPEG) {
		t.Errorf("not a JPEG: %v", err)
	}
}

// TestReadPNG splits a stream of PNGs and fails on truncation.
func TestReadPNG(t *testing.T) {
	var stream bytes.Buffer
	var want [][]byte
	for i := range 3 {
		img := image.NewRGBA(image.Rect(0, 0, 30+i, 20))
		for p := range img.Pix {
			img.Pix[p] = uint8(p * (i + 3))
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		want = append(want, b.Bytes())
		stream.Write(b.Bytes())
	}
	rd := bufio.NewReader(bytes.NewReader(stream.Bytes()))
	for i := range want {
		got, err := readPNG(rd)
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("image %d: %v (%d bytes, want %d)", i, err, len(got), len(want[i]))
		}
	}
	if _, err := readPNG(rd); err != io.EOF {
		t.Fatalf("after the last: %v, want EOF", err)
	}
	for _, cut := range []int{1, 8, 20, len(want[0]) - 1} {
		if _, err := readPNG(bufio.NewReader(bytes.NewReader(want[0][:cut]))); err == nil || err == io.EOF {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
	if _, err := readPNG(bufio.NewReader(bytes.NewReader(want[0][1:]))); !errors.Is(err, errBadPNG) {
		t.Errorf("not a PNG: %v", err)
	}
}
