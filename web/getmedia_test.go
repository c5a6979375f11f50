package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/fragments/producer"
	"github.com/kvsgate/kvsgate/session/limits"
)

// gmFrame is one frame as a Matroska reader sees it.
type gmFrame struct {
	track uint64
	pts   int64 // cluster timecode + block timecode
	key   bool
	data  string
}

// gmFragment is one fragment of GetMedia output: its frames and the tags
// around it.
type gmFragment struct {
	frames []gmFrame
	tags   map[string]string // before and after the cluster
}

// gmParsed is a parsed GetMedia / GetMediaForFragmentList body.
type gmParsed struct {
	headers   int
	codecPriv []string
	fragments []*gmFragment
	errors    []map[string]string // error tags outside fragments
}

// gmParse reads Matroska with our own reader. Tags before a cluster open a
// fragment; tags after it (MILLIS_BEHIND_NOW, CONTINUATION_TOKEN) join it.
func gmParse(t testing.TB, data []byte) *gmParsed {
	t.Helper()
	p := &gmParsed{}
	rd := mkv.NewReader(bytes.NewReader(data))
	var cur *gmFragment
	var tc int64
	inCluster := false
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return p
		}
		if err != nil {
			t.Fatalf("GetMedia output does not parse: %v", err)
		}
		switch ev.Kind {
		case mkv.KindTracks:
			p.headers++
			for _, tr := range ev.Header.Tracks {
				p.codecPriv = append(p.codecPriv, fmt.Sprintf("%d:%s:%x", tr.Number, tr.CodecID, tr.CodecPrivate))
			}
		case mkv.KindTags:
			m := map[string]string{}
			for _, tg := range ev.Tags {
				m[tg.Name] = tg.Value
			}
			switch {
			case m["AWS_KINESISVIDEO_ERROR_ID"] != "":
				p.errors = append(p.errors, m)
			case m["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] != "":
				cur = &gmFragment{tags: m}
				p.fragments = append(p.fragments, cur)
			case cur != nil:
				for k, v := range m {
					cur.tags[k] = v
				}
			default:
				t.Fatalf("tags %v before any fragment", m)
			}
		case mkv.KindClusterStart:
			if cur == nil || len(cur.frames) > 0 {
				t.Fatal("a Cluster without its fragment tags before it")
			}
			inCluster = true
		case mkv.KindTimecode:
			tc = ev.Timecode
		case mkv.KindBlock:
			for _, f := range ev.Block.Frames {
				cur.frames = append(cur.frames, gmFrame{track: ev.Block.Track, pts: tc + int64(ev.Block.Timecode), key: ev.Block.Key, data: string(ev.Raw[f.Off : f.Off+f.Len])})
			}
		case mkv.KindClusterEnd:
			inCluster = false
		}
		_ = inCluster
	}
}

// gmSource reads a producer file's clusters as fragments of frames.
func gmSource(t testing.TB, path string) (*gmParsed, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := &gmParsed{}
	rd := mkv.NewReader(bytes.NewReader(data))
	var tc int64
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return p, data
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case mkv.KindTracks:
			p.headers++
			for _, tr := range ev.Header.Tracks {
				p.codecPriv = append(p.codecPriv, fmt.Sprintf("%d:%s:%x", tr.Number, tr.CodecID, tr.CodecPrivate))
			}
		case mkv.KindClusterStart:
			p.fragments = append(p.fragments, &gmFragment{})
		case mkv.KindTimecode:
			tc = ev.Timecode
		case mkv.KindBlock:
			cur := p.fragments[len(p.fragments)-1]
			for _, f := range ev.Block.Frames {
				cur.frames = append(cur.frames, gmFrame{track: ev.Block.Track, pts: tc + int64(ev.Block.Timecode), key: ev.Block.Key, data: string(ev.Raw[f.Off : f.Off+f.Len])})
			}
		}
	}
}

func gmPost(t testing.TB, url, path string, body any) (*http.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// gmIngest posts a file as one PutMedia body, as the KVS C producer sent
// the captures (ABSOLUTE timecodes, or RELATIVE to the captures' producer
// start), and returns the fragment numbers listed afterwards. retention < 0
// uses an existing stream.
func gmIngest(t testing.TB, ts *testServer, stream, file string, retention int) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return gmIngestBytes(t, ts, stream, data, strings.Contains(file, "relative"), retention)
}

