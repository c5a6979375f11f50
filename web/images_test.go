package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/images"
	"github.com/kvsgate/kvsgate/images/imagetest"
)

// The GetImages tests use a stream whose every frame shows its own index:
// 320x240, ten blocks (two rows of five, 64x120) white or black for the
// bits of the index, bit 0 top left, under light temporal noise (which
// gives the frames a realistic size, so that ffmpeg's Matroska muxer
// starts a cluster, hence a fragment, at every 1 s GOP). 10 fps, so frame
// n is on screen from imBase + n x 100 ms; libx264 with 3 B-frames always
// (b-adapt=0), so frames are stored in decode order.
const (
	imBase   = int64(1_700_000_000) * int64(time.Second) // producer time of frame 0
	imFPS    = 10
	imFrame  = int64(time.Second) / imFPS
	imW, imH = imagetest.Width, imagetest.Height
)

// imMakeMKV encodes frames [first, first+seconds*fps) of the index
// pattern (imagetest), frame n at imBase + n x 100 ms, as Matroska with
// ABSOLUTE timecodes.
func imMakeMKV(t testing.TB, dir, name, codec string, first, seconds int) string {
	t.Helper()
	path := filepath.Join(dir, name)
	off := imBase + int64(first)*imFrame
	imagetest.Encode(t, requireTool(t, "ffmpeg"), path, codec, imFPS, first, seconds, fmt.Sprintf("%d.%09d", off/1e9, off%1e9))
	return path
}

// imReadIndex reads the index pattern back from an image of any size.
func imReadIndex(img image.Image) int { return imagetest.ReadIndex(img) }

// imImage is one entry of a GetImages response, TimeStamp in unix ns.
type imImage struct {
	TimeStamp    int64
	Error        string
	ImageContent string
}

type imOut struct {
	Images    []imImage
	NextToken string
}

// imCall posts a GetImages request; the status and the decoded body.
func imCall(t testing.TB, url string, body map[string]any) (int, imOut, []byte) {
	t.Helper()
	code, raw := imFetch(t, url, body)
	var out imOut
	if code == 200 {
		out = imParse(t, raw)
	}
	return code, out, raw
}

// imFetch posts a GetImages request and reads the whole response.
func imFetch(t testing.TB, url string, body map[string]any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url+"/getImages", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// imParse decodes a GetImages response body.
func imParse(t testing.TB, raw []byte) imOut {
	t.Helper()
	var wire struct {
		Images []struct {
			TimeStamp    json.Number
			Error        string
			ImageContent string
		}
		NextToken string
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&wire); err != nil {
		t.Fatalf("response is not JSON: %v\n%.300s", err, raw)
	}
	out := imOut{NextToken: wire.NextToken}
	for _, im := range wire.Images {
		ns, ok := parseEpoch(im.TimeStamp.String())
		if !ok {
			t.Fatalf("TimeStamp %s", im.TimeStamp)
		}
		out.Images = append(out.Images, imImage{ns, im.Error, im.ImageContent})
	}
	return out
}

// imBody is a GetImages request of the test stream; extra entries are
// added (nil values remove a key).
func imBody(stream string, startNS, endNS int64, intervalMS int, extra ...any) map[string]any {
	m := map[string]any{
		"StreamName": stream, "ImageSelectorType": "PRODUCER_TIMESTAMP", "Format": "JPEG",
		"StartTimestamp": json.Number(string(appendEpoch(nil, startNS))), "EndTimestamp": json.Number(string(appendEpoch(nil, endNS))),
		"SamplingInterval": intervalMS,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(m, extra[i].(string))
		} else {
			m[extra[i].(string)] = extra[i+1]
		}
	}
	return m
}

// imAll follows NextToken to the end: every page at most max(1, page)
// images, the token absent only on the last page.
func imAll(t testing.TB, url string, body map[string]any, page int) []imImage {
	t.Helper()
	var all []imImage
	for range 200 {
		code, out, raw := imCall(t, url, body)
		if code != 200 {
			t.Fatalf("getImages: %d %s", code, raw)
		}
		if len(out.Images) == 0 || len(out.Images) > page {
			t.Fatalf("a page of %d images (page size %d)", len(out.Images), page)
		}
		all = append(all, out.Images...)
		if out.NextToken == "" {
			return all
		}
		if len(out.Images) != page {
			t.Fatalf("a page of %d images with a NextToken: want full pages of %d", len(out.Images), page)
		}
		body = imWith(body, "NextToken", out.NextToken)
	}
	t.Fatal("pagination does not end")
	return nil
}

