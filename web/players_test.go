package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Real players in headless Chromium: testdata/players/play.mjs (see its
// README) drives hls.js, Shaka Player, dash.js or the browser's own
// <video src> and reports whether playback advanced.

// chromiumPath is Debian's chromium, the browser play.mjs launches.
const chromiumPath = "/usr/bin/chromium"

// playResult is the JSON line play.mjs prints.
type playResult struct {
	Player      string           `json:"player"`
	URL         string           `json:"url"`
	OK          bool             `json:"ok"`
	CurrentTime float64          `json:"currentTime"`
	Advanced    float64          `json:"advanced"` // seconds of real playback seen (seeks excluded)
	Errors      []map[string]any `json:"errors"`   // fatal player or media element errors
	Events      []map[string]any `json:"events"`
	VideoWidth  int              `json:"videoWidth"`
	VideoHeight int              `json:"videoHeight"`

	Reason    string            `json:"reason"`   // why watching stopped
	TimedOut  bool              `json:"timedOut"` // the timeout ran out first
	Duration  any               `json:"duration"` // seconds, "Infinity" or nil (hls.js: finite on live too)
	Live      *bool             `json:"live"`     // the player's verdict; nil: not known yet
	Ended     bool              `json:"ended"`
	StartupMs *float64          `json:"startupMs"` // page script start to first "playing"
	ElapsedMs int               `json:"elapsedMs"`
	Browser   string            `json:"browser"`
	Versions  map[string]string `json:"versions"` // npm packages and the player's own version
	// Native is the <video> element's canPlayType answers (native player only).
	Native *struct {
		HLS     string `json:"hls"`
		MPEGURL string `json:"mpegurl"`
		DASH    string `json:"dash"`
		MSE     bool   `json:"mse"`
	} `json:"native"`
	HarnessError string `json:"harnessError"`

	Raw string `json:"-"` // the line as printed
}

// String is a one-line summary for test logs.
func (r playResult) String() string {
	s := fmt.Sprintf("%s ok=%v advanced=%.2fs currentTime=%.2f video=%dx%d live=%s startup=%s reason=%q",
		r.Player, r.OK, r.Advanced, r.CurrentTime, r.VideoWidth, r.VideoHeight, fmtLive(r.Live), fmtMs(r.StartupMs), r.Reason)
	if len(r.Errors) > 0 {
		b, _ := json.Marshal(r.Errors)
		s += " errors=" + string(b)
	}
	return s
}

func fmtLive(p *bool) string {
	if p == nil {
		return "unknown"
	}
	return strconv.FormatBool(*p)
}

func fmtMs(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 0, 64) + "ms"
}

// playOptions are playInBrowser's knobs.
type playOptions struct {
	Player  string        // hlsjs, shaka, dashjs, native
	URL     string        // playlist or manifest
	Seconds float64       // playback advance that counts as playing
	Timeout time.Duration // 0: play.mjs's default, max(30 s, 3*Seconds+20 s)
}

// playersDir is testdata/players, absolute.
func playersDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(testRepo, "testdata", "players"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// requirePlayers returns node and play.mjs, skipping (or failing, with
// KVSGATE_REQUIRE_TOOLS=1) when node, Chromium or node_modules are missing.
func requirePlayers(t testing.TB) (node, script string) {
	t.Helper()
	node = requireTool(t, "node")
	requireTool(t, chromiumPath)
	dir := playersDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		msg := "testdata/players/node_modules missing: npm ci --prefix testdata/players (make test does)"
		if os.Getenv("KVSGATE_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node, filepath.Join(dir, "play.mjs")
}

// playInBrowser plays url with player in headless Chromium until playback
// has advanced seconds, a fatal error, the end or the default timeout, and
// returns what happened. A player that does not play is a result (OK false);
// a harness that cannot run is a test failure.
func playInBrowser(t testing.TB, player, url string, seconds float64) playResult {
	t.Helper()
	return playInBrowserWith(t, playOptions{Player: player, URL: url, Seconds: seconds})
}

// playInBrowserWith is playInBrowser with a timeout.
func playInBrowserWith(t testing.TB, o playOptions) playResult {
	t.Helper()
	node, script := requirePlayers(t)
	args := []string{script, "--player", o.Player, "--url", o.URL, "--seconds", strconv.FormatFloat(o.Seconds, 'f', -1, 64)}
	timeout := max(30*time.Second, time.Duration(o.Seconds*3+20)*time.Second)
	if o.Timeout > 0 {
		timeout = o.Timeout
		args = append(args, "--timeout", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	}
	// play.mjs stops itself; this bounds a hung node or browser launch.
	stdout, stderr, ps, err := runPlayersScript(playersDir(t), node, timeout+90*time.Second, args...)
	if ps == nil {
		t.Fatalf("play.mjs: %v", err)
	}
	code := ps.ExitCode()

	line := lastJSONLine(stdout)
	var r playResult
	if line == "" || json.Unmarshal([]byte(line), &r) != nil {
		t.Fatalf("play.mjs %s %s: no result (exit %d, %v)\nstdout: %s\nstderr: %s", o.Player, o.URL, code, err, stdout, stderr)
	}
	r.Raw = line
	if r.HarnessError != "" || (code != 0 && code != 1) {
		t.Fatalf("play.mjs %s %s: harness failed (exit %d): %s\nstderr: %s", o.Player, o.URL, code, r.HarnessError, stderr)
	}
	return r
}

// runPlayersScript runs node with args (a script of dir, testdata/players,
// first) in dir, with the test Chromium, for at most timeout. At
// the timeout it gets SIGTERM, which lets the script close Chromium and
// remove its profile. ps is nil if it did not run.
func runPlayersScript(dir, node string, timeout time.Duration, args ...string) (stdout, stderr string, ps *os.ProcessState, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromiumPath)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), cmd.ProcessState, err
}

func lastJSONLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "{") {
			return l
		}
	}
	return ""
}

