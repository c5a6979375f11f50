package web

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kvam "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	kvamtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// clipBody is a GetClip request; times in epoch seconds.
func clipBody(stream, selector string, from, to float64) map[string]any {
	return map[string]any{"StreamName": stream, "ClipFragmentSelector": map[string]any{"FragmentSelectorType": selector,
		"TimestampRange": map[string]any{"StartTimestamp": from, "EndTimestamp": to}}}
}

// getClip posts a GetClip request to url. A 200 must be video/mp4 with a
// Content-Length that is the body's length and a progressive MP4 layout:
// ftyp, moov, then one mdat (checked by mp4Boxes).
func getClip(t testing.TB, url string, body map[string]any) (*http.Response, []byte) {
	t.Helper()
	resp, b := gmPost(t, url, "/getClip", body)
	if resp.StatusCode == 200 {
		if ct := resp.Header.Get("Content-Type"); ct != "video/mp4" {
			t.Fatalf("Content-Type %q", ct)
		}
		if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(b)) {
			t.Fatalf("Content-Length %s, body %d bytes", cl, len(b))
		}
		if got := strings.Join(mp4Boxes(t, b), " "); got != "ftyp moov mdat" {
			t.Fatalf("top-level boxes %q, want ftyp moov mdat", got)
		}
	}
	return resp, b
}

// mp4Boxes lists the top-level boxes of an MP4 file, which must tile it.
func mp4Boxes(t testing.TB, b []byte) []string {
	t.Helper()
	var types []string
	for off := int64(0); off < int64(len(b)); {
		if int64(len(b))-off < 8 {
			t.Fatalf("%d stray bytes at the end", int64(len(b))-off)
		}
		size := int64(binary.BigEndian.Uint32(b[off:]))
		if size == 1 {
			size = int64(binary.BigEndian.Uint64(b[off+8:]))
		}
		if size < 8 || size > int64(len(b))-off {
			t.Fatalf("box %q at %d: size %d of %d bytes left", b[off+4:off+8], off, size, int64(len(b))-off)
		}
		types = append(types, string(b[off+4:off+8]))
		off += size
	}
	return types
}

// mdatPayload is the size of the (last) mdat's payload.
func mdatPayload(b []byte) int64 {
	var n int64
	for off := int64(0); off+8 <= int64(len(b)); {
		size, head := int64(binary.BigEndian.Uint32(b[off:])), int64(8)
		if size == 1 {
			size, head = int64(binary.BigEndian.Uint64(b[off+8:])), 16
		}
		if string(b[off+4:off+8]) == "mdat" {
			n = size - head
		}
		if size < 8 {
			break
		}
		off += size
	}
	return n
}

func saveClip(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// streamDuration is ffprobe's duration of one stream (v:0, a:0).
func streamDuration(t *testing.T, ffprobe, file, stream string) float64 {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", stream, "-show_entries", "stream=duration", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe stream duration %q", out)
	}
	return d
}

// packetTimes are a stream's packet presentation times in file order.
func packetTimes(t *testing.T, ffprobe, file, stream string) []float64 {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe packets: %v", err)
	}
	var ts []float64
	for _, l := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(strings.TrimSuffix(l, ","), 64)
		if err != nil {
			t.Fatalf("packet time %q", l)
		}
		ts = append(ts, v)
	}
	return ts
}

// frameBytes is the size of all frames of a Matroska file.
func frameBytes(src *gmParsed) int64 {
	var n int64
	for _, f := range src.fragments {
		for _, fr := range f.frames {
			n += int64(len(fr.data))
		}
	}
	return n
}