func imWith(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// imLayout is which frames the test stream has: frame n exists if some
// span holds it (first <= n < end).
type imLayout [][2]int

// want is the index of the frame on screen at t, -1 for none.
func (l imLayout) want(t int64) int {
	if t < imBase {
		return -1
	}
	n := int((t - imBase) / imFrame)
	for _, s := range l {
		if n >= s[0] && n < s[1] {
			return n
		}
	}
	return -1
}

// imCheck checks images against the layout: times t0 + k x interval in
// order, none twice, none missing, each the frame on screen, NO_MEDIA
// where there is none.
func imCheck(t testing.TB, got []imImage, l imLayout, t0, endNS, interval int64) {
	t.Helper()
	n := int((endNS-t0)/interval) + 1
	if len(got) != n {
		t.Fatalf("%d images, want %d", len(got), n)
	}
	for k, im := range got {
		tk := t0 + int64(k)*interval
		if im.TimeStamp != tk/1e6*1e6 {
			t.Fatalf("image %d at %d, want %d", k, im.TimeStamp, tk)
		}
		want := l.want(tk)
		at := fmt.Sprintf("image %d (t = %+.3f s)", k, float64(tk-imBase)/1e9)
		switch {
		case want < 0 && (im.Error != "NO_MEDIA" || im.ImageContent != ""):
			t.Errorf("%s: Error %q with %d bytes, want NO_MEDIA", at, im.Error, len(im.ImageContent))
		case want >= 0 && (im.Error != "" || im.ImageContent == ""):
			t.Errorf("%s: Error %q, want frame %d", at, im.Error, want)
		case want >= 0:
			img := imDecode(t, im.ImageContent)
			if got := imReadIndex(img); got != want {
				t.Errorf("%s shows frame %d, want %d", at, got, want)
			}
		}
	}
}

func imDecode(t testing.TB, b64 string) image.Image {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("ImageContent is not base64: %v", err)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("ImageContent is no image: %v", err)
	}
	return img
}

// imStream is the pixel test's stream: frames 0-39 (0 to 4 s), a gap,
// frames 60-99 (6 to 10 s), ingested in two PutMedia requests.
type imStream struct {
	ts     *testServer
	name   string
	layout imLayout
	nums   []string
}

func newImStream(t *testing.T, codec string) *imStream {
	t.Helper()
	ts := newTestServer(t, nil, fragments.Config{})
	dir := t.TempDir()
	a := imMakeMKV(t, dir, "a.mkv", codec, 0, 4)
	b := imMakeMKV(t, dir, "b.mkv", codec, 60, 4)
	// The file is what the test is about: B-frames in decode order.
	src, _ := gmSource(t, a)
	reordered := false
	for _, f := range src.fragments {
		for k := 1; k < len(f.frames); k++ {
			reordered = reordered || f.frames[k].pts < f.frames[k-1].pts
		}
	}
	if len(src.fragments) != 4 || !reordered {
		t.Fatalf("%d clusters, reordered %v: want 4 GOPs of B-frames in decode order", len(src.fragments), reordered)
	}
	s := &imStream{ts: ts, name: "idx-" + codec, layout: imLayout{{0, 40}, {60, 100}}}
	gmIngestBytes(t, ts, s.name, readAll(t, a), false, 24)
	s.nums = gmIngestBytes(t, ts, s.name, readAll(t, b), false, -1)
	if len(s.nums) != 8 {
		t.Fatalf("%d fragments, want 8", len(s.nums))
	}
	return s
}

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestImagesPixels: the image for each t_k is the frame on screen at t_k,
// read back from its pixels, for sample times on key frames, between
// frames, just before and at fragment boundaries, in the gap and after
// the end (NO_MEDIA), across pages.
func TestImagesPixels(t *testing.T) {
	s := newImStream(t, "h264")
	url := s.ts.URL
	ms := int64(time.Millisecond)
	for _, c := range []struct {
		name             string
		start, end       int64 // relative to imBase
		intervalMS, page int
	}{
		// Every 200 ms over the whole stream and past its end: key frames
		// (0, 1, 2, 3, 6, 7, 8, 9 s), the gap (4.0-5.8 s), 10.0 s (the
		// last fragment ends at 10 s, exclusive): 51 images in 3 pages.
		{"every-200ms", 0, 10000 * ms, 200, 25},
		// Between frames and fragment boundaries: 0.95, 1.2, 1.45, ...
		{"between", 950 * ms, 9950 * ms, 250, 25},
		// A millisecond before every fragment boundary, small pages.
		{"before-boundaries", 999 * ms, 9999 * ms, 1000, 4},
		// Starting inside the gap, before the stream, a range shorter than
		// the interval (only the start).
		{"gap", 4500 * ms, 6700 * ms, 300, 25},
		{"before", -2000 * ms, 200 * ms, 1100, 25},
		{"one", 6150 * ms, 6300 * ms, 1000, 25},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := imBody(s.name, imBase+c.start, imBase+c.end, c.intervalMS)
			if c.page != 25 {
				body["MaxResults"] = c.page
			}
			got := imAll(t, url, body, c.page)
			imCheck(t, got, s.layout, imBase+c.start, imBase+c.end, int64(c.intervalMS)*ms)
		})
	}

	// SERVER_TIMESTAMP: fragments are ranged by arrival. The last fragment
	// (frames 90-99) arrived last, and nothing covers a time more than its
	// 1 s after its arrival.
	t.Run("server-timestamp", func(t *testing.T) {
		resp, b := gmPost(t, url, "/listFragments", map[string]any{"StreamName": s.name, "MaxResults": 1000})
		if resp.StatusCode != 200 {
			t.Fatal(string(b))
		}
		var lf struct {
			Fragments []struct {
				FragmentNumber  string
				ServerTimestamp json.Number
			}
		}
		json.Unmarshal(b, &lf)
		var last int64
		for _, f := range lf.Fragments {
			if ns, _ := parseEpoch(f.ServerTimestamp.String()); ns > last {
				last = ns
			}
		}
		// The listing has milliseconds: a millisecond later is after the
		// arrival (and its first frame).
		t0 := last + ms
		body := imBody(s.name, t0, t0+1200*ms, 300, "ImageSelectorType", "SERVER_TIMESTAMP")
		got := imAll(t, url, body, 25)
		want := []int{90, 93, 96, 99, -1}
		if len(got) != len(want) {
			t.Fatalf("%d images, want %d", len(got), len(want))
		}
		for k, im := range got {
			if want[k] < 0 {
				if im.Error != "NO_MEDIA" {
					t.Errorf("image %d: %q, want NO_MEDIA", k, im.Error)
				}
				continue
			}
			if im.Error != "" {
				t.Fatalf("image %d: %s", k, im.Error)
			}
			if got := imReadIndex(imDecode(t, im.ImageContent)); got != want[k] {
				t.Errorf("image %d shows %d, want %d", k, got, want[k])
			}
		}
	})
}

