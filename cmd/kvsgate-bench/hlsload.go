package main

// kvsgate-bench hlsload: many LIVE HLS sessions on one stream fed in real
// time, each reloading its media playlist every second and fetching every
// new segment it sees, as players do (docs/PERFORMANCE.md).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof: the generator's own profile
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kvsgate/kvsgate/fragments/producer"
)

type hlsloadConfig struct {
	url, bin, dataDir, serverArgs  string
	serverPID                      int
	stream, clip, selector         string
	feed                           bool
	sessions, maxResults           int
	duration, warmup, reload       time.Duration
	concurrency                    int
	cpuprofile, pprofAddr, jsonOut string
	serverProfile                  string
}

func hlsloadMain(args []string) error {
	fs := flag.NewFlagSet("hlsload", flag.ExitOnError)
	var c hlsloadConfig
	fs.StringVar(&c.url, "url", "", "kvsgate endpoint to load (default: start `kvsgate serve` on a temp data dir)")
	fs.StringVar(&c.bin, "bin", "", "kvsgate binary to start (default: go build ./cmd/kvsgate)")
	fs.StringVar(&c.dataDir, "data-dir", "", "data dir of the started server (default: a temp dir, removed)")
	fs.StringVar(&c.serverArgs, "server-args", "", "extra arguments of the started `kvsgate serve`, space-separated (e.g. --pprof 127.0.0.1:6060)")
	fs.IntVar(&c.serverPID, "server-pid", 0, "pid of the server given by -url, for its CPU use")
	fs.StringVar(&c.stream, "stream", "hlsload", "stream name")
	fs.StringVar(&c.clip, "clip", "cmd/kvsgate/demo/sample.mkv", "Matroska clip fed in real time, one PutMedia connection per pass")
	fs.BoolVar(&c.feed, "feed", true, "feed the stream (false: something else does)")
	fs.StringVar(&c.selector, "selector", "SERVER_TIMESTAMP", "HLSFragmentSelector type of the sessions")
	fs.IntVar(&c.sessions, "sessions", 1000, "LIVE sessions")
	fs.IntVar(&c.maxResults, "max-results", 5, "MaxMediaPlaylistFragmentResults")
	fs.DurationVar(&c.duration, "duration", 60*time.Second, "measured window")
	fs.DurationVar(&c.warmup, "warmup", 5*time.Second, "sessions run this long before the window opens")
	fs.DurationVar(&c.reload, "reload", time.Second, "media playlist reload interval of each session")
	fs.IntVar(&c.concurrency, "create-concurrency", 16, "sessions set up at once")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write the generator's CPU profile of the window here")
	fs.StringVar(&c.pprofAddr, "pprof", "", "serve the generator's /debug/pprof on this address")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON here")
	fs.StringVar(&c.serverProfile, "server-cpuprofile", "", "write the started server's CPU profile of the window here (starts it with --pprof on a free loopback port)")
	fs.Parse(args)
	return hlsload(c)
}

// reqType is what a request fetched.
type reqType int

const (
	tPlaylist reqType = iota
	tSegment
	tInit
	nTypes
)

var typeNames = [nTypes]string{"media playlist", "media segment", "init segment"}

// sample is one timed request.
type sample struct {
	d         time.Duration
	n         int64
	err       bool
	throttled bool // 400 ClientLimitExceededException (kvsgate's limits)
}

// errThrottled is a response refused by kvsgate's limits.
var errThrottled = errors.New("400 ClientLimitExceededException")

// recorder collects a session's samples inside the window.
type recorder struct {
	samples [nTypes][]sample
	errs    []string
}

type window struct{ start, end time.Time }