// TestClipFFprobe: clips of the demo clip, the KVS C producer captures and
// ffmpeg-made H.264 + G.711 A-law and H.265 files are what was ingested:
// same streams and frame counts, every frame byte (the mdat holds exactly
// the ingested frames), a video as long as the ingested one to within a
// frame, and ffmpeg decodes them without a word.
func TestClipFFprobe(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ffmpeg := requireTool(t, "ffmpeg")
	ts := newTestServer(t, nil, fragments.Config{})
	for _, c := range []struct {
		file     string
		stream   string
		from, to float64
		want     []string // codec:frames per stream; nil: as ffprobe reads the file
	}{
		// The demo clip's producer timestamps are its timecodes: 0.021 s to 10 s.
		{"cmd/kvsgate/demo/sample.mkv", "demo", 0, 20, []string{"h264:250", "aac:470"}},
		{"testdata/producer/producer-c-video-absolute-tags.mkv", "absolute", 1795289339, 1795289360, nil},
		{"testdata/producer/producer-c-av-relative.mkv", "relative", 1795289339, 1795289360, nil},
		{"hls/testdata/g711a.mkv", "g711a", 0, 20, []string{"h264:75", "pcm_alaw:24"}},
		{"hls/testdata/hevc.mkv", "hevc", 0, 20, []string{"hevc:25"}},
	} {
		t.Run(c.stream, func(t *testing.T) {
			path := filepath.Join(testRepo, c.file)
			gmIngest(t, ts, c.stream, path, 87600)
			want := c.want
			if want == nil {
				want = probeStreams(t, ffprobe, path)
			}
			resp, body := getClip(t, ts.URL, clipBody(c.stream, "PRODUCER_TIMESTAMP", c.from, c.to))
			if resp.StatusCode != 200 {
				t.Fatalf("getClip: %d %s", resp.StatusCode, body)
			}
			if h := resp.Header.Get(headerClipTruncated); h != "" {
				t.Fatalf("clip of the whole file cut: %s", h)
			}
			src, _ := gmSource(t, path)
			if got, want := mdatPayload(body), frameBytes(src); got != want {
				t.Fatalf("mdat holds %d bytes, the ingested frames %d", got, want)
			}
			file := saveClip(t, body)
			if got := probeStreams(t, ffprobe, file); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("ffprobe of the clip: %v, ingested %v", got, want)
			}
			decodeClean(t, ffmpeg, file)
			// Every file is 25 fps.
			var frames float64
			fmt.Sscanf(want[0][strings.Index(want[0], ":")+1:], "%g", &frames)
			video := streamDuration(t, ffprobe, file, "v:0")
			if src := frames / 25; math.Abs(video-src) > 0.04 {
				t.Fatalf("the clip's video lasts %.3f s, the ingested %.3f s", video, src)
			}
			// The file is as long as its longest track: the audio may run
			// past the video by less than an audio frame (0.128 s of G.711).
			if d := probeDuration(t, ffprobe, file); d < video-0.001 || d > video+0.13 {
				t.Fatalf("the clip lasts %.3f s, its video %.3f s", d, video)
			}
		})
	}
}

// clipStreamBytes builds a PutMedia body (ABSOLUTE timecodes) with the
// given tracks: 25 fps video of 500-byte frames filled from fill, and for
// a second track AAC (48 kHz, 1024-sample frames, as hlsStreamBytes) or
// G.711 (8 kHz mono, a 320-byte block every 40 ms). noKey makes a
// fragment's first frame a non-key frame.
func clipStreamBytes(frags []hlsFragment, tracks []mkv.Track, fill byte, noKey map[int]bool) []byte {
	b := mkv.EBMLHeader()
	b = mkv.AppendUnknownSizeHeader(b, mkv.IDSegment)
	b = append(b, mkv.Info(1000000)...)
	b = append(b, mkv.Tracks(tracks)...)
	for i, f := range frags {
		b = append(b, mkv.ClusterStart(uint64(f.startMS))...)
		for k := int64(0); k < f.lenMS/40; k++ {
			key := k == 0 && !noKey[i]
			b = append(b, mkv.SimpleBlock(1, int16(k*40), key, bytes.Repeat([]byte{fill + byte(k)}, 500))...)
			if len(tracks) < 2 {
				continue
			}
			if tracks[1].CodecID == "A_AAC" {
				for a := k * 40 * 48 / 1024; a < (k+1)*40*48/1024; a++ {
					b = append(b, mkv.SimpleBlock(2, int16(a*1024/48), true, []byte{0x21, byte(a)})...)
				}
			} else {
				b = append(b, mkv.SimpleBlock(2, int16(k*40), true, bytes.Repeat([]byte{0xd5}, 320))...)
			}
		}
		b = append(b, mkv.Tags([]mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})...)
	}
	return b
}