// TestImagesHEVC: the same for H.265, one page.
func TestImagesHEVC(t *testing.T) {
	s := newImStream(t, "hevc")
	ms := int64(time.Millisecond)
	got := imAll(t, s.ts.URL, imBody(s.name, imBase+50*ms, imBase+9850*ms, 400), 25)
	imCheck(t, got, s.layout, imBase+50*ms, imBase+9850*ms, 400*ms)
}

// TestImagesAudioLead: where each fragment's audio begins before its
// video (its timestamp is its first audio frame, as in the demo clip and
// in producers that put the audio of the key frame's time in its
// cluster), a time between a fragment's timestamp and its first picture
// shows the previous fragment's last picture, as a player does: it stays
// on screen until the next one. NO_MEDIA only where no picture is: before
// the first, after the last one's end.
func TestImagesAudioLead(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	src := readAll(t, imMakeMKV(t, t.TempDir(), "v.mkv", "h264", 0, 4))
	gmIngestBytes(t, ts, "lead", imAudioLead(t, src, 50), false, 24)
	ms := int64(time.Millisecond)
	// -30 ms (before the first picture), 0.97 s, 1.97 s, 2.97 s (30 ms
	// before each next picture, 20 ms after each next fragment's
	// timestamp), 3.97 s (the last picture), 4.22 s (after it).
	t0, end := imBase-30*ms, imBase+4220*ms
	got := imAll(t, ts.URL, imBody("lead", t0, end, 250), 25)
	imCheck(t, got, imLayout{{0, 40}}, t0, end, 250*ms)
}

// TestImagesOverlap: where fragments overlap on the producer timestamp,
// the one ingested last is the picture: 1 s showing frames 100-109 put
// over the 2-3 s of frames 0-39.
func TestImagesOverlap(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	dir := t.TempDir()
	gmIngestBytes(t, ts, "overlap", readAll(t, imMakeMKV(t, dir, "a.mkv", "h264", 0, 4)), false, 24)
	over := filepath.Join(dir, "b.mkv")
	off := imBase + 2*int64(time.Second)
	imagetest.Encode(t, requireTool(t, "ffmpeg"), over, "h264", imFPS, 100, 1, fmt.Sprintf("%d.%09d", off/1e9, off%1e9))
	gmIngestBytes(t, ts, "overlap", readAll(t, over), false, -1)
	ms := int64(time.Millisecond)
	got := imAll(t, ts.URL, imBody("overlap", imBase+1550*ms, imBase+3550*ms, 500), 25)
	want := []int{15, 100, 105, 30, 35} // 1.55, 2.05, 2.55, 3.05, 3.55 s
	if len(got) != len(want) {
		t.Fatalf("%d images, want %d", len(got), len(want))
	}
	for k, im := range got {
		if im.Error != "" {
			t.Fatalf("image %d: %s", k, im.Error)
		}
		if got := imReadIndex(imDecode(t, im.ImageContent)); got != want[k] {
			t.Errorf("image %d shows %d, want %d", k, got, want[k])
		}
	}
}