func gmIngestBytes(t testing.TB, ts *testServer, stream string, data []byte, relative bool, retention int) []string {
	t.Helper()
	if retention >= 0 {
		if resp, b := gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": stream, "DataRetentionInHours": retention}); resp.StatusCode != 200 {
			t.Fatalf("createStream: %s", b)
		}
	}
	req, _ := http.NewRequest("POST", ts.URL+"/putMedia", bytes.NewReader(data))
	req.Header.Set("x-amzn-stream-name", stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
	if relative {
		req.Header.Set("x-amzn-fragment-timecode-type", "RELATIVE")
		req.Header.Set("x-amzn-producer-start-timestamp", "1795289339.636")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	acks, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || bytes.Contains(acks, []byte("ERROR")) {
		t.Fatalf("putMedia: %d %s", resp.StatusCode, acks)
	}
	resp, b := gmPost(t, ts.URL, "/listFragments", map[string]any{"StreamName": stream, "MaxResults": 1000})
	if resp.StatusCode != 200 {
		t.Fatalf("listFragments: %s", b)
	}
	var out struct {
		Fragments []struct{ FragmentNumber string }
	}
	json.Unmarshal(b, &out)
	var nums []string
	for _, f := range out.Fragments {
		nums = append(nums, f.FragmentNumber)
	}
	return nums
}

// gmSameFrames checks that got holds the source's frames: same count, bytes,
// key flags and relative timing per fragment.
func gmSameFrames(t testing.TB, src, got *gmParsed) {
	t.Helper()
	if len(got.fragments) != len(src.fragments) {
		t.Fatalf("%d fragments, want %d", len(got.fragments), len(src.fragments))
	}
	if strings.Join(got.codecPriv, " ") != strings.Join(src.codecPriv, " ") {
		t.Fatalf("tracks %v, want %v", got.codecPriv, src.codecPriv)
	}
	for i, sf := range src.fragments {
		gf := got.fragments[i]
		if len(gf.frames) != len(sf.frames) {
			t.Fatalf("fragment %d: %d frames, want %d", i, len(gf.frames), len(sf.frames))
		}
		for j := range sf.frames {
			s, g := sf.frames[j], gf.frames[j]
			if s.track != g.track || s.key != g.key || s.data != g.data || g.pts-gf.frames[0].pts != s.pts-sf.frames[0].pts {
				t.Fatalf("fragment %d frame %d differs: track %d/%d key %v/%v size %d/%d pts %d/%d",
					i, j, g.track, s.track, g.key, s.key, len(g.data), len(s.data), g.pts, s.pts)
			}
		}
	}
}

func TestGetMediaRoundTrip(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	for _, file := range []string{"producer-c-video-absolute-tags.mkv", "producer-c-av-relative.mkv"} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join(testRepo, "testdata/producer", file)
			src, _ := gmSource(t, path)
			stream := strings.TrimSuffix(file, ".mkv")
			nums := gmIngest(t, ts, stream, path, 2)

			resp, body := gmPost(t, ts.URL, "/getMedia", map[string]any{"StreamName": stream, "StartSelector": map[string]any{"StartSelectorType": "EARLIEST"}})
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/webm" {
				t.Fatalf("getMedia: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			got := gmParse(t, body)
			gmSameFrames(t, src, got)
			if got.headers != 1 {
				t.Fatalf("%d stream headers, want 1", got.headers)
			}
			for i, f := range got.fragments {
				if f.tags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] != nums[i] || f.tags["AWS_KINESISVIDEO_CONTINUATION_TOKEN"] != nums[i] {
					t.Fatalf("fragment %d tags %v, want number and token %s", i, f.tags, nums[i])
				}
				for _, k := range []string{"AWS_KINESISVIDEO_SERVER_TIMESTAMP", "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"} {
					if _, err := strconv.ParseFloat(f.tags[k], 64); err != nil {
						t.Fatalf("fragment %d: tag %s = %q", i, k, f.tags[k])
					}
				}
				if strings.Contains(file, "tags") && f.tags["TEST_KEY_1"] == "" {
					t.Fatalf("fragment %d lacks its metadata tags: %v", i, f.tags)
				}
			}

			// Re-ingesting the GetMedia output (through the put client, which
			// drops the AWS_ tags PutMedia refuses) reproduces the same frames.
			if _, err := producer.Put(context.Background(), bytes.NewReader(body), producer.Options{Endpoint: ts.URL, Stream: stream + "-again", Create: true}); err != nil {
				t.Fatal(err)
			}
			_, again := gmPost(t, ts.URL, "/getMedia", map[string]any{"StreamName": stream + "-again", "StartSelector": map[string]any{"StartSelectorType": "EARLIEST"}})
			againParsed := gmParse(t, again)
			gmSameFrames(t, src, againParsed)
			// ... and keeps the producer's metadata tags with their fragments.
			for i, f := range againParsed.fragments {
				if strings.Contains(file, "tags") && f.tags["TEST_KEY_1"] != got.fragments[i].tags["TEST_KEY_1"] {
					t.Fatalf("re-ingested fragment %d: TEST_KEY_1 = %q, want %q", i, f.tags["TEST_KEY_1"], got.fragments[i].tags["TEST_KEY_1"])
				}
			}

			// GetMediaForFragmentList, in the order given, with an unknown number.
			list := append([]string{nums[len(nums)-1]}, nums[:len(nums)-1]...)
			list = append(list, "12345")
			resp, body = gmPost(t, ts.URL, "/getMediaForFragmentList", map[string]any{"StreamName": stream, "Fragments": list})
			if resp.StatusCode != 200 {
				t.Fatalf("getMediaForFragmentList: %d %s", resp.StatusCode, body)
			}
			gl := gmParse(t, body)
			reordered := &gmParsed{codecPriv: src.codecPriv, fragments: append([]*gmFragment{src.fragments[len(src.fragments)-1]}, src.fragments[:len(src.fragments)-1]...)}
			gmSameFrames(t, reordered, gl)
			for i, f := range gl.fragments {
				if f.tags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] != list[i] {
					t.Fatalf("fragment %d is %s, want %s", i, f.tags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"], list[i])
				}
			}
			if len(gl.errors) != 1 || gl.errors[0]["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] != "12345" || gl.errors[0]["AWS_KINESISVIDEO_ERROR_ID"] != "4000" {
				t.Fatalf("error tags %v, want one 4000 for 12345", gl.errors)
			}
		})
	}
}