// corsFiles serves dir the way a media origin must for players on another
// origin: GET and HEAD with Access-Control-Allow-Origin: *. Other methods
// (a CORS preflight would be OPTIONS) are refused and counted.
type corsFiles struct {
	files http.Handler
	mu    sync.Mutex
	seen  map[string]int // method -> requests
}

func newCORSFiles(dir string) *corsFiles {
	return &corsFiles{files: http.FileServer(http.Dir(dir)), seen: map[string]int{}}
}

func (c *corsFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.seen[r.Method]++
	c.mu.Unlock()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch filepath.Ext(r.URL.Path) {
	case ".m3u8":
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	case ".mpd":
		w.Header().Set("Content-Type", "application/dash+xml")
	case ".mp4", ".m4s":
		w.Header().Set("Content-Type", "video/mp4")
	case ".ts":
		w.Header().Set("Content-Type", "video/mp2t")
	}
	c.files.ServeHTTP(w, r)
}

func (c *corsFiles) methods() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		m[k] = v
	}
	return m
}

// makeStaticVODs writes ~8 s of testsrc2 (H.264 640x360, 2 s GOPs) and a
// sine (AAC) as fMP4 HLS (fmp4/index.m3u8), MPEG-TS HLS (ts/index.m3u8) and
// DASH (dash/manifest.mpd) under dir: one encode, three remuxes.
func makeStaticVODs(t *testing.T, dir string) {
	t.Helper()
	ffmpeg := requireTool(t, "ffmpeg")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	for _, d := range []string{"fmp4", "ts", "dash"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=8",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=8",
		"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-pix_fmt", "yuv420p",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "96k", "src.mp4")
	run("-i", "src.mp4", "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
		"-hls_segment_type", "fmp4", "fmp4/index.m3u8")
	run("-i", "src.mp4", "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
		"ts/index.m3u8")
	run("-i", "src.mp4", "-c", "copy", "-f", "dash", "-seg_duration", "2", "dash/manifest.mpd")
}

// TestPlayersOnStaticHLSAndDASH proves the player harness end to end on
// ffmpeg-made VODs from a plain file server (kvsgate not involved).
func TestPlayersOnStaticHLSAndDASH(t *testing.T) {
	requirePlayers(t)
	dir := t.TempDir()
	makeStaticVODs(t, dir)
	files := newCORSFiles(dir)
	srv := httptest.NewServer(files)
	t.Cleanup(srv.Close)

	const seconds = 3
	plays := []struct{ player, path string }{
		{"hlsjs", "fmp4/index.m3u8"},
		{"hlsjs", "ts/index.m3u8"},
		{"shaka", "fmp4/index.m3u8"},
		{"shaka", "ts/index.m3u8"},
		{"dashjs", "dash/manifest.mpd"},
		{"shaka", "dash/manifest.mpd"},
	}
	for _, p := range plays {
		t.Run(p.player+"/"+filepath.Dir(p.path), func(t *testing.T) {
			r := playInBrowser(t, p.player, srv.URL+"/"+p.path, seconds)
			t.Logf("%s (%s %s, chromium %s)", r, p.player, r.Versions["player"], r.Browser)
			if !r.OK || r.Advanced < seconds || len(r.Errors) > 0 || r.VideoWidth <= 0 {
				t.Errorf("did not play: %s\n%s", r, r.Raw)
			}
			if r.Live == nil || *r.Live {
				t.Errorf("live = %v, want false (VOD)", fmtLive(r.Live))
			}
		})
	}

	// The browser's own HLS: Chromium says by canPlayType whether it has
	// one; it must then play, and otherwise the harness must say it did not.
	for _, path := range []string{"fmp4/index.m3u8", "ts/index.m3u8"} {
		t.Run("native/"+filepath.Dir(path), func(t *testing.T) {
			r := playInBrowser(t, "native", srv.URL+"/"+path, seconds)
			if r.Native == nil {
				t.Fatalf("no canPlayType report: %s", r.Raw)
			}
			t.Logf("%s (canPlayType hls=%q mpegurl=%q, chromium %s)", r, r.Native.HLS, r.Native.MPEGURL, r.Browser)
			if r.Native.HLS != "" {
				if !r.OK || r.Advanced < seconds || len(r.Errors) > 0 || r.VideoWidth <= 0 {
					t.Errorf("canPlayType says %q but native HLS did not play: %s\n%s", r.Native.HLS, r, r.Raw)
				}
			} else if r.OK || len(r.Errors) == 0 {
				t.Errorf("no native HLS, yet no media error reported: %s\n%s", r, r.Raw)
			}
		})
	}

	// A failure is reported, quickly, not waited out.
	t.Run("hlsjs/missing", func(t *testing.T) {
		r := playInBrowser(t, "hlsjs", srv.URL+"/missing.m3u8", seconds)
		t.Logf("%s", r)
		if r.OK || len(r.Errors) == 0 || r.TimedOut {
			t.Errorf("a 404 playlist should be a fatal error: %s\n%s", r, r.Raw)
		}
	})

	m := files.methods()
	t.Logf("media server saw %v", m)
	if m[http.MethodOptions] > 0 {
		t.Errorf("a player sent a CORS preflight (OPTIONS): media servers need to answer it")
	}
}