// imAudioLead rewrites a video-only Matroska file (1 ms timecodes) so that
// every cluster begins with an AAC frame leadMS before its video.
func imAudioLead(t testing.TB, data []byte, leadMS int64) []byte {
	t.Helper()
	out := mkv.EBMLHeader()
	out = mkv.AppendUnknownSizeHeader(out, mkv.IDSegment)
	out = append(out, mkv.Info(1000000)...)
	imagetest.Walk(t, data, func(ev *mkv.Event) {
		switch ev.Kind {
		case mkv.KindTracks:
			video := ev.Header.Tracks[0]
			audio := mkv.Track{Number: 2, UID: 2, Type: 2, CodecID: "A_AAC", CodecPrivate: []byte{0x12, 0x10}, SamplingFreq: 44100, Channels: 2}
			out = append(out, mkv.Tracks([]mkv.Track{video, audio})...)
		case mkv.KindTimecode:
			out = append(out, mkv.ClusterStart(uint64(ev.Timecode-leadMS))...)
			out = append(out, mkv.SimpleBlock(2, 0, true, []byte{0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c})...)
		case mkv.KindBlock:
			for _, f := range ev.Block.Frames {
				out = append(out, mkv.SimpleBlock(1, ev.Block.Timecode+int16(leadMS), ev.Block.Key, ev.Raw[f.Off:f.Off+f.Len])...)
			}
		}
	})
	return out
}

// TestImagesFormatsAndSizes: JPEG quality, the default quality, PNG and
// each size rule.
func TestImagesFormatsAndSizes(t *testing.T) {
	s := newImStream(t, "h264")
	ms := int64(time.Millisecond)
	t0 := imBase + 2550*ms // frame 25
	one := func(t *testing.T, extra ...any) []byte {
		t.Helper()
		code, out, raw := imCall(t, s.ts.URL, imBody(s.name, t0, t0+100*ms, 1000, extra...))
		if code != 200 || len(out.Images) != 1 || out.Images[0].Error != "" {
			t.Fatalf("%d %.300s", code, raw)
		}
		b, _ := base64.StdEncoding.DecodeString(out.Images[0].ImageContent)
		return b
	}
	t.Run("jpeg-quality", func(t *testing.T) {
		prev := 0
		for _, q := range []string{"1", "20", "60", "95", "100"} {
			b := one(t, "FormatConfig", map[string]string{"JPEGQuality": q})
			if len(b) <= prev {
				t.Errorf("JPEGQuality %s: %d bytes, not more than %d at the lower quality", q, len(b), prev)
			}
			prev = len(b)
			if _, format, err := image.DecodeConfig(bytes.NewReader(b)); err != nil || format != "jpeg" {
				t.Fatalf("JPEGQuality %s: %s %v", q, format, err)
			}
		}
		if def, q80 := one(t), one(t, "FormatConfig", map[string]string{"JPEGQuality": "80"}); !bytes.Equal(def, q80) {
			t.Errorf("the default (%d bytes) is not JPEGQuality 80 (%d bytes)", len(def), len(q80))
		}
	})
	t.Run("png", func(t *testing.T) {
		b := one(t, "Format", "PNG", "FormatConfig", map[string]string{"JPEGQuality": "5"}) // ignored for PNG
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds().Size() != image.Pt(imW, imH) || imReadIndex(img) != 25 {
			t.Fatalf("PNG %v shows %d", img.Bounds(), imReadIndex(img))
		}
		if b2 := one(t, "Format", "PNG"); !bytes.Equal(b, b2) {
			t.Error("PNG differs with and without a JPEGQuality")
		}
	})
	for _, c := range []struct {
		w, h   any
		wantSz image.Point
	}{
		{nil, nil, image.Pt(320, 240)}, // the source size
		{160, nil, image.Pt(160, 120)}, // the aspect ratio kept
		{nil, 60, image.Pt(80, 60)},    // likewise
		{100, 300, image.Pt(100, 300)}, // stretched
		{3840, 2160, image.Pt(3840, 2160)},
		{1, 1, image.Pt(1, 1)},
		{nil, 1, image.Pt(1, 1)},
		{nil, 2160, image.Pt(2880, 2160)},
	} {
		t.Run(fmt.Sprintf("size-%v-%v", c.w, c.h), func(t *testing.T) {
			b := one(t, "WidthPixels", c.w, "HeightPixels", c.h)
			img, _, err := image.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds().Size() != c.wantSz {
				t.Fatalf("size %v, want %v", img.Bounds().Size(), c.wantSz)
			}
			if c.wantSz.X >= 40 && c.wantSz.Y >= 30 {
				if got := imReadIndex(img); got != 25 {
					t.Fatalf("shows frame %d, want 25", got)
				}
			}
		})
	}
}