// TestClipGap: across a 3 s gap in producer time the frames keep their
// times (the last frame before it lasts 3 s longer); with server
// timestamps of fragments sent faster than real time, each fragment is
// laid after the previous one, so the clip is as long as its media.
func TestClipGap(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ts := newTestServer(t, nil, fragments.Config{})
	base := time.Now().Add(-time.Hour).UnixMilli()
	// 1 s fragments at 0, 1 and 5 s: a 3 s gap after the second.
	frags := []hlsFragment{{base, 1000}, {base + 1000, 1000}, {base + 5000, 1000}}
	before := time.Now()
	gmIngestBytes(t, ts, "gap", hlsStreamBytes(frags, true, -1), false, 24)
	after := time.Now()
	sec := func(ms int64) float64 { return float64(ms) / 1000 }

	resp, body := getClip(t, ts.URL, clipBody("gap", "PRODUCER_TIMESTAMP", sec(base), sec(base+10000)))
	if resp.StatusCode != 200 {
		t.Fatalf("getClip: %d %s", resp.StatusCode, body)
	}
	file := saveClip(t, body)
	// The frames' times as ingested (hlsStreamBytes: video every 40 ms,
	// AAC every 1024/48 ms truncated to the millisecond, each fragment's
	// from its start), from the first fragment's start.
	var wantV, wantA []float64
	for _, f := range frags {
		for k := int64(0); k < f.lenMS/40; k++ {
			wantV = append(wantV, sec(f.startMS-base+k*40))
			for a := k * 40 * 48 / 1024; a < (k+1)*40*48/1024; a++ {
				wantA = append(wantA, sec(f.startMS-base+a*1024/48))
			}
		}
	}
	for _, st := range []struct {
		stream string
		want   []float64
	}{{"v:0", wantV}, {"a:0", wantA}} {
		pts := packetTimes(t, ffprobe, file, st.stream)
		if len(pts) != len(st.want) {
			t.Fatalf("%s: %d packets, ingested %d", st.stream, len(pts), len(st.want))
		}
		for i := range pts {
			if math.Abs(pts[i]-st.want[i]) > 0.0005 {
				t.Fatalf("%s: packet %d at %.4f s, ingested at %.4f s", st.stream, i, pts[i], st.want[i])
			}
		}
		// The gap is there: 3 s more than a frame between two packets.
		if i := 25 * 2 * len(st.want) / 75; pts[i]-pts[i-1] < 3 {
			t.Fatalf("%s: no gap before packet %d (%.4f s after %.4f s)", st.stream, i, pts[i], pts[i-1])
		}
	}
	if d := probeDuration(t, ffprobe, file); math.Abs(d-6) > 0.04 {
		t.Fatalf("clip of 6 s of producer time lasts %.3f s", d)
	}

	// Server timestamps: the three fragments arrived within a moment.
	resp, body = getClip(t, ts.URL, clipBody("gap", "SERVER_TIMESTAMP", float64(before.UnixMilli()-1000)/1000, float64(after.UnixMilli()+1)/1000))
	if resp.StatusCode != 200 {
		t.Fatalf("getClip by server time: %d %s", resp.StatusCode, body)
	}
	file = saveClip(t, body)
	pts := packetTimes(t, ffprobe, file, "v:0")
	if len(pts) != 75 {
		t.Fatalf("%d video packets, want 75", len(pts))
	}
	for i := 1; i < len(pts); i++ {
		if d := pts[i] - pts[i-1]; d < 0.035 || d > 0.045 {
			t.Fatalf("server-time clip: packet %d %.4f s after the one before", i, d)
		}
	}
	if d := probeDuration(t, ffprobe, file); math.Abs(d-3) > 0.04 {
		t.Fatalf("server-time clip of 3 s of media lasts %.3f s", d)
	}
}