// startLiveStreams runs ffmpeg in real time (-re, at most two minutes) writing a
// live fMP4 HLS playlist (live/index.m3u8, 1 s segments, no ENDLIST) and a
// dynamic DASH MPD (livedash/manifest.mpd) under dir, and waits until both
// have a few segments. ffmpeg is stopped when the test ends.
func startLiveStreams(t *testing.T, dir string) {
	t.Helper()
	ffmpeg := requireTool(t, "ffmpeg")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	src := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "120", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "main",
		"-pix_fmt", "yuv420p", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "96k"}
	outs := map[string][]string{
		"live/index.m3u8": {"-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_segment_type", "fmp4"},
		"livedash/manifest.mpd": {"-f", "dash", "-seg_duration", "1", "-window_size", "6", "-extra_window_size", "6",
			"-remove_at_exit", "0"},
	}
	for out, args := range outs {
		if err := os.Mkdir(filepath.Join(dir, filepath.Dir(out)), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, ffmpeg, append(append(append([]string{}, src...), args...), out)...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Wait(); err != nil && ctx.Err() == nil {
				t.Errorf("ffmpeg %s: %v\n%s", out, err, stderr.String())
			}
		}()
	}
	// Three segments in each: enough for every player's live edge.
	deadline := time.Now().Add(30 * time.Second)
	for _, want := range []string{"live/index3.m4s", "livedash/chunk-stream0-00003.m4s"} {
		for {
			if _, err := os.Stat(filepath.Join(dir, want)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ffmpeg wrote no %s in 30 s", want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// TestPlayersOnLiveHLSAndDASH proves the harness on live streams: players
// start at the live edge (a seek, which must not count as playback) and
// then play on as segments appear.
func TestPlayersOnLiveHLSAndDASH(t *testing.T) {
	requirePlayers(t)
	dir := t.TempDir()
	startLiveStreams(t, dir)
	files := newCORSFiles(dir)
	srv := httptest.NewServer(files)
	t.Cleanup(srv.Close)

	const seconds = 3
	plays := []struct{ player, path string }{
		{"hlsjs", "live/index.m3u8"},
		{"shaka", "live/index.m3u8"},
		{"native", "live/index.m3u8"},
		{"dashjs", "livedash/manifest.mpd"},
		{"shaka", "livedash/manifest.mpd"},
	}
	for _, p := range plays {
		t.Run(p.player+"/"+filepath.Dir(p.path), func(t *testing.T) {
			r := playInBrowser(t, p.player, srv.URL+"/"+p.path, seconds)
			t.Logf("%s duration=%v (%s %s)", r, r.Duration, p.player, r.Versions["player"])
			if p.player == "native" && (r.Native == nil || r.Native.HLS == "") {
				if r.OK || len(r.Errors) == 0 {
					t.Errorf("no native HLS, yet no media error reported: %s\n%s", r, r.Raw)
				}
				return
			}
			if !r.OK || r.Advanced < seconds || len(r.Errors) > 0 || r.VideoWidth <= 0 {
				t.Errorf("did not play: %s\n%s", r, r.Raw)
			}
			if r.Live == nil || !*r.Live {
				t.Errorf("live = %v, want true", fmtLive(r.Live))
			}
		})
	}
}