// TestImagesLimits: every parameter's limits and requirements.
func TestImagesLimits(t *testing.T) {
	s := newImStream(t, "h264")
	url := s.ts.URL
	sec := int64(time.Second)
	ok := func(t *testing.T, body map[string]any, images int, token bool) imOut {
		t.Helper()
		code, out, raw := imCall(t, url, body)
		if code != 200 || len(out.Images) != images || (out.NextToken != "") != token {
			t.Fatalf("%d, %d images, token %q: want 200, %d images, token %v\n%.300s", code, len(out.Images), out.NextToken, images, token, raw)
		}
		return out
	}
	bad := func(t *testing.T, body map[string]any, typ, msg string) {
		t.Helper()
		code, _, raw := imCall(t, url, body)
		var e struct{ Message string }
		json.Unmarshal(raw, &e)
		status := 400
		if typ == "ResourceNotFoundException" {
			status = 404
		}
		if code != status || !strings.Contains(string(raw), `"`+typ+`"`) || !strings.Contains(e.Message, msg) {
			t.Fatalf("%d %s: want %s mentioning %q", code, raw, typ, msg)
		}
	}
	b := func(startS, endS float64, interval int, extra ...any) map[string]any {
		return imBody(s.name, imBase+int64(startS*float64(sec)), imBase+int64(endS*float64(sec)), interval, extra...)
	}
	// 300 s is the longest range; the end is included.
	ok(t, b(0, 300, 15000), 21, false)
	bad(t, b(0, 300.001, 15000), "InvalidArgumentException", "300 seconds")
	bad(t, b(1, 1, 1000), "InvalidArgumentException", "after StartTimestamp")
	bad(t, b(2, 1, 1000), "InvalidArgumentException", "after StartTimestamp")
	// 200 ms is the shortest interval.
	ok(t, b(0, 1, 200), 6, false)
	bad(t, b(0, 1, 199), "InvalidArgumentException", "200 milliseconds")
	bad(t, b(0, 1, 0), "InvalidArgumentException", "200 milliseconds")
	bad(t, b(0, 1, 1<<31), "InvalidArgumentException", "SamplingInterval")
	// MaxResults 1-100; a page holds at most 25.
	ok(t, b(0, 100, 1000), 25, true)
	ok(t, b(0, 100, 1000, "MaxResults", 100), 25, true)
	ok(t, b(0, 100, 1000, "MaxResults", 3), 3, true)
	ok(t, b(0, 24, 1000, "MaxResults", 25), 25, false)
	ok(t, b(0, 24, 1000, "MaxResults", 1), 1, true)
	bad(t, b(0, 10, 1000, "MaxResults", 0), "InvalidArgumentException", "MaxResults")
	bad(t, b(0, 10, 1000, "MaxResults", 101), "InvalidArgumentException", "MaxResults")
	// Sizes.
	for _, p := range [][2]any{{"WidthPixels", 0}, {"WidthPixels", 3841}, {"HeightPixels", 0}, {"HeightPixels", 2161}, {"WidthPixels", -5}} {
		bad(t, b(0, 1, 1000, p[0], p[1]), "InvalidArgumentException", p[0].(string))
	}
	// Format and FormatConfig.
	bad(t, b(0, 1, 1000, "Format", "GIF"), "InvalidArgumentException", "JPEG or PNG")
	bad(t, b(0, 1, 1000, "Format", nil), "InvalidArgumentException", "Format is required")
	for _, q := range []string{"0", "101", "abc", "", "080", "5.5"} {
		bad(t, b(0, 1, 1000, "FormatConfig", map[string]string{"JPEGQuality": q}), "InvalidArgumentException", "JPEGQuality")
	}
	bad(t, b(0, 1, 1000, "FormatConfig", map[string]string{"Quality": "5"}), "InvalidArgumentException", "JPEGQuality")
	bad(t, b(0, 1, 1000, "FormatConfig", map[string]string{"JPEGQuality": "5", "X": "1"}), "InvalidArgumentException", "FormatConfig")
	bad(t, b(0, 1, 1000, "FormatConfig", map[string]int{"JPEGQuality": 5}), "InvalidArgumentException", "")
	// Required fields and their values.
	bad(t, b(0, 1, 1000, "ImageSelectorType", nil), "InvalidArgumentException", "ImageSelectorType")
	bad(t, b(0, 1, 1000, "ImageSelectorType", "NOW"), "InvalidArgumentException", "ImageSelectorType")
	bad(t, b(0, 1, 1000, "StartTimestamp", nil), "InvalidArgumentException", "StartTimestamp")
	bad(t, b(0, 1, 1000, "EndTimestamp", nil), "InvalidArgumentException", "EndTimestamp")
	bad(t, b(0, 1, 1000, "SamplingInterval", nil), "InvalidArgumentException", "SamplingInterval")
	bad(t, b(0, 1, 1000, "SamplingInterval", 1000.5), "InvalidArgumentException", "")
	bad(t, b(0, 1, 1000, "StreamName", nil), "InvalidArgumentException", "StreamName or StreamARN")
	bad(t, b(0, 1, 1000, "StreamName", "nope"), "ResourceNotFoundException", "nope")
	// The reference spells it EndTimeStamp.
	alt := b(0, 1, 200)
	alt["EndTimeStamp"] = alt["EndTimestamp"]
	delete(alt, "EndTimestamp")
	ok(t, alt, 6, false)
	// NextToken: opaque, checked, bound to its stream.
	bad(t, b(0, 10, 1000, "NextToken", "!!"), "InvalidArgumentException", "NextToken")
	bad(t, b(0, 10, 1000, "NextToken", "AQA"), "InvalidArgumentException", "NextToken")
	first := ok(t, b(0, 100, 1000), 25, true)
	if resp, raw := gmPost(t, url, "/createStream", map[string]any{"StreamName": "other", "DataRetentionInHours": 1}); resp.StatusCode != 200 {
		t.Fatal(string(raw))
	}
	bad(t, imWith(b(0, 100, 1000), "StreamName", "other", "NextToken", first.NextToken), "InvalidArgumentException", "NextToken")
	// A stream without retention keeps no media.
	if resp, raw := gmPost(t, url, "/createStream", map[string]any{"StreamName": "live-only", "DataRetentionInHours": 0}); resp.StatusCode != 200 {
		t.Fatal(string(raw))
	}
	bad(t, imWith(b(0, 10, 1000), "StreamName", "live-only"), "NoDataRetentionException", "retention")
}

