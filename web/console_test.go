package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
)

// The web console end to end: testdata/players/console.mjs drives it in
// headless Chromium against a test server fed like `kvsgate serve --demo`.

// consoleArtifacts is where screenshots and the exported clip go:
// $KVSGATE_ARTIFACTS, else testdata/artifacts (ignored by git).
func consoleArtifacts(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KVSGATE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(testRepo, "testdata", "artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(dir, t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// feedDemo feeds stream from the demo clip in real time, looping, as
// `serve --demo` does, until the test ends, and waits for minFragments.
func feedDemo(t testing.TB, ts *testServer, stream string, creds *aws.Credentials, minFragments int) {
	t.Helper()
	clip, err := os.ReadFile(filepath.Join(testRepo, "cmd", "kvsgate", "demo", "sample.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			producer.Put(ctx, bytes.NewReader(clip), producer.Options{Endpoint: ts.URL, Stream: stream, Create: true,
				Realtime: true, Loop: true, RetentionHours: 24, Credentials: creds})
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, err := ts.Store.Index.Stream(stream, ""); err == nil && st != nil {
			frags, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByServer, To: 1<<63 - 1, AfterTS: -1, Limit: minFragments})
			if err == nil && len(frags) >= minFragments {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s: fewer than %d fragments after 60 s", stream, minFragments)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// consoleOut is console.mjs's JSON line.
type consoleOut struct {
	OK           bool                       `json:"ok"`
	Checks       map[string]json.RawMessage `json:"checks"`
	Browser      string                     `json:"browser"`
	Bench        *consoleBench              `json:"bench"`
	HarnessError string                     `json:"harnessError"`
}

type consoleBench struct {
	Runs []struct {
		Bytes           int      `json:"bytes"`
		Requests        int      `json:"requests"`
		TTIMs           float64  `json:"ttiMs"`
		BaselineMs      float64  `json:"baselineMs"`
		PlayerLibraries []string `json:"playerLibraries"`
	} `json:"runs"`
	MedianBytes float64 `json:"medianBytes"`
	MedianTTIMs float64 `json:"medianTtiMs"`
}

// runConsole runs console.mjs with args against url and returns its result.
func runConsole(t testing.TB, url string, args ...string) consoleOut {
	t.Helper()
	node, _ := requirePlayers(t)
	dir := playersDir(t)
	args = append([]string{filepath.Join(dir, "console.mjs"), "--url", url}, args...)
	stdout, stderr, _, err := runPlayersScript(dir, node, 12*time.Minute, args...)
	var out consoleOut
	line := lastJSONLine(stdout)
	if line == "" || json.Unmarshal([]byte(line), &out) != nil {
		t.Fatalf("console.mjs: no result (%v)\nstdout: %s\nstderr: %s", err, stdout, stderr)
	}
	if !out.OK || out.HarnessError != "" {
		t.Fatalf("console.mjs harness failed: %s\nstderr: %s", out.HarnessError, stderr)
	}
	return out
}

// check decodes one check's result, failing the test if the check itself crashed.
func (o consoleOut) check(t testing.TB, name string, v any) {
	t.Helper()
	raw, ok := o.Checks[name]
	if !ok {
		t.Fatalf("no result for check %s", name)
	}
	var failed struct {
		Failed string `json:"failed"`
	}
	json.Unmarshal(raw, &failed)
	if failed.Failed != "" {
		t.Fatalf("check %s failed to run: %s", name, failed.Failed)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("check %s: %v: %s", name, err, raw)
	}
	t.Logf("%s: %.600s", name, raw)
}

type consolePlay struct {
	Advanced    float64  `json:"advanced"`
	Errors      []string `json:"errors"`
	VideoWidth  int      `json:"videoWidth"`
	Status      string   `json:"status"`
	SessionURL  string   `json:"sessionUrl"`
	TimedOut    bool     `json:"timedOut"`
	WallTime    *float64 `json:"wallTime"`
	Screenshot  string   `json:"screenshot"`
	PageErrors  []string `json:"pageErrors"`
	ElapsedMs   int      `json:"elapsedMs"`
	Mode        string   `json:"mode"`
	Hash        string   `json:"hash"`
	VideoHeight int      `json:"videoHeight"`
}

func (p consolePlay) played(seconds float64) bool {
	return p.Advanced >= seconds && len(p.Errors) == 0
}

// ffprobeClip checks an MP4 file: its format and the frames of its video.
func ffprobeClip(t testing.TB, path string) (format string, frames int) {
	t.Helper()
	ffprobe := requireTool(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,nb_read_frames:format=format_name", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p struct {
		Streams []struct {
			CodecName    string `json:"codec_name"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
		Format struct {
			FormatName string `json:"format_name"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil || len(p.Streams) == 0 {
		t.Fatalf("ffprobe %s: %v %s", path, err, out)
	}
	frames, _ = strconv.Atoi(p.Streams[0].NbReadFrames)
	return p.Format.FormatName + "/" + p.Streams[0].CodecName, frames
}

// TestConsole drives every page of the console as a user would: the
// streams list, LIVE playback in each player, the thumbnail strip (and a
// click on it), a clip export, a fragment's metadata tags, the dashboard.
func TestConsole(t *testing.T) {
	requirePlayers(t)
	requireTool(t, "ffmpeg")
	ts := newTestServer(t, nil, fragments.Config{})
	// A real producer capture with metadata tags on its fragments.
	gmIngest(t, ts, "tagged", filepath.Join(testRepo, "testdata/producer/producer-c-video-absolute-tags.mkv"), 24)
	feedDemo(t, ts, "cam2", nil, 2)
	feedDemo(t, ts, "demo", nil, 14)
	art := consoleArtifacts(t)

	plays := []string{"play:hlsjs:HLS_FMP4", "play:shaka:HLS_FMP4", "play:dashjs:DASH", "play:native:HLS_FMP4", "play:shaka:DASH", "play:hlsjs:HLS_TS"}
	checks := append([]string{"streams"}, plays...)
	checks = append(checks, "ondemand:hlsjs:HLS_FMP4", "ondemand:shaka:DASH", "ondemand:dashjs:DASH", "thumbs", "clip", "metadata:tagged", "dashboard", "manage")
	out := runConsole(t, ts.URL, "--checks", strings.Join(checks, ","), "--seconds", "5", "--artifacts", art, "--timeout", "45")
	t.Logf("chromium %s; screenshots in %s", out.Browser, art)

	var streams struct {
		Names  []string `json:"names"`
		Rates  []string `json:"rates"`
		Lasts  []string `json:"lasts"`
		Errors []string `json:"errors"`
	}
	out.check(t, "streams", &streams)
	for _, want := range []string{"demo", "cam2", "tagged"} {
		if !slices.Contains(streams.Names, want) {
			t.Errorf("streams page lists %v, want %s", streams.Names, want)
		}
	}
	if i := slices.Index(streams.Names, "demo"); i < 0 || !regexp.MustCompile(`^[1-9]\d* kbit/s`).MatchString(streams.Rates[i]) ||
		!strings.Contains(streams.Lasts[i], "ago") {
		t.Errorf("demo's ingest rate %q / last fragment %q: want a rate and a recent time", streams.Rates, streams.Lasts)
	}

	for _, name := range plays {
		var p consolePlay
		out.check(t, name, &p)
		if !p.played(5) || p.VideoWidth <= 0 || !strings.Contains(p.SessionURL, "SessionToken=") {
			t.Errorf("%s: did not play 5 s: advanced %.2f, errors %v, video width %d, status %q", name, p.Advanced, p.Errors, p.VideoWidth, p.Status)
		}
	}

	// ON_DEMAND over 20 s of the past; a click on a thumbnail inside the
	// range seeks within the session: the playhead's wall time 1.5 s later
	// is the thumbnail's time plus what has played since (a fragment's
	// start may be a second before it: seeks land on the fragment).
	// (dash.js too: the demo stream's ON_DEMAND MPDs used to have a Period
	// at every loop of the clip, each starting with a hole in the video,
	// where it sometimes stalled; they have one Period now, see the DASH
	// notes in README.md.)
	for _, name := range []string{"ondemand:hlsjs:HLS_FMP4", "ondemand:shaka:DASH", "ondemand:dashjs:DASH"} {
		var od struct {
			Advanced  float64  `json:"advanced"`
			Errors    []string `json:"errors"`
			Target    *float64 `json:"target"`
			SeekError *float64 `json:"seekErrorMs"`
			AfterSeek struct {
				Mode string `json:"mode"`
			} `json:"afterSeek"`
		}
		out.check(t, name, &od)
		if od.Advanced < 3 || len(od.Errors) > 0 {
			t.Errorf("%s: did not play: advanced %.2f, errors %v", name, od.Advanced, od.Errors)
		}
		if od.Target == nil || od.SeekError == nil || *od.SeekError < -1500 || *od.SeekError > 3500 || od.AfterSeek.Mode != "ON_DEMAND" {
			t.Errorf("%s: a thumbnail click did not seek within the session: %+v", name, od)
		}
	}

	var thumbs struct {
		Loaded        int         `json:"loaded"`
		Cells         int         `json:"cells"`
		NaturalWidths []int       `json:"naturalWidths"`
		Errors        []string    `json:"errors"`
		TimedOut      bool        `json:"timedOut"`
		ClickSeek     consolePlay `json:"clickSeek"`
	}
	out.check(t, "thumbs", &thumbs)
	if thumbs.Loaded < 1 || thumbs.TimedOut || len(thumbs.Errors) > 0 {
		t.Errorf("thumbnail strip: %d of %d cells loaded, errors %v, timed out %v", thumbs.Loaded, thumbs.Cells, thumbs.Errors, thumbs.TimedOut)
	}
	for _, w := range thumbs.NaturalWidths {
		if w <= 0 {
			t.Errorf("a thumbnail has naturalWidth %d", w)
		}
	}
	if !thumbs.ClickSeek.played(2) || thumbs.ClickSeek.Mode != "LIVE_REPLAY" {
		t.Errorf("a click on a thumbnail did not play from there: %+v", thumbs.ClickSeek)
	}

	var clip struct {
		File      string `json:"file"`
		Suggested string `json:"suggested"`
		Shown     string `json:"shown"`
	}
	out.check(t, "clip", &clip)
	if !regexp.MustCompile(`^demo_\d{8}T\d{6}Z_\d{8}T\d{6}Z\.mp4$`).MatchString(clip.Suggested) {
		t.Errorf("clip file name %q", clip.Suggested)
	}
	if format, frames := ffprobeClip(t, clip.File); !strings.Contains(format, "mp4") || !strings.HasSuffix(format, "/h264") || frames <= 0 {
		t.Errorf("exported clip: %s with %d video frames", format, frames)
	} else {
		t.Logf("exported clip %s: %s, %d video frames", clip.Suggested, format, frames)
	}

	var meta struct {
		Tags   [][2]string `json:"tags"`
		None   string      `json:"none"`
		Errors []string    `json:"errors"`
		Number string      `json:"number"`
	}
	out.check(t, "metadata:tagged", &meta)
	var keys []string
	for _, kv := range meta.Tags {
		keys = append(keys, kv[0]+"="+kv[1])
	}
	if meta.Number == "" || !slices.ContainsFunc(keys, func(s string) bool { return strings.HasPrefix(s, "TEST_KEY_1=TEST_VALUE_") }) {
		t.Errorf("fragment %q metadata tags %v (none: %q, errors %v), want the producer's TEST_KEY_n", meta.Number, keys, meta.None, meta.Errors)
	}

	var dash struct {
		Cards []struct {
			Stream       string `json:"stream"`
			NaturalWidth int    `json:"naturalWidth"`
			Text         string `json:"text"`
		} `json:"cards"`
		Click consolePlay `json:"click"`
	}
	out.check(t, "dashboard", &dash)
	var shown []string
	for _, c := range dash.Cards {
		if c.NaturalWidth > 0 {
			shown = append(shown, c.Stream)
		} else {
			t.Errorf("dashboard: no thumbnail for %s (%q)", c.Stream, c.Text)
		}
	}
	slices.Sort(shown)
	if !slices.Equal(shown, []string{"cam2", "demo", "tagged"}) {
		t.Errorf("dashboard thumbnails for %v, want cam2, demo, tagged", shown)
	}
	if !dash.Click.played(2) || !strings.HasPrefix(dash.Click.Hash, "#/stream/") {
		t.Errorf("a click on a dashboard card did not play it live: %+v", dash.Click)
	}

	var manage struct {
		Created   bool     `json:"created"`
		Retention string   `json:"retention"`
		Deleted   bool     `json:"deleted"`
		Errors    []string `json:"errors"`
		Duplicate string   `json:"duplicate"`
	}
	out.check(t, "manage", &manage)
	if !manage.Created || manage.Retention != "48 h" || !manage.Deleted {
		t.Errorf("create / update retention / delete from the streams page: %+v", manage)
	}
	if !strings.Contains(manage.Duplicate, "ResourceInUseException") {
		t.Errorf("creating an existing stream showed %q, want ResourceInUseException", manage.Duplicate)
	}
	if st, err := ts.Store.Index.Stream("console-scratch", ""); err == nil && st != nil {
		t.Errorf("console-scratch still exists after Delete: %+v", st)
	}
}

// TestConsoleSigned: with credentials configured, the page's unsigned
// requests are refused (and the AWS error shown); with keys entered in the
// Credentials dialog, the browser signs (sigv4.js) and everything works.
func TestConsoleSigned(t *testing.T) {
	requirePlayers(t)
	creds := []Credentials{{AccessKeyID: "AKIDCONSOLE", SecretAccessKey: "console/secret+key="}}
	ts := newTestServer(t, creds, fragments.Config{})
	feedDemo(t, ts, "demo", &aws.Credentials{AccessKeyID: creds[0].AccessKeyID, SecretAccessKey: creds[0].SecretAccessKey}, 10)
	art := consoleArtifacts(t)
	out := runConsole(t, ts.URL, "--checks", "refused,signin,play:shaka:DASH,clip", "--seconds", "5", "--artifacts", art,
		"--access-key", creds[0].AccessKeyID, "--secret", creds[0].SecretAccessKey)

	var refused struct {
		Errors []string `json:"errors"`
		Names  []string `json:"names"`
	}
	out.check(t, "refused", &refused)
	if len(refused.Names) > 0 || len(refused.Errors) == 0 || !strings.Contains(refused.Errors[0], "MissingAuthenticationTokenException") {
		t.Errorf("without keys: streams %v, errors %v; want MissingAuthenticationTokenException shown", refused.Names, refused.Errors)
	}
	var signin struct {
		Names  []string `json:"names"`
		Button string   `json:"button"`
		Errors []string `json:"errors"`
		Stored []string `json:"stored"`
	}
	out.check(t, "signin", &signin)
	if !slices.Contains(signin.Names, "demo") || signin.Button != "Signed as AKIDCONSOLE" || len(signin.Errors) > 0 {
		t.Errorf("with keys: streams %v, button %q, errors %v", signin.Names, signin.Button, signin.Errors)
	}
	var p consolePlay
	out.check(t, "play:shaka:DASH", &p)
	if !p.played(5) {
		t.Errorf("signed session: did not play: advanced %.2f, errors %v", p.Advanced, p.Errors)
	}
	var clip struct {
		File string `json:"file"`
	}
	out.check(t, "clip", &clip)
	if format, frames := ffprobeClip(t, clip.File); !strings.Contains(format, "mp4") || frames <= 0 {
		t.Errorf("signed GetClip: %s with %d frames", format, frames)
	}
}

// TestConsoleSigV4Node checks the console's JS signer (web/console/sigv4.js,
// run by node) against aws-sdk-go-v2's signer on the AWS SigV4 test suite's
// get-vanilla request and a ListStreams POST, and sends the latter, signed
// by the JS, to a server that requires SigV4.
func TestConsoleSigV4Node(t *testing.T) {
	node := requireTool(t, "node")
	creds := []Credentials{{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}}
	ts := newTestServer(t, creds, fragments.Config{})
	date := time.Now().UTC().Truncate(time.Second)
	body := `{"MaxResults":10}`
	script := filepath.Join(playersDir(t), "sigv4-check.mjs")
	out, err := exec.Command(node, script, ts.URL+"/listStreams", body, date.Format(time.RFC3339)).CombinedOutput()
	if err != nil {
		t.Fatalf("sigv4-check.mjs: %v\n%s", err, out)
	}
	var js struct {
		Vanilla string            `json:"vanilla"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(lastJSONLine(string(out))), &js); err != nil {
		t.Fatalf("sigv4-check.mjs: %v\n%s", err, out)
	}

	// The SDK's signatures of the same requests.
	sdk := func(method, url, region, service, payload string, when time.Time) string {
		req, _ := http.NewRequest(method, url, nil)
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds[0].AccessKeyID, SecretAccessKey: creds[0].SecretAccessKey},
			req, payload, service, region, when)
		if err != nil {
			t.Fatal(err)
		}
		a, err := parseAuthorization(req.Header.Get("Authorization"))
		if err != nil {
			t.Fatal(err)
		}
		return a.Signature
	}
	vanilla := sdk("GET", "https://example.amazonaws.com/", "us-east-1", "service", emptySHA256, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	if js.Vanilla != vanilla {
		t.Errorf("get-vanilla: JS signature %s, SDK %s", js.Vanilla, vanilla)
	}
	a, err := parseAuthorization(js.Headers["Authorization"])
	if err != nil {
		t.Fatalf("JS Authorization %q: %v", js.Headers["Authorization"], err)
	}
	if want := sdk("POST", ts.URL+"/listStreams", "us-west-2", "kinesisvideo", sha256Hex([]byte(body)), date); a.Signature != want {
		t.Errorf("ListStreams: JS signature %s, SDK %s", a.Signature, want)
	}

	req, _ := http.NewRequest("POST", ts.URL+"/listStreams", strings.NewReader(body))
	for k, v := range js.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("JS-signed ListStreams: %d %s", resp.StatusCode, b)
	}
	// The same headers with another body are refused.
	req, _ = http.NewRequest("POST", ts.URL+"/listStreams", strings.NewReader(`{"MaxResults":11}`))
	for k, v := range js.Headers {
		req.Header.Set(k, v)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("JS-signed headers on another body: %d, want 403", resp.StatusCode)
	}
}

// TestConsoleAssets: what the server sends for the console: index.html at
// / (revalidated), versioned assets cached for a year, gzip, ETags,
// Content-Types, 404s; and the first load's size without a player library.
func TestConsoleAssets(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	resp, index := get("/")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" {
		t.Fatalf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	m := regexp.MustCompile(`/console/([0-9a-f]{12})/app\.js`).FindSubmatch(index)
	if m == nil || bytes.Contains(index, []byte(consoleVersionToken)) {
		t.Fatalf("index.html does not name the versioned app.js:\n%s", index)
	}
	version := string(m[1])
	if r, _ := get("/", "If-None-Match", resp.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
		t.Errorf("GET / with its ETag: %d, want 304", r.StatusCode)
	}

	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	console.load()
	for rel := range console.files {
		if rel == "index.html" {
			continue
		}
		r, body := get("/console/"+version+"/"+rel, "Accept-Encoding", "gzip, deflate")
		if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %q", rel, r.StatusCode, r.Header.Get("Cache-Control"))
			continue
		}
		if want, ok := types[filepath.Ext(rel)]; ok && r.Header.Get("Content-Type") != want {
			t.Errorf("%s: Content-Type %q, want %q", rel, r.Header.Get("Content-Type"), want)
		}
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
			body, _ = io.ReadAll(zr)
		} else if strings.HasSuffix(rel, ".js") && len(body) > 4096 {
			t.Errorf("%s: %d bytes sent without gzip", rel, len(body))
		}
		if !bytes.Equal(body, console.files[rel].body) {
			t.Errorf("%s: body differs from the embedded file", rel)
		}
	}
	if r, _ := get("/console/"+version+"/app.js", "If-None-Match", console.files["app.js"].etag); r.StatusCode != http.StatusNotModified {
		t.Errorf("app.js with its ETag: %d, want 304", r.StatusCode)
	}
	if r, _ := get("/console/000000000000/app.js"); r.StatusCode != 200 || r.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("app.js under an old version: %d %q, want 200 no-cache", r.StatusCode, r.Header.Get("Cache-Control"))
	}
	for _, p := range []string{"/console/" + version + "/nope.js", "/console/" + version + "/index.html", "/console/" + version, "/index.html"} {
		if r, body := get(p); r.StatusCode != 404 || r.Header.Get("x-amzn-ErrorType") == "" {
			t.Errorf("GET %s: %d %s, want a 404 AWS error", p, r.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("HEAD", ts.URL+"/console/"+version+"/style.css", nil)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 || r.ContentLength <= 0 {
		t.Errorf("HEAD style.css: %v %v", r, err)
	}

	// First load: index.html and what it loads before any player library
	// (its stylesheet, icon and module graph up to the streams page), gzipped.
	if bytes.Contains(index, []byte("vendor/")) {
		t.Errorf("index.html loads a player library up front")
	}
	first := len(gzipOf(index))
	for _, rel := range []string{"style.css", "favicon.svg", "app.js", "api.js", "sigv4.js", "ui.js", "streams.js"} {
		a := console.files[rel]
		if gz := a.gzipped(); gz != nil {
			first += len(gz)
		} else {
			first += len(a.body)
		}
	}
	t.Logf("first load without a player library: %d bytes gzipped (bodies only)", first)
	if first > 300<<10 {
		t.Errorf("first load %d bytes, goal at most 300 KB", first)
	}
}

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestConsoleCORSPreflight: a web app on another origin (the AWS sample
// media viewer, the console served elsewhere) can call every API the
// console uses with the headers the AWS SDKs for JavaScript send, and fetch
// playback resources.
func TestConsoleCORSPreflight(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	sdkHeaders := "amz-sdk-invocation-id,amz-sdk-request,authorization,content-type,x-amz-content-sha256,x-amz-date,x-amz-security-token,x-amz-user-agent"
	ops := []string{"/listStreams", "/describeStream", "/createStream", "/updateDataRetention", "/deleteStream", "/getDataEndpoint",
		"/listFragments", "/getHLSStreamingSessionURL", "/getDASHStreamingSessionURL", "/getImages", "/getClip", "/getMediaForFragmentList", "/getMedia"}
	for _, op := range ops {
		req, _ := http.NewRequest(http.MethodOptions, ts.URL+op, nil)
		req.Header.Set("Origin", "https://viewer.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", sdkHeaders)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(allowed, "*") || !strings.Contains(allowed, "authorization") {
			t.Errorf("preflight %s: %d %v", op, resp.StatusCode, resp.Header)
		}
	}
	for _, p := range []string{"/hls/v1/getHLSMasterPlaylist.m3u8", "/hls/v1/getHLSMediaPlaylist.m3u8", "/hls/v1/getMP4InitFragment.mp4",
		"/hls/v1/getMP4MediaFragment.mp4", "/hls/v1/getTSFragment.ts", "/dash/v1/getDASHManifest.mpd", "/dash/v1/getMP4InitFragment.mp4",
		"/dash/v1/getMP4MediaFragment.mp4"} {
		req, _ := http.NewRequest(http.MethodOptions, ts.URL+p+"?SessionToken=x", nil)
		req.Header.Set("Origin", "https://viewer.example")
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "range")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("preflight GET %s: %d %v", p, resp.StatusCode, resp.Header)
		}
		// An error (a bad token) still carries the CORS headers, so a player sees its status.
		req, _ = http.NewRequest(http.MethodGet, ts.URL+p+"?SessionToken=x", nil)
		req.Header.Set("Origin", "https://viewer.example")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "x-amzn-ErrorType") {
			t.Errorf("GET %s from another origin: %d %v", p, resp.StatusCode, resp.Header)
		}
	}
}

// FuzzConsoleRequest: any path under /console/ and any If-None-Match and
// Accept-Encoding headers get 200, 304 or a 404 AWS error, never a crash
// or a 500.
func FuzzConsoleRequest(f *testing.F) {
	console.load()
	f.Add("/console/"+console.version+"/app.js", console.files["app.js"].etag, "gzip")
	f.Add("/console/x/../app.js", `W/"x", *`, "gzip;q=0, br")
	f.Add("/console//", "", "GZIP; q=0.5")
	f.Add("/", `"`, ";;,")
	s := New(Config{PublicURL: "http://127.0.0.1"})
	h := s.Handler()
	f.Fuzz(func(t *testing.T, path, inm, ae string) {
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
		if err != nil {
			t.Skip()
		}
		req.URL.Path = "/console/" + strings.TrimPrefix(path, "/")
		req.Header.Set("If-None-Match", inm)
		req.Header.Set("Accept-Encoding", ae)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusNotModified:
		case http.StatusNotFound:
			if w.Header().Get("x-amzn-ErrorType") == "" {
				t.Fatalf("%q: 404 without an AWS error", path)
			}
		default:
			t.Fatalf("%q: status %d", path, w.Code)
		}
	})
}

// TestConsoleFragmentTagsNode runs the console's fragment-tag reader
// (web/console/ebml.js, under node) on a real GetMediaForFragmentList
// response of the KVS C producer capture with metadata tags: it finds the
// producer's tags, and no prefix or damaged copy makes it throw.
func TestConsoleFragmentTagsNode(t *testing.T) {
	node := requireTool(t, "node")
	ts := newTestServer(t, nil, fragments.Config{})
	nums := gmIngest(t, ts, "tagged", filepath.Join(testRepo, "testdata/producer/producer-c-video-absolute-tags.mkv"), 24)
	resp, body := gmPost(t, ts.URL, "/getMediaForFragmentList", map[string]any{"StreamName": "tagged", "Fragments": []string{nums[1]}})
	if resp.StatusCode != 200 {
		t.Fatalf("getMediaForFragmentList: %d %s", resp.StatusCode, body)
	}
	file := filepath.Join(t.TempDir(), "fragment.mkv")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, filepath.Join(playersDir(t), "ebml-check.mjs"), file).CombinedOutput()
	if err != nil {
		t.Fatalf("ebml-check.mjs: %v\n%s", err, out)
	}
	var r struct {
		Tags []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"tags"`
		Done        bool     `json:"done"`
		Error       string   `json:"error"`
		Truncations int      `json:"truncations"`
		Mutations   int      `json:"mutations"`
		Threw       []string `json:"threw"`
		DoneEarly   int      `json:"doneEarly"`
	}
	if err := json.Unmarshal([]byte(lastJSONLine(string(out))), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%d tags, %d prefixes, %d damaged copies parsed", len(r.Tags), r.Truncations, r.Mutations)
	got := map[string]string{}
	for _, tag := range r.Tags {
		got[tag.Name] = tag.Value
	}
	if !r.Done || r.Error != "" || got["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] != nums[1] || !strings.HasPrefix(got["TEST_KEY_1"], "TEST_VALUE_") {
		t.Errorf("tags %v (done %v, error %q), want fragment %s and the producer's TEST_KEY_n", got, r.Done, r.Error, nums[1])
	}
	if len(r.Threw) > 0 || r.DoneEarly > 0 || r.Truncations < 100 || r.Mutations < 1000 {
		t.Errorf("threw %v; %d prefixes claimed done before the Cluster", r.Threw, r.DoneEarly)
	}
}