func (w *window) in(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// loadSession is one viewer: its own session, connection and state.
type loadSession struct {
	client *http.Client
	master string
	media  string
	mapURI string
	last   uint64 // newest fragment number fetched
	rec    recorder
	// late counts reloads that started more than 100 ms after their tick;
	// missed, reloads whose playlist no longer listed the newest fetched segment.
	late, reloads, missed int
}

var (
	reFragNum = regexp.MustCompile(`FragmentNumber=(\d+)`)
	reMapURI  = regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`)
)

func hlsload(c hlsloadConfig) error {
	if c.pprofAddr != "" {
		ln, err := net.Listen("tcp", c.pprofAddr)
		if err != nil {
			return err
		}
		fmt.Printf("generator pprof on http://%s/debug/pprof/\n", ln.Addr())
		go http.Serve(ln, nil)
	}
	clip, err := os.ReadFile(c.clip)
	if err != nil {
		return fmt.Errorf("%v (run from the repository root, or give -clip)", err)
	}
	base := strings.TrimRight(c.url, "/")
	pid := c.serverPID
	if base == "" {
		if c.bin == "" {
			tmp, err := os.MkdirTemp("", "kvsgate-bench-bin")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			c.bin = filepath.Join(tmp, "kvsgate")
			if out, err := exec.Command("go", "build", "-o", c.bin, "./cmd/kvsgate").CombinedOutput(); err != nil {
				return fmt.Errorf("go build ./cmd/kvsgate (run from the repository root, or give -bin): %v\n%s", err, out)
			}
		}
		dir := c.dataDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "kvsgate-hlsload"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		extra := strings.Fields(c.serverArgs)
		if c.serverProfile != "" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			pprofServer = "http://" + ln.Addr().String()
			ln.Close()
			extra = append(extra, "--pprof", ln.Addr().String())
		}
		srv, err := startServer(c.bin, dir, extra...)
		if err != nil {
			return err
		}
		defer srv.stop()
		base, pid = srv.url, srv.cmd.Process.Pid
		fmt.Printf("kvsgate pid %d on %s (data dir %s)\n", pid, base, dir)
	}
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d); the generator shares them with the server\n", runtime.NumCPU(), runtime.GOMAXPROCS(0))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feedErr := make(chan error, 1)
	if c.feed {
		go func() { feedErr <- feed(ctx, base, c.stream, clip) }()
	}
	expires := max(300, int((c.warmup+c.duration+10*time.Minute)/time.Second))
	var sessionThrottled atomic.Int64
	newSession := func(client *http.Client) (string, error) {
		body := map[string]any{"StreamName": c.stream, "PlaybackMode": "LIVE", "ContainerFormat": "FRAGMENTED_MP4",
			"MaxMediaPlaylistFragmentResults": c.maxResults, "Expires": expires,
			"HLSFragmentSelector": map[string]any{"FragmentSelectorType": c.selector}}
		b, _ := json.Marshal(body)
		for {
			resp, err := client.Post(base+"/getHLSStreamingSessionURL", "application/json", bytes.NewReader(b))
			if err != nil {
				return "", err
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 400 && resp.Header.Get("x-amzn-ErrorType") == "ClientLimitExceededException" {
				// The stream's 25 session URLs a second (kvsgate's default
				// limits): try again shortly, as a polite client would.
				sessionThrottled.Add(1)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if resp.StatusCode != 200 {
				return "", fmt.Errorf("getHLSStreamingSessionURL: %s: %s", resp.Status, out)
			}
			var o struct{ HLSStreamingSessionURL string }
			return o.HLSStreamingSessionURL, json.Unmarshal(out, &o)
		}
	}
	// Wait for the stream to have a full window.
	fmt.Printf("waiting for %d fragments of %q ...\n", c.maxResults, c.stream)
	probe := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		select {
		case err := <-feedErr:
			return fmt.Errorf("feeding the stream: %v", err)
		default:
		}
		m, err := newSession(probe)
		if err == nil {
			_, pl, err2 := get(probe, mediaURL(m, nil))
			if err2 == nil && bytes.Count(pl, []byte("#EXTINF")) >= c.maxResults {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no full LIVE window in 60 s: %v", err)
		}
	}

	// Set up the sessions (not measured): session URL, master, first media
	// playlist, init segment; what the first playlist lists counts as seen.
	sessions := make([]*loadSession, c.sessions)
	setup := time.Now()
	var setupErr atomic.Value
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < c.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				s := &loadSession{client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
					MaxIdleConnsPerHost: 4, DisableCompression: true, IdleConnTimeout: 5 * time.Minute}}}
				if err := s.setUp(newSession); err != nil {
					setupErr.Store(err)
					continue
				}
				sessions[i] = s
			}
		}()
	}
	for i := range sessions {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, ok := setupErr.Load().(error); ok {
		return fmt.Errorf("setting up sessions: %v", err)
	}
	fmt.Printf("%d sessions set up in %s (%d session URL requests throttled and retried)\n", c.sessions, time.Since(setup).Round(time.Millisecond), sessionThrottled.Load())

	// Run them: session i reloads at phase i/N of the interval.
	start := time.Now().Add(100 * time.Millisecond)
	win := &window{start: start.Add(c.warmup), end: start.Add(c.warmup + c.duration)}
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(start.Add(time.Duration(i)*c.reload/time.Duration(len(sessions))), c.reload, win)
		}()
	}
	// CPU of both processes over the window.
	time.Sleep(time.Until(win.start))
	var prof *os.File
	if c.cpuprofile != "" {
		if prof, err = os.Create(c.cpuprofile); err != nil {
			return err
		}
		pprof.StartCPUProfile(prof)
	}
	serverProf := make(chan error, 1)
	if c.serverProfile != "" {
		go func() { serverProf <- fetchProfile(pprofServer, c.duration, c.serverProfile) }()
	} else {
		serverProf <- nil
	}
	cpu0, srv0, m0 := selfCPU(), procCPU(pid), machineCPU()
	fmt.Printf("window open: %s for %s\n", win.start.Format("15:04:05"), c.duration)
	time.Sleep(time.Until(win.end))
	cpu1, srv1, m1 := selfCPU(), procCPU(pid), machineCPU()
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	rss := procRSS(pid)
	wg.Wait()
	if err := <-serverProf; err != nil {
		fmt.Println("server CPU profile:", err)
	}
	cancel()

	// Merge and report.
	var all [nTypes][]sample
	var late, reloads, missed int
	errs := map[string]int{}
	for _, s := range sessions {
		for t := range all {
			all[t] = append(all[t], s.rec.samples[t]...)
		}
		late += s.late
		reloads += s.reloads
		missed += s.missed
		for _, e := range s.rec.errs {
			errs[e]++
		}
	}
	wall := c.duration.Seconds()
	res := hlsloadResult{Sessions: c.sessions, Selector: c.selector, MaxResults: c.maxResults, WindowS: wall, ReloadS: c.reload.Seconds(),
		CPUs: runtime.NumCPU(), GeneratorCPU: (cpu1 - cpu0).Seconds() / wall, ReloadsLate: late, Reloads: reloads, SegmentsSkipped: missed}
	if pid > 0 && srv0 >= 0 && srv1 >= 0 {
		res.ServerCPU = (srv1 - srv0).Seconds() / wall
		res.ServerRSS = rss
	}
	if m0 >= 0 && m1 >= 0 {
		res.MachineCPU = (m1 - m0).Seconds() / wall
		res.OtherCPU = res.MachineCPU - res.ServerCPU - res.GeneratorCPU
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAvg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	fmt.Printf("\n%d LIVE sessions (%s, MaxMediaPlaylistFragmentResults %d), each reloading its media playlist every %s; window %s:\n",
		c.sessions, c.selector, c.maxResults, c.reload, c.duration)
	fmt.Printf("  %-15s %8s %8s %9s %9s %9s %9s %9s %7s %9s %10s\n", "request", "count", "per s", "p50", "p90", "p99", "p99.9", "max", "errors", "throttled", "MB/s")
	for t, ss := range all {
		st := summarize(ss, wall)
		st.Type = typeNames[t]
		res.Requests = append(res.Requests, st)
		fmt.Printf("  %-15s %8d %8.0f %9s %9s %9s %9s %9s %7d %9d %10.1f\n", st.Type, st.Count, st.PerSecond,
			ms(st.P50Ms), ms(st.P90Ms), ms(st.P99Ms), ms(st.P999Ms), ms(st.MaxMs), st.Errors, st.Throttled, st.MBps)
	}
	fmt.Printf("  reloads that started >100 ms after their tick (generator behind): %d of %d; reloads that had lost track (newest fetched segment no longer listed): %d\n", late, reloads, missed)
	fmt.Printf("  CPU over the window (1.00 = one core of %d): kvsgate %.2f, generator %.2f, everything else on the machine %.2f (all busy: %.2f; load average at the end %s)\n",
		runtime.NumCPU(), res.ServerCPU, res.GeneratorCPU, res.OtherCPU, res.MachineCPU, res.LoadAvg)
	if res.ServerRSS != "" {
		fmt.Printf("  kvsgate memory at the end of the window: %s\n", rss)
	}
	for e, n := range errs {
		fmt.Printf("  error x%d: %s\n", n, e)
		res.Errors = append(res.Errors, fmt.Sprintf("%dx %s", n, e))
	}
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type hlsloadResult struct {
	Sessions        int        `json:"sessions"`
	Selector        string     `json:"selector"`
	MaxResults      int        `json:"maxResults"`
	WindowS         float64    `json:"windowS"`
	ReloadS         float64    `json:"reloadS"`
	CPUs            int        `json:"cpus"`
	ServerCPU       float64    `json:"serverCPU"`
	GeneratorCPU    float64    `json:"generatorCPU"`
	MachineCPU      float64    `json:"machineCPU"`
	OtherCPU        float64    `json:"otherCPU"`
	LoadAvg         string     `json:"loadAvg"`
	ServerRSS       string     `json:"serverRSS,omitempty"`
	Requests        []reqStats `json:"requests"`
	Reloads         int        `json:"reloads"`
	ReloadsLate     int        `json:"reloadsLate"`
	SegmentsSkipped int        `json:"segmentsSkipped"`
	Errors          []string   `json:"errors,omitempty"`
}

type reqStats struct {
	Type                               string
	Count, Errors, Throttled           int
	PerSecond, MBps                    float64
	P50Ms, P90Ms, P99Ms, P999Ms, MaxMs float64
}

func summarize(ss []sample, wall float64) reqStats {
	st := reqStats{Count: len(ss)}
	if len(ss) == 0 {
		return st
	}
	ds := make([]time.Duration, len(ss))
	var bytes int64
	for i, s := range ss {
		ds[i] = s.d
		bytes += s.n
		if s.err {
			st.Errors++
		}
		if s.throttled {
			st.Throttled++
		}
	}
	slices.Sort(ds)
	q := func(p float64) float64 { return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))]) / 1e6 }
	st.P50Ms, st.P90Ms, st.P99Ms, st.P999Ms, st.MaxMs = q(0.5), q(0.9), q(0.99), q(0.999), float64(ds[len(ds)-1])/1e6
	st.PerSecond = float64(len(ss)) / wall
	st.MBps = float64(bytes) / 1e6 / wall
	return st
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "ms" }

// setUp creates the session and loads what a player loads first.
func (s *loadSession) setUp(newSession func(*http.Client) (string, error)) error {
	var err error
	if s.master, err = newSession(s.client); err != nil {
		return err
	}
	_, m, err := get(s.client, s.master)
	if err != nil {
		return err
	}
	s.media = mediaURL(s.master, m)
	_, pl, err := get(s.client, s.media)
	if err != nil {
		return err
	}
	if mm := reMapURI.FindSubmatch(pl); mm != nil {
		s.mapURI = string(mm[1])
		if _, _, err := get(s.client, resolve(s.media, s.mapURI)); err != nil {
			return err
		}
	}
	for _, u := range segmentURIs(pl) {
		s.last = max(s.last, fragNum(u))
	}
	return nil
}

// run reloads the media playlist at first, first+reload, ... until the
// window ends, fetching each segment newer than the newest fetched, in order.
func (s *loadSession) run(first time.Time, reload time.Duration, w *window) {
	for tick := first; tick.Before(w.end); tick = tick.Add(reload) {
		time.Sleep(time.Until(tick))
		t0 := time.Now()
		if !t0.Before(w.end) {
			return
		}
		rec := w.in(t0)
		if rec {
			s.reloads++
			if t0.Sub(tick) > 100*time.Millisecond {
				s.late++
			}
		}
		n, pl, err := get(s.client, s.media)
		s.record(rec, tPlaylist, t0, n, err)
		if err != nil {
			continue
		}
		if mm := reMapURI.FindSubmatch(pl); mm != nil && string(mm[1]) != s.mapURI {
			// A new init segment (the first listed one changes as the window slides).
			s.mapURI = string(mm[1])
		}
		uris := segmentURIs(pl)
		if rec && s.last != 0 && len(uris) > 0 && fragNum(uris[0]) > s.last {
			s.missed++ // the newest fetched slid out before this reload: segments may be skipped
		}
		newest := s.last
		for _, u := range uris {
			num := fragNum(u)
			if num <= s.last {
				continue
			}
			t1 := time.Now()
			n, _, err := get(s.client, resolve(s.media, u))
			s.record(rec && w.in(t1), tSegment, t1, n, err)
			newest = max(newest, num)
		}
		s.last = newest
	}
}

func (s *loadSession) record(rec bool, t reqType, t0 time.Time, n int64, err error) {
	if !rec {
		return
	}
	d := time.Since(t0)
	s.rec.samples[t] = append(s.rec.samples[t], sample{d: d, n: n, err: err != nil, throttled: errors.Is(err, errThrottled)})
	if err != nil && len(s.rec.errs) < 20 {
		s.rec.errs = append(s.rec.errs, reFragNumOrToken.ReplaceAllString(err.Error(), "…"))
	}
}

var reFragNumOrToken = regexp.MustCompile(`(SessionToken|FragmentNumber)=[A-Za-z0-9_-]+`)

// get fetches u; playlists (small) are returned, other bodies are counted.
func get(client *http.Client, u string) (int64, []byte, error) {
	resp, err := client.Get(u)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body []byte
	var n int64
	if strings.Contains(u, ".m3u8") {
		body, err = io.ReadAll(resp.Body)
		n = int64(len(body))
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return n, nil, err
	}
	if resp.StatusCode == 400 && resp.Header.Get("x-amzn-ErrorType") == "ClientLimitExceededException" {
		return n, nil, fmt.Errorf("GET %s: %w", u, errThrottled)
	}
	if resp.StatusCode != 200 {
		return n, nil, fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, body)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, nil, fmt.Errorf("GET %s: %d bytes of %d", u, n, resp.ContentLength)
	}
	return n, body, nil
}

func resolve(base, ref string) string {
	b, err := url.Parse(base)
	if err != nil {
		return ref
	}
	r, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return b.ResolveReference(r).String()
}

// mediaURL is the video media playlist of a master playlist (TrackNumber=1
// when the master is not at hand).
func mediaURL(master string, m []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(m))
	next := false
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#EXT-X-STREAM-INF:") {
			next = true
		} else if next && l != "" && !strings.HasPrefix(l, "#") {
			return resolve(master, l)
		}
	}
	return strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?TrackNumber=1&", 1)
}

func segmentURIs(pl []byte) []string {
	var out []string
	for _, l := range strings.Split(string(pl), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func fragNum(u string) uint64 {
	m := reFragNum.FindStringSubmatch(u)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// feed streams clip into the stream in real time until ctx ends, one
// PutMedia connection per pass (producer.Options.Loop stops after the first
// pass of the demo clip: FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS, see
// docs/PERFORMANCE.md).
func feed(ctx context.Context, endpoint, stream string, clip []byte) error {
	for ctx.Err() == nil {
		_, err := producer.Put(ctx, bytes.NewReader(clip), producer.Options{Endpoint: endpoint, Stream: stream, Create: true, Realtime: true, RetentionHours: 1})
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// pprofServer is the started server's --pprof base URL.
var pprofServer string

// fetchProfile saves the server's CPU profile of the next d.
func fetchProfile(base string, d time.Duration, path string) error {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// machineCPU is the busy time of all CPUs (-1 if unknown), from /proc/stat.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user+system CPU time (-1 if unknown), from
// /proc/PID/stat in clock ticks of 1/100 s.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return -1
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func procRSS(pid int) string {
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, ", ")
}