// TestImagesPagination: pages of every size from 1 to 25 (and MaxResults
// above 25) return every time once, in order, across pages; a token
// continues from where its page stopped even if the request's own range
// says otherwise.
func TestImagesPagination(t *testing.T) {
	s := newImStream(t, "h264")
	ms := int64(time.Millisecond)
	start, end := imBase+3500*ms, imBase+7500*ms // 4 s in 200 ms: 21 images, the gap in the middle
	for _, page := range []int{1, 2, 5, 7, 20, 21, 25, 60, 100} {
		t.Run(strconv.Itoa(page), func(t *testing.T) {
			got := imAll(t, s.ts.URL, imBody(s.name, start, end, 200, "MaxResults", page), min(page, 25))
			imCheck(t, got, s.layout, start, end, 200*ms)
		})
	}
	code, first, raw := imCall(t, s.ts.URL, imBody(s.name, start, end, 200, "MaxResults", 4))
	if code != 200 || first.NextToken == "" {
		t.Fatal(string(raw))
	}
	// The same token twice: the same page.
	_, p1, _ := imCall(t, s.ts.URL, imBody(s.name, start, end, 200, "MaxResults", 4, "NextToken", first.NextToken))
	_, p2, _ := imCall(t, s.ts.URL, imBody(s.name, imBase, imBase+1000*ms, 1000, "MaxResults", 4, "NextToken", first.NextToken))
	if len(p1.Images) != 4 || p1.Images[0].TimeStamp != start+800*ms || !slices.Equal(p1.Images, p2.Images) || p1.NextToken != p2.NextToken {
		t.Fatalf("token pages differ: %+v / %+v", p1, p2)
	}
}