// TestGetMediaFFprobe checks ffprobe reads GetMedia output of the demo clip
// frame for frame.
func TestGetMediaFFprobe(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ts := newTestServer(t, nil, fragments.Config{})
	clip := filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv")
	gmIngest(t, ts, "demo", clip, 1)
	_, body := gmPost(t, ts.URL, "/getMedia", map[string]any{"StreamName": "demo", "StartSelector": map[string]any{"StartSelectorType": "EARLIEST"}})
	out := filepath.Join(t.TempDir(), "out.mkv")
	os.WriteFile(out, body, 0o644)
	probe := func(path string) string {
		b, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "frame=media_type,key_frame,pkt_size,pts", "-of", "csv", path).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", path, err)
		}
		return string(b)
	}
	want, got := probe(clip), probe(out)
	if got != want || strings.Count(got, "\n") < 700 {
		t.Fatalf("ffprobe frames differ (%d vs %d lines)", strings.Count(got, "\n"), strings.Count(want, "\n"))
	}
}

// gmTail reads a GetMedia response as it arrives, reporting each fragment
// (its tags) on a channel with the time it was complete.
type gmArrival struct {
	tags map[string]string
	at   time.Time
}

func gmTail(t testing.TB, ts *testServer, body map[string]any) (<-chan gmArrival, func()) {
	t.Helper()
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/getMedia", bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("getMedia: %d", resp.StatusCode)
	}
	ch := make(chan gmArrival, 100)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		rd := mkv.NewReader(resp.Body)
		for {
			ev, err := rd.Next()
			if err != nil {
				return
			}
			if ev.Kind == mkv.KindTags {
				m := map[string]string{}
				for _, tg := range ev.Tags {
					m[tg.Name] = tg.Value
				}
				if m["AWS_KINESISVIDEO_CONTINUATION_TOKEN"] != "" {
					ch <- gmArrival{tags: m, at: time.Now()}
				}
			}
		}
	}()
	return ch, cancel
}

// gmFeeder sends fragments one at a time on an open PutMedia body and
// reports the time of each ack of the given type (PERSISTED; RECEIVED for
// streams without retention, which get no PERSISTED).
type gmFeeder struct {
	pw        *io.PipeWriter
	persisted chan time.Time
}