// clipProxy serves a GetClip response to GET requests, with CORS, for a
// browser's <video src> (which cannot POST).
func clipProxy(t *testing.T, url string, body map[string]any) string {
	req, _ := json.Marshal(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Post(url+"/getClip", "application/json", bytes.NewReader(req))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for _, h := range []string{"Content-Type", "Content-Length"} {
			w.Header().Set(h, resp.Header.Get(h))
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.WriteHeader(resp.StatusCode)
		if r.Method != http.MethodHead {
			io.Copy(w, resp.Body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/clip.mp4"
}

// TestClipPlaysInBrowser: Chromium plays a clip in a plain <video src>.
func TestClipPlaysInBrowser(t *testing.T) {
	requirePlayers(t)
	ts := newTestServer(t, nil, fragments.Config{})
	gmIngest(t, ts, "demo", filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"), 87600)
	u := clipProxy(t, ts.URL, clipBody("demo", "PRODUCER_TIMESTAMP", 0, 20))
	const seconds = 3
	r := playInBrowser(t, "native", u, seconds)
	t.Logf("%s (chromium %s)", r, r.Browser)
	if !r.OK || r.Advanced < seconds || r.CurrentTime < seconds || len(r.Errors) > 0 || r.VideoWidth != 640 || r.VideoHeight != 360 {
		t.Fatalf("the clip did not play: %s\n%s", r, r.Raw)
	}
}

// TestClipFromClients: the AWS CLI's get-clip and aws-sdk-go-v2's GetClip
// get the same bytes as a plain POST.
func TestClipFromClients(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	gmIngest(t, ts, "demo", filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"), 87600)
	_, want := getClip(t, ts.URL, clipBody("demo", "PRODUCER_TIMESTAMP", 0, 20))
	if len(want) < 1<<20 {
		t.Fatalf("clip of %d bytes", len(want))
	}

	client := kvam.New(kvam.Options{Region: "us-west-2", BaseEndpoint: aws.String(ts.URL), Credentials: aws.AnonymousCredentials{}})
	out, err := client.GetClip(context.Background(), &kvam.GetClipInput{StreamName: aws.String("demo"),
		ClipFragmentSelector: &kvamtypes.ClipFragmentSelector{FragmentSelectorType: kvamtypes.ClipFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &kvamtypes.ClipTimestampRange{StartTimestamp: aws.Time(time.Unix(0, 0)), EndTimestamp: aws.Time(time.Unix(20, 0))}}})
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := io.ReadAll(out.Payload)
	out.Payload.Close()
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.ContentType) != "video/mp4" || !bytes.Equal(sdk, want) {
		t.Fatalf("SDK: %q, %d bytes (equal: %v), want %d", aws.ToString(out.ContentType), len(sdk), bytes.Equal(sdk, want), len(want))
	}

	awsCLI := requireTool(t, "/usr/bin/aws")
	outFile := filepath.Join(t.TempDir(), "out.mp4")
	cmd := exec.Command(awsCLI, "kinesis-video-archived-media", "get-clip", "--stream-name", "demo",
		"--clip-fragment-selector", `{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{"StartTimestamp":0,"EndTimestamp":20}}`,
		outFile, "--endpoint-url", ts.URL, "--output", "json")
	cmd.Env = awsCLIEnv()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws: %v\n%s", err, b)
	}
	var cli struct{ ContentType string }
	if err := json.Unmarshal(b, &cli); err != nil || cli.ContentType != "video/mp4" {
		t.Fatalf("aws output %s: %v", b, err)
	}
	got, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("CLI wrote %d bytes, not the %d of the clip", len(got), len(want))
	}
}

// clipServer serves the test server's store with other web.Config limits.
func clipServer(t *testing.T, ts *testServer, maxFragments int, maxBytes int64) string {
	srv := httptest.NewServer(New(Config{PublicURL: ts.URL, Store: ts.Store, Logger: ts.Server.log,
		ClipMaxFragments: maxFragments, ClipMaxBytes: maxBytes}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestClipLimits: a range of 210 fragments is cut at 200 by default, and
// says so; a configured higher limit is honoured; a byte limit cuts at the
// last whole fragment that fits, and the next-timestamp header continues
// the clip exactly where it stopped.
func TestClipLimits(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ts := newTestServer(t, nil, fragments.Config{})
	base := time.Now().Add(-time.Hour).UnixMilli()
	var frags []hlsFragment
	for i := range 210 {
		frags = append(frags, hlsFragment{base + int64(i)*200, 200}) // 5 frames each
	}
	if n := len(gmIngestBytes(t, ts, "many", hlsStreamBytes(frags, true, -1), false, 24)); n != 210 {
		t.Fatalf("%d fragments ingested", n)
	}
	sec := func(ms int64) float64 { return float64(ms) / 1000 }
	all := clipBody("many", "PRODUCER_TIMESTAMP", sec(base), sec(base+60000))
	videoPackets := func(body []byte) int { return len(packetTimes(t, ffprobe, saveClip(t, body), "v:0")) }

	resp, body := getClip(t, ts.URL, all)
	if resp.StatusCode != 200 {
		t.Fatalf("getClip: %d %s", resp.StatusCode, body)
	}
	if h := resp.Header.Get(headerClipTruncated); h != "fragments=200" {
		t.Fatalf("%s: %q, want fragments=200", headerClipTruncated, h)
	}
	if h, want := resp.Header.Get(headerClipNext), epochNanos(frags[200].startMS*1e6); h != want {
		t.Fatalf("%s: %q, want %q (the 201st fragment)", headerClipNext, h, want)
	}
	if n := videoPackets(body); n != 200*5 {
		t.Fatalf("%d video frames, want 1000 (200 fragments)", n)
	}

	// Configured: 300 fragments, then 205.
	for _, c := range []struct {
		max     int
		frames  int
		cut     string
		nextIdx int
	}{{300, 210 * 5, "", -1}, {205, 205 * 5, "fragments=205", 205}} {
		resp, body := getClip(t, clipServer(t, ts, c.max, 0), all)
		if resp.StatusCode != 200 || resp.Header.Get(headerClipTruncated) != c.cut {
			t.Fatalf("limit %d: %d, %s %q, want %q", c.max, resp.StatusCode, headerClipTruncated, resp.Header.Get(headerClipTruncated), c.cut)
		}
		if n := videoPackets(body); n != c.frames {
			t.Fatalf("limit %d: %d video frames, want %d", c.max, n, c.frames)
		}
	}

	// Bytes: about 40 fragments' worth. The clip stays within the limit,
	// and the follow-up from the next-timestamp header has the rest.
	limit := int64(len(body)) / 5
	u := clipServer(t, ts, 1000, limit)
	total := 0
	next := sec(base)
	for round := 0; ; round++ {
		resp, body := getClip(t, u, clipBody("many", "PRODUCER_TIMESTAMP", next, sec(base+60000)))
		if resp.StatusCode != 200 {
			t.Fatalf("round %d: %d %s", round, resp.StatusCode, body)
		}
		if int64(len(body)) > limit {
			t.Fatalf("round %d: %d bytes over the %d-byte limit", round, len(body), limit)
		}
		n := videoPackets(body)
		total += n
		cut := resp.Header.Get(headerClipTruncated)
		if cut == "" {
			break
		}
		if cut != "bytes="+strconv.FormatInt(limit, 10) || n < 150 || round > 10 {
			t.Fatalf("round %d: cut %q with %d frames", round, cut, n)
		}
		if int64(len(body))+int64(n/5)*(500+2*4+24*5) < limit/2 {
			t.Fatalf("round %d: %d bytes, far below the %d-byte limit", round, len(body), limit)
		}
		v, err := strconv.ParseFloat(resp.Header.Get(headerClipNext), 64)
		if err != nil {
			t.Fatalf("round %d: %s %q", round, headerClipNext, resp.Header.Get(headerClipNext))
		}
		next = v
	}
	if total != 210*5 {
		t.Fatalf("the clips hold %d frames together, want %d", total, 210*5)
	}
}

// TestClipCodecChange: a producer reconnecting with other codec private
// data ends the clip at the last fragment before the change; the header
// says so and where the next clip starts.
func TestClipCodecChange(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	base := time.Now().Add(-time.Hour).UnixMilli()
	frags := []hlsFragment{{base, 1000}, {base + 1000, 1000}, {base + 2000, 1000}, {base + 3000, 1000}}
	gmIngestBytes(t, ts, "change", hlsStreamBytes(frags, false, 2), false, 24)
	sec := func(ms int64) float64 { return float64(ms) / 1000 }
	resp, body := getClip(t, ts.URL, clipBody("change", "PRODUCER_TIMESTAMP", sec(base), sec(base+10000)))
	if resp.StatusCode != 200 || resp.Header.Get(headerClipTruncated) != "codec-change" {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get(headerClipTruncated), body)
	}
	if got, want := resp.Header.Get(headerClipNext), epochNanos((base+2000)*1e6); got != want {
		t.Fatalf("next %q, want %q", got, want)
	}
	if mdatPayload(body) != 2*25*500 {
		t.Fatalf("mdat of %d bytes, want 2 fragments' frames", mdatPayload(body))
	}
	resp, body = getClip(t, ts.URL, clipBody("change", "PRODUCER_TIMESTAMP", sec(base+2000), sec(base+10000)))
	if resp.StatusCode != 200 || resp.Header.Get(headerClipTruncated) != "" || mdatPayload(body) != 2*25*500 {
		t.Fatalf("after the change: %d %q, mdat %d", resp.StatusCode, resp.Header.Get(headerClipTruncated), mdatPayload(body))
	}
}

// TestClipDeduplicates: fragments sent twice with the same producer
// timestamps (a second PutMedia connection) appear once, as first
// ingested; server timestamps see both.
func TestClipDeduplicates(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	base := time.Now().Add(-time.Hour).UnixMilli()
	frags := []hlsFragment{{base, 1000}, {base + 1000, 1000}}
	tracks := []mkv.Track{hlsVideo}
	before := time.Now()
	gmIngestBytes(t, ts, "dup", clipStreamBytes(frags, tracks, 0x10, nil), false, 24)
	gmIngestBytes(t, ts, "dup", clipStreamBytes(frags, tracks, 0x80, nil), false, -1)
	sec := func(ms int64) float64 { return float64(ms) / 1000 }
	resp, body := getClip(t, ts.URL, clipBody("dup", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	data := body[len(body)-int(mdatPayload(body)):]
	if len(data) != 2*25*500 || data[0] != 0x10 || data[len(data)-1] != 0x10+24 {
		t.Fatalf("producer-time clip: %d bytes of frames from %#x to %#x, want 25000 of the first copy (0x10..0x28)", len(data), data[0], data[len(data)-1])
	}
	resp, body = getClip(t, ts.URL, clipBody("dup", "SERVER_TIMESTAMP", float64(before.UnixMilli()-1000)/1000, float64(time.Now().UnixMilli())/1000))
	if resp.StatusCode != 200 || mdatPayload(body) != 4*25*500 {
		t.Fatalf("server-time clip: %d, mdat %d, want both copies", resp.StatusCode, mdatPayload(body))
	}
}

// TestClipErrors: bad requests and streams GetClip cannot serve get the
// documented errors, never a 500.
func TestClipErrors(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	base := time.Now().Add(-time.Hour).UnixMilli()
	frags := []hlsFragment{{base, 1000}, {base + 1000, 1000}}
	ingest := func(name string, tracks []mkv.Track, noKey map[int]bool) {
		gmIngestBytes(t, ts, name, clipStreamBytes(frags, tracks, 1, noKey), false, 24)
	}
	gmIngestBytes(t, ts, "s", hlsStreamBytes(frags, true, -1), false, 24)
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "norec"})
	aacOnly := hlsAudio
	aacOnly.Number = 1
	ingest("audio-only", []mkv.Track{aacOnly}, nil)
	noPriv := hlsVideo
	noPriv.CodecPrivate = nil
	ingest("no-private", []mkv.Track{noPriv}, nil)
	badPriv := hlsVideo
	badPriv.CodecPrivate = []byte{1, 2, 3}
	ingest("bad-private", []mkv.Track{badPriv}, nil)
	ulaw := mkv.Track{Number: 2, UID: 2, Type: 2, CodecID: "A_MS/ACM", SamplingFreq: 8000, Channels: 1,
		CodecPrivate: []byte{7, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0, 0, 0}}
	ingest("ulaw", []mkv.Track{hlsVideo, ulaw}, nil)
	alaw := ulaw
	alaw.CodecPrivate = append([]byte{6}, ulaw.CodecPrivate[1:]...)
	ingest("alaw", []mkv.Track{hlsVideo, alaw}, nil)
	hevcALaw := alaw
	hevc := hlsVideo
	hevc.CodecID = "V_MPEGH/ISO/HEVC"
	ingest("hevc-alaw", []mkv.Track{hevc, hevcALaw}, nil)
	ingest("no-key", []mkv.Track{hlsVideo}, map[int]bool{1: true})

	sec := func(ms int64) float64 { return float64(ms) / 1000 }
	ok := clipBody("s", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000))
	with := func(body map[string]any, edit func(sel map[string]any, rng map[string]any)) map[string]any {
		b, _ := json.Marshal(body)
		var c map[string]any
		json.Unmarshal(b, &c)
		sel := c["ClipFragmentSelector"].(map[string]any)
		edit(sel, sel["TimestampRange"].(map[string]any))
		return c
	}
	future := float64(time.Now().Add(time.Hour).UnixMilli()) / 1000
	for _, c := range []struct {
		name   string
		body   map[string]any
		status int
		typ    string
	}{
		{"the range itself", ok, 200, ""},
		{"the alaw stream", clipBody("alaw", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 200, ""},
		{"missing selector", map[string]any{"StreamName": "s"}, 400, "InvalidArgumentException"},
		{"missing range", with(ok, func(sel, _ map[string]any) { delete(sel, "TimestampRange") }), 400, "InvalidArgumentException"},
		{"missing end", with(ok, func(_, r map[string]any) { delete(r, "EndTimestamp") }), 400, "InvalidArgumentException"},
		{"missing start", with(ok, func(_, r map[string]any) { delete(r, "StartTimestamp") }), 400, "InvalidArgumentException"},
		{"missing selector type", with(ok, func(sel, _ map[string]any) { delete(sel, "FragmentSelectorType") }), 400, "InvalidArgumentException"},
		{"bad selector type", with(ok, func(sel, _ map[string]any) { sel["FragmentSelectorType"] = "NOW" }), 400, "InvalidArgumentException"},
		{"reversed range", clipBody("s", "PRODUCER_TIMESTAMP", sec(base+5000), sec(base)), 400, "InvalidArgumentException"},
		{"empty range", clipBody("s", "PRODUCER_TIMESTAMP", sec(base), sec(base)), 400, "InvalidArgumentException"},
		{"range over 24 h", clipBody("s", "PRODUCER_TIMESTAMP", sec(base), sec(base+24*3600*1000+1)), 400, "InvalidArgumentException"},
		{"range of exactly 24 h", clipBody("s", "PRODUCER_TIMESTAMP", sec(base), sec(base+24*3600*1000)), 200, ""},
		{"server end in the future", clipBody("s", "SERVER_TIMESTAMP", sec(base), future), 400, "InvalidArgumentException"},
		{"producer end in the future", clipBody("s", "PRODUCER_TIMESTAMP", sec(base), future), 200, ""},
		{"string timestamp", with(ok, func(_, r map[string]any) { r["StartTimestamp"] = "yesterday" }), 400, "InvalidArgumentException"},
		{"no stream", map[string]any{"ClipFragmentSelector": ok["ClipFragmentSelector"]}, 400, "InvalidArgumentException"},
		{"bad stream name", clipBody("a b", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 400, "InvalidArgumentException"},
		{"unknown stream", clipBody("nope", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 404, "ResourceNotFoundException"},
		{"no retention", clipBody("norec", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 400, "NoDataRetentionException"},
		{"nothing in range", clipBody("s", "PRODUCER_TIMESTAMP", sec(base+100000), sec(base+200000)), 404, "ResourceNotFoundException"},
		{"nothing in range by server time", clipBody("s", "SERVER_TIMESTAMP", sec(base-7200000), sec(base-3600000)), 404, "ResourceNotFoundException"},
		{"audio only", clipBody("audio-only", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 400, "UnsupportedStreamMediaTypeException"},
		{"G.711 µ-law", clipBody("ulaw", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 400, "UnsupportedStreamMediaTypeException"},
		{"H.265 with G.711", clipBody("hevc-alaw", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 400, "UnsupportedStreamMediaTypeException"},
		{"no codec private data", clipBody("no-private", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 400, "MissingCodecPrivateDataException"},
		{"bad codec private data", clipBody("bad-private", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 400, "InvalidCodecPrivateDataException"},
		{"no key frame", clipBody("no-key", "PRODUCER_TIMESTAMP", sec(base), sec(base+5000)), 400, "InvalidMediaFrameException"},
		{"no key frame, outside the range", clipBody("no-key", "PRODUCER_TIMESTAMP", sec(base), sec(base+500)), 200, ""},
	} {
		resp, b := getClip(t, ts.URL, c.body)
		if resp.StatusCode != c.status || resp.Header.Get("x-amzn-ErrorType") != c.typ {
			t.Errorf("%s: %d %s %.300s, want %d %s", c.name, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b, c.status, c.typ)
		}
		if c.status != 200 {
			var e struct {
				Type string `json:"__type"`
			}
			if json.Unmarshal(b, &e) != nil || e.Type != c.typ {
				t.Errorf("%s: body %.300s", c.name, b)
			}
		}
	}
	// An unsigned request to a server that wants SigV4 is refused before anything is read.
	sigTS := newTestServer(t, []Credentials{{AccessKeyID: "AKID", SecretAccessKey: "secret"}}, fragments.Config{})
	if resp, b := getClip(t, sigTS.URL, ok); resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("unsigned request with credentials configured: %d %s", resp.StatusCode, b)
	}
}