// TestImagesCache: the same page again comes from the cache, identical
// and without decoding; a server without ffmpeg says so.
func TestImagesCache(t *testing.T) {
	s := newImStream(t, "h264")
	ms := int64(time.Millisecond)
	body := imBody(s.name, imBase, imBase+9000*ms, 500, "WidthPixels", 64)
	_, _, raw1 := imCall(t, s.ts.URL, body)
	before := s.ts.Server.images.CacheStats()
	_, _, raw2 := imCall(t, s.ts.URL, body)
	after := s.ts.Server.images.CacheStats()
	if !bytes.Equal(raw1, raw2) || !bytes.Contains(raw1, []byte("ImageContent")) {
		t.Fatal("the cached page differs")
	}
	// 19 times, 15 with media (4.0-5.5 s is the gap).
	if after.Hits-before.Hits != 15 || after.Misses != before.Misses || after.Entries != 15 {
		t.Fatalf("cache before %+v after %+v: want 15 more hits, no miss", before, after)
	}

	s.ts.Server.images = images.New(images.Config{FFmpeg: "/nonexistent/ffmpeg"})
	code, _, raw := imCall(t, s.ts.URL, body)
	if code != 500 || !strings.Contains(string(raw), "InternalFailure") || !strings.Contains(string(raw), "ffmpeg is not available") {
		t.Fatalf("without ffmpeg: %d %s, want 500 InternalFailure saying ffmpeg is not available", code, raw)
	}
	// A page with no media at all needs no decoder.
	if code, out, raw := imCall(t, s.ts.URL, imBody(s.name, imBase+4100*ms, imBase+5900*ms, 300)); code != 200 || len(out.Images) != 7 || out.Images[0].Error != "NO_MEDIA" {
		t.Fatalf("no media without ffmpeg: %d %s", code, raw)
	}
}

// imCorrupt overwrites the frames of the given clusters with garbage
// (imagetest.Corrupt).
func imCorrupt(t testing.TB, data []byte, clusters []int, keep bool) []byte {
	return imagetest.Corrupt(t, data, clusters, keep, 11)
}

// TestImagesHostile: fragments whose frames are garbage give MEDIA_ERROR
// entries, the other entries of the same page are right, and the server
// keeps serving.
func TestImagesHostile(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	dir := t.TempDir()
	clean := readAll(t, imMakeMKV(t, dir, "a.mkv", "h264", 0, 4))
	ms := int64(time.Millisecond)
	for i, keep := range []bool{false, true} {
		name := fmt.Sprintf("hostile-%d", i)
		// Fragment 1 (1-2 s) random bytes or random NAL payloads; fragment
		// 3 (3-4 s) has garbage only from its fifth frame in decode order.
		data := imCorrupt(t, clean, []int{1}, keep)
		gmIngestBytes(t, ts, name, data, false, 24)
		got := imAll(t, ts.URL, imBody(name, imBase, imBase+3900*ms, 300), 25)
		for k, im := range got {
			tk := int64(k) * 300 * ms
			inBad := tk >= 1000*ms && tk < 2000*ms
			switch {
			case inBad && im.Error != "MEDIA_ERROR":
				t.Errorf("%s t=%d ms: %q, want MEDIA_ERROR", name, tk/ms, im.Error)
			case !inBad && im.Error != "":
				t.Errorf("%s t=%d ms: %q", name, tk/ms, im.Error)
			case !inBad:
				if got, want := imReadIndex(imDecode(t, im.ImageContent)), int(tk/imFrame); got != want {
					t.Errorf("%s t=%d ms: frame %d, want %d", name, tk/ms, got, want)
				}
			}
		}
	}
	// The server keeps serving: a clean stream, right after.
	gmIngestBytes(t, ts, "clean", clean, false, 24)
	got := imAll(t, ts.URL, imBody("clean", imBase, imBase+3900*ms, 300), 25)
	imCheck(t, got, imLayout{{0, 40}}, imBase, imBase+3900*ms, 300*ms)
}

// TestImagesSDK: aws-sdk-go-v2's GetImages and its paginator.
func TestImagesSDK(t *testing.T) {
	s := newImStream(t, "h264")
	am := newAMClient(s.ts, sdkCredentials(&e2eCreds))
	ctx := testCtx(t)
	ms := int64(time.Millisecond)
	start, end := imBase+500*ms, imBase+9500*ms
	in := &kinesisvideoarchivedmedia.GetImagesInput{
		StreamName: aws.String(s.name), ImageSelectorType: amtypes.ImageSelectorTypeProducerTimestamp,
		StartTimestamp: aws.Time(time.Unix(0, start)), EndTimestamp: aws.Time(time.Unix(0, end)),
		SamplingInterval: aws.Int32(500), Format: amtypes.FormatJpeg, FormatConfig: map[string]string{"JPEGQuality": "90"},
		WidthPixels: aws.Int32(160), MaxResults: aws.Int64(7),
	}
	var got []imImage
	pages := 0
	for p := kinesisvideoarchivedmedia.NewGetImagesPaginator(am, in); p.HasMorePages(); {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, im := range out.Images {
			g := imImage{TimeStamp: im.TimeStamp.UnixNano(), Error: string(im.Error)}
			if im.ImageContent != nil {
				g.ImageContent = *im.ImageContent
				if sz := imDecode(t, g.ImageContent).Bounds().Size(); sz != image.Pt(160, 120) {
					t.Fatalf("size %v", sz)
				}
			}
			got = append(got, g)
		}
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3 (19 images, 7 a page)", pages)
	}
	imCheck(t, got, s.layout, start, end, 500*ms)

	// An error the SDK understands.
	in.SamplingInterval = aws.Int32(100)
	_, err := am.GetImages(ctx, in)
	wantAPIError(t, err, "InvalidArgumentException", 400)
}