func gmFeed(t testing.TB, ts *testServer, stream, event string) *gmFeeder {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", ts.URL+"/putMedia", pr)
	req.Header.Set("x-amzn-stream-name", stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
	f := &gmFeeder{pw: pw, persisted: make(chan time.Time, 100)}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var a struct{ EventType string }
			if dec.Decode(&a) != nil {
				close(f.persisted)
				return
			}
			if a.EventType == event {
				f.persisted <- time.Now()
			}
		}
	}()
	return f
}

var gmTrack = mkv.Track{Number: 1, UID: 1, Type: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: []byte{1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1e, 1, 0, 2, 0x68, 0xee}}

func gmHeader() []byte {
	var b []byte
	b = append(b, mkv.EBMLHeader()...)
	b = mkv.AppendUnknownSizeHeader(b, mkv.IDSegment)
	b = append(b, mkv.Info(1000000)...)
	return append(b, mkv.Tracks([]mkv.Track{gmTrack})...)
}

// gmFragmentBytes is one 1 s fragment of 25 frames ending with the
// end-of-fragment tag, so it completes at its last byte.
func gmFragmentBytes(tcMS int64, frameSize int) []byte {
	b := mkv.ClusterStart(uint64(tcMS))
	for i := 0; i < 25; i++ {
		frame := bytes.Repeat([]byte{byte(i)}, frameSize)
		b = append(b, mkv.SimpleBlock(1, int16(i*40), i == 0, frame)...)
	}
	return append(b, mkv.Tags([]mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})...)
}