// TestImagesCLI: the Debian AWS CLI's get-images (which paginates by
// itself with --page-size; its model wants SamplingInterval >= 3000).
func TestImagesCLI(t *testing.T) {
	cli := requireTool(t, "/usr/bin/aws")
	s := newImStream(t, "h264")
	ms := int64(time.Millisecond)
	// The CLI sends timestamps as whole epoch seconds (botocore drops the
	// fraction), so the times are whole seconds.
	start, end := imBase+2000*ms, imBase+9000*ms
	iso := func(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z") }
	cmd := exec.Command(cli, "kinesis-video-archived-media", "get-images", "--stream-name", s.name,
		"--image-selector-type", "PRODUCER_TIMESTAMP", "--start-timestamp", iso(start), "--end-timestamp", iso(end),
		"--sampling-interval", "3000", "--format", "PNG", "--height-pixels", "120", "--page-size", "1",
		"--endpoint-url", s.ts.URL, "--output", "json", "--region", "us-west-2")
	cmd.Env = []string{"HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER="}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("aws get-images: %v\n%s%s", err, out, stderr)
	}
	var res struct {
		Images []struct {
			TimeStamp    cliTime
			Error        string
			ImageContent string
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v\n%.500s", err, out)
	}
	var got []imImage
	for _, im := range res.Images {
		got = append(got, imImage{im.TimeStamp.UnixNano(), im.Error, im.ImageContent})
	}
	// 2 s (frame 20), 5 s (the gap), 8 s (frame 80): three pages.
	imCheck(t, got, s.layout, start, end, 3000*ms)
	if img := imDecode(t, got[0].ImageContent); img.Bounds().Size() != image.Pt(160, 120) {
		t.Fatalf("size %v", img.Bounds().Size())
	}
}

// FuzzImagesToken: the NextToken decoder takes any string without
// panicking, and what it accepts is a valid grid that encodes back to
// the same token.
func FuzzImagesToken(f *testing.F) {
	f.Add(encodeImagesToken(imagesGrid{By: fragments.ByProducer, StreamID: 3, Start: imBase, End: imBase + int64(time.Minute), Ival: 1e9, Next: 25}))
	f.Add(encodeImagesToken(imagesGrid{By: fragments.ByServer, StreamID: 1, Start: 0, End: 300e9, Ival: 200e6, Next: 1500}))
	f.Add("AQA")
	f.Add("")
	f.Add("////")
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := decodeImagesToken(tok)
		if err != nil {
			return
		}
		if !g.valid() || g.Next < 1 || g.End-g.Start > int64(imagesMaxRange) || g.Ival < 200e6 {
			t.Fatalf("accepted an invalid grid %+v", g)
		}
		if again := encodeImagesToken(g); again != tok {
			t.Fatalf("token %q re-encodes as %q", tok, again)
		}
	})
}

// TestImagesTokenLimits: tokens at and past the grid's limits.
func TestImagesTokenLimits(t *testing.T) {
	g := imagesGrid{By: fragments.ByProducer, StreamID: 3, Start: imBase, End: imBase + 300e9, Ival: 200e6, Next: 1500}
	if _, err := decodeImagesToken(encodeImagesToken(g)); err != nil {
		t.Fatalf("the last image of the longest range: %v", err)
	}
	for _, mod := range []func(*imagesGrid){
		func(g *imagesGrid) { g.Next = 1501 },
		func(g *imagesGrid) { g.Next = 0 },
		func(g *imagesGrid) { g.End++ },
		func(g *imagesGrid) { g.Ival = 199e6 },
		func(g *imagesGrid) { g.Ival = 200e6 + 1 },
		func(g *imagesGrid) { g.By = fragments.ByOrdinal },
		func(g *imagesGrid) { g.End = g.Start },
	} {
		b := g
		mod(&b)
		if _, err := decodeImagesToken(encodeImagesToken(b)); err == nil {
			t.Errorf("accepted %+v", b)
		}
	}
}