func TestGetMediaLiveTail(t *testing.T) {
	for _, retention := range []int{1, 0} {
		t.Run(fmt.Sprintf("retention=%d", retention), func(t *testing.T) {
			ts := newTestServer(t, nil, fragments.Config{})
			stream := "live"
			if resp, b := gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": stream, "DataRetentionInHours": retention}); resp.StatusCode != 200 {
				t.Fatal(string(b))
			}
			event := "PERSISTED"
			if retention == 0 {
				event = "RECEIVED"
			}
			feed := gmFeed(t, ts, stream, event)
			defer feed.pw.Close()
			feed.pw.Write(gmHeader())
			base := time.Now().UnixMilli()
			// One fragment before the reader connects: NOW must not return it.
			feed.pw.Write(gmFragmentBytes(base, 1000))
			<-feed.persisted

			arrivals, stop := gmTail(t, ts, map[string]any{"StreamName": stream, "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
			defer stop()
			time.Sleep(100 * time.Millisecond) // let the reader settle into waiting
			var tokens []string
			for i := 1; i <= 5; i++ {
				feed.pw.Write(gmFragmentBytes(base+int64(i)*1000, 1000))
				acked := <-feed.persisted
				select {
				case a := <-arrivals:
					if d := a.at.Sub(acked); d > 500*time.Millisecond {
						t.Errorf("fragment %d reached the reader %v after its ack", i, d)
					}
					tokens = append(tokens, a.tags["AWS_KINESISVIDEO_CONTINUATION_TOKEN"])
				case <-time.After(5 * time.Second):
					t.Fatalf("fragment %d never reached the GetMedia reader", i)
				}
			}
			stop()

			// CONTINUATION_TOKEN resumes right after the fragment it names.
			arrivals, stop = gmTail(t, ts, map[string]any{"StreamName": stream, "StartSelector": map[string]any{"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": tokens[2]}})
			defer stop()
			for _, want := range tokens[3:] {
				select {
				case a := <-arrivals:
					if got := a.tags["AWS_KINESISVIDEO_CONTINUATION_TOKEN"]; got != want {
						t.Fatalf("resumed at %s, want %s", got, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("fragment %s not resent after the token", want)
				}
			}
		})
	}
}

func TestGetMediaBadInput(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "s", "DataRetentionInHours": 1})
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "norec"})
	many := make([]string, 1001)
	for i := range many {
		many[i] = strconv.Itoa(i + 1)
	}
	for _, c := range []struct {
		path   string
		body   any
		status int
		typ    string
	}{
		{"/getMedia", map[string]any{"StreamName": "s"}, 400, "InvalidArgumentException"},
		{"/getMedia", map[string]any{"StreamName": "s", "StartSelector": map[string]any{"StartSelectorType": "LATEST"}}, 400, "InvalidArgumentException"},
		{"/getMedia", map[string]any{"StreamName": "s", "StartSelector": map[string]any{"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "12a"}}, 400, "InvalidArgumentException"},
		{"/getMedia", map[string]any{"StreamName": "s", "StartSelector": map[string]any{"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "123"}}, 404, "ResourceNotFoundException"},
		{"/getMedia", map[string]any{"StreamName": "s", "StartSelector": map[string]any{"StartSelectorType": "SERVER_TIMESTAMP"}}, 400, "InvalidArgumentException"},
		{"/getMedia", map[string]any{"StreamName": "nope", "StartSelector": map[string]any{"StartSelectorType": "NOW"}}, 404, "ResourceNotFoundException"},
		{"/getMediaForFragmentList", map[string]any{"StreamName": "s", "Fragments": []string{}}, 400, "InvalidArgumentException"},
		{"/getMediaForFragmentList", map[string]any{"StreamName": "s", "Fragments": many}, 400, "InvalidArgumentException"},
		{"/getMediaForFragmentList", map[string]any{"StreamName": "s", "Fragments": []string{"-1"}}, 400, "InvalidArgumentException"},
		{"/getMediaForFragmentList", map[string]any{"StreamName": "nope", "Fragments": []string{"1"}}, 404, "ResourceNotFoundException"},
		{"/getMediaForFragmentList", map[string]any{"StreamName": "norec", "Fragments": []string{"1"}}, 400, "NoDataRetentionException"},
	} {
		resp, b := gmPost(t, ts.URL, c.path, c.body)
		if resp.StatusCode != c.status || resp.Header.Get("x-amzn-ErrorType") != c.typ {
			t.Errorf("%s %v: %d %s %s, want %d %s", c.path, c.body, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b, c.status, c.typ)
		}
	}
}

func TestGetMediaConnectionLimit(t *testing.T) {
	// The default limits but GetMedia's 5 TPS: this test retries fast.
	lc := limits.Default()
	lc.TPS[limits.GetMedia] = 0
	ts := newLimitedTestServer(t, lc, nil)
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "s", "DataRetentionInHours": 1})
	var stops []func()
	for i := 0; i < lc.Connections[limits.GetMediaConns]; i++ {
		_, stop := gmTail(t, ts, map[string]any{"StreamName": "s", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
		stops = append(stops, stop)
	}
	resp, b := gmPost(t, ts.URL, "/getMedia", map[string]any{"StreamName": "s", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	if resp.StatusCode != 400 || resp.Header.Get("x-amzn-ErrorType") != "ConnectionLimitExceededException" {
		t.Fatalf("connection %d: %d %s", lc.Connections[limits.GetMediaConns]+1, resp.StatusCode, b)
	}
	for _, s := range stops {
		s()
	}
	// Once they are gone, a new one is allowed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := gmPost(t, ts.URL, "/getMedia", map[string]any{"StreamName": "s", "StartSelector": map[string]any{"StartSelectorType": "EARLIEST"}})
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused after the other connections closed: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGetMediaCLI runs the Debian AWS CLI's get-media and
// get-media-for-fragment-list; ffprobe must read what they save.
func TestGetMediaCLI(t *testing.T) {
	aws := requireTool(t, "/usr/bin/aws")
	ffprobe := requireTool(t, "ffprobe")
	ts := newTestServer(t, nil, fragments.Config{})
	nums := gmIngest(t, ts, "demo", filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"), 1)
	dir := t.TempDir()
	env := awsCLIEnv()
	run := func(out string, args []string, more ...string) {
		args = append(args, "--endpoint-url", ts.URL, filepath.Join(dir, out))
		cmd := exec.Command(aws, append(args, more...)...)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, b)
		}
		probe, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", filepath.Join(dir, out)).Output()
		if err != nil || strings.TrimSpace(string(probe)) != "h264,250" {
			t.Fatalf("ffprobe of %s: %q %v", out, probe, err)
		}
	}
	run("get-media.mkv", []string{"kinesis-video-media", "get-media", "--stream-name", "demo", "--start-selector", "StartSelectorType=EARLIEST"})
	run("list.mkv", []string{"kinesis-video-archived-media", "get-media-for-fragment-list", "--stream-name", "demo"}, append([]string{"--fragments"}, nums...)...)
}
