// Command kvsgate-bench measures kvsgate (docs/PERFORMANCE.md).
//
//	kvsgate-bench listfragments [-data-dir DIR] [-fragments 1000000] [-pages 1000] [-bin PATH]
//	kvsgate-bench hlsload [-url URL | -bin PATH] [-sessions 1000] [-duration 60s] [...]
//
// listfragments measures ListFragments on a stream of many fragments and the
// memory of an idle kvsgate holding them.
// If DIR has no index yet, it is filled first: one stream "bench" with the
// given number of fragments, committed through the index (sqlindex.Index.Commit)
// in batches, with realistic rows and sample tables but no payload files.
// Then it times Index.Fragments in process, starts the real kvsgate binary
// on DIR (built from ./cmd/kvsgate unless -bin is given), times POST
// /listFragments over loopback, and reads the server's VmRSS.
//
// hlsload starts the real kvsgate binary (or loads the one at -url), feeds
// one stream in real time with the demo clip, and runs many LIVE HLS
// sessions on it, each with its own session URL and connection, reloading
// its media playlist every second and fetching every new segment; it
// reports count, p50/p90/p99/max and errors per request type and the CPU
// use of both processes (hlsload.go; -h lists its flags).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/fragments/sqlindex"
)

const (
	streamName = "bench"
	spacing    = 2 * time.Second // one fragment every 2 s of server time
	pageSize   = 1000
)

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "hlsload" {
		if err := hlsloadMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "kvsgate-bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "listfragments" {
		fmt.Fprintln(os.Stderr, "usage: kvsgate-bench listfragments [-data-dir DIR] [-fragments N] [-pages N] [-bin PATH]")
		fmt.Fprintln(os.Stderr, "       kvsgate-bench hlsload [-url URL | -bin PATH] [-sessions N] [-duration D] (-h for all flags)")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("listfragments", flag.ExitOnError)
	dir := fs.String("data-dir", filepath.Join(os.TempDir(), "kvsgate-bench-1m"), "data dir (filled if it has no index)")
	n := fs.Int("fragments", 1000000, "fragments to generate")
	pages := fs.Int("pages", 1000, "random pages to time per selector")
	bin := fs.String("bin", "", "kvsgate binary (default: go build ./cmd/kvsgate)")
	seed := fs.Uint64("seed", 1, "random seed of the pages")
	fs.Parse(os.Args[2:])
	if err := run(*dir, *n, *pages, *bin, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "kvsgate-bench:", err)
		os.Exit(1)
	}
}

func run(dir string, n, pages int, bin string, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dbPath := filepath.Join(dir, "index.db")
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		if err := generate(dbPath, n); err != nil {
			return err
		}
	}
	idx, err := sqlindex.Open(dbPath)
	if err != nil {
		return err
	}
	st, err := idx.Stream(streamName, "")
	if err != nil {
		idx.Close()
		return err
	}
	span, err := extent(idx, st.ID)
	if err != nil {
		idx.Close()
		return err
	}
	fmt.Printf("stream %q: %d fragments, server time %s .. %s\n", streamName, span.count,
		time.Unix(0, span.first).UTC().Format(time.RFC3339), time.Unix(0, span.last).UTC().Format(time.RFC3339))
	if fi, err := os.Stat(dbPath); err == nil {
		fmt.Printf("index.db: %.0f MB\n", float64(fi.Size())/1e6)
	}

	rng := rand.New(rand.NewPCG(seed, 7))
	fmt.Printf("\nIndex.Fragments alone, %d-fragment pages, %d random pages each:\n", pageSize, pages)
	for _, by := range []fragments.Selector{fragments.ByServer, fragments.ByProducer} {
		var lat []time.Duration
		for i := 0; i < pages; i++ {
			q := randomQuery(rng, span, st.ID, by)
			t0 := time.Now()
			got, err := idx.Fragments(q)
			lat = append(lat, time.Since(t0))
			if err != nil {
				idx.Close()
				return err
			}
			if len(got) != q.Limit {
				idx.Close()
				return fmt.Errorf("page of %d fragments, want %d (%+v)", len(got), q.Limit, q)
			}
		}
		fmt.Printf("  %-18s %s\n", selectorName(by), summary(lat))
	}
	if err := idx.Close(); err != nil {
		return err
	}

	if bin == "" {
		tmp, err := os.MkdirTemp("", "kvsgate-bench-bin")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin = filepath.Join(tmp, "kvsgate")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/kvsgate").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/kvsgate (run from the repository root, or give -bin): %v\n%s", err, out)
		}
	}
	srv, err := startServer(bin, dir)
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Printf("\nkvsgate pid %d on %s\n", srv.cmd.Process.Pid, srv.url)
	fmt.Printf("  RSS after start:              %s\n", srv.rss())

	client := &http.Client{Timeout: 30 * time.Second}
	call := func(body map[string]any) (time.Duration, int, error) {
		b, _ := json.Marshal(body)
		t0 := time.Now()
		resp, err := client.Post(srv.url+"/listFragments", "application/json", bytes.NewReader(b))
		if err != nil {
			return 0, 0, err
		}
		var out struct {
			Fragments []json.RawMessage
			NextToken *string
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil || resp.StatusCode != 200 {
			return d, 0, fmt.Errorf("listFragments: %s: %v", resp.Status, err)
		}
		return d, len(out.Fragments), nil
	}
	for i := 0; i < 5; i++ {
		if _, _, err := call(apiQuery(randomQuery(rng, span, st.ID, fragments.ByServer))); err != nil {
			return err
		}
	}
	fmt.Printf("  RSS after 5 ListFragments:    %s\n", srv.rss())

	fmt.Printf("\nPOST /listFragments over loopback (request to decoded response), MaxResults %d, %d random pages each:\n", pageSize, pages)
	for _, by := range []fragments.Selector{fragments.ByServer, fragments.ByProducer} {
		var lat []time.Duration
		for i := 0; i < pages; i++ {
			d, got, err := call(apiQuery(randomQuery(rng, span, st.ID, by)))
			if err != nil {
				return err
			}
			if got != pageSize {
				return fmt.Errorf("page of %d fragments, want %d", got, pageSize)
			}
			lat = append(lat, d)
		}
		fmt.Printf("  %-18s %s\n", selectorName(by), summary(lat))
	}
	// Paging deep into a range with NextToken.
	// The generated fragment numbers are consecutive: check that pages are.
	var lat []time.Duration
	body := map[string]any{"StreamName": streamName, "MaxResults": pageSize}
	var prev uint64
	for i := 0; i < min(pages, span.count/pageSize-1); i++ {
		b, _ := json.Marshal(body)
		t0 := time.Now()
		resp, err := client.Post(srv.url+"/listFragments", "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		var out struct {
			Fragments []struct{ FragmentNumber json.Number }
			NextToken *string
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		if err != nil || out.NextToken == nil || len(out.Fragments) != pageSize {
			return fmt.Errorf("NextToken paging stopped at page %d: %v", i, err)
		}
		for _, f := range out.Fragments {
			n, err := strconv.ParseUint(string(f.FragmentNumber), 10, 64)
			if err != nil || (prev != 0 && n != prev+1) {
				return fmt.Errorf("NextToken page %d: fragment number %s after %d", i, f.FragmentNumber, prev)
			}
			prev = n
		}
		body["NextToken"] = *out.NextToken
	}
	fmt.Printf("  %-18s %s\n", "no selector, NextToken pages from the start", summary(lat))
	fmt.Printf("\n  RSS after all calls:          %s\n", srv.rss())
	time.Sleep(2 * time.Second)
	fmt.Printf("  RSS idle 2 s later:           %s\n", srv.rss())
	return nil
}

func selectorName(by fragments.Selector) string {
	if by == fragments.ByProducer {
		return "PRODUCER_TIMESTAMP"
	}
	return "SERVER_TIMESTAMP"
}

type extentInfo struct {
	count       int
	first, last int64 // server ns
}

func extent(idx *sqlindex.Index, streamID int64) (extentInfo, error) {
	var e extentInfo
	first, err := idx.Fragments(fragments.FragmentQuery{StreamID: streamID, To: 1<<63 - 1, AfterTS: -1, Limit: 1})
	if err != nil || len(first) == 0 {
		return e, fmt.Errorf("no fragments in stream %q: %v", streamName, err)
	}
	last, err := idx.LastOrdinal(streamID)
	if err != nil {
		return e, err
	}
	e.first = first[0].ServerNS
	e.count = int(last)
	e.last = e.first + int64(last-1)*int64(spacing)
	return e, nil
}

// randomQuery is a page of pageSize fragments starting at a random time:
// the range covers 3 pages' worth of fragments (or runs to the end).
func randomQuery(rng *rand.Rand, e extentInfo, streamID int64, by fragments.Selector) fragments.FragmentQuery {
	room := int64(e.count-2*pageSize) * int64(spacing)
	from := e.first + rng.Int64N(room)
	if by == fragments.ByProducer {
		from -= int64(1500 * time.Millisecond)
	}
	return fragments.FragmentQuery{StreamID: streamID, By: by, From: from, To: from + 3*pageSize*int64(spacing), AfterTS: -1, Limit: pageSize}
}

func apiQuery(q fragments.FragmentQuery) map[string]any {
	sel := "SERVER_TIMESTAMP"
	if q.By == fragments.ByProducer {
		sel = "PRODUCER_TIMESTAMP"
	}
	sec := func(ns int64) json.Number { return json.Number(fmt.Sprintf("%d.%03d", ns/1e9, ns%1e9/1e6)) }
	return map[string]any{
		"StreamName": streamName, "MaxResults": pageSize,
		"FragmentSelector": map[string]any{
			"FragmentSelectorType": sel,
			"TimestampRange":       map[string]any{"StartTimestamp": sec(q.From), "EndTimestamp": sec(q.To)},
		},
	}
}

func summary(lat []time.Duration) string {
	slices.Sort(lat)
	p := func(q float64) string {
		return fmt.Sprintf("%.2f ms", float64(lat[min(len(lat)-1, int(q*float64(len(lat))))])/1e6)
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", p(0.5), p(0.9), p(0.99), p(1), len(lat))
}

// generate fills a new index with one stream of n fragments, spaced 2 s
// apart and ending a minute ago, in batches of 10,000 per transaction.
func generate(dbPath string, n int) error {
	start := time.Now()
	fmt.Printf("generating %d fragments in %s ...\n", n, dbPath)
	idx, err := sqlindex.Open(dbPath)
	if err != nil {
		return err
	}
	defer idx.Close()
	now := time.Now()
	st := &fragments.Stream{
		Name: streamName, ARN: "arn:aws:kinesisvideo:us-west-2:000000000000:stream/" + streamName + "/1",
		MediaType: "video/h264", Version: "1", Status: "ACTIVE", CreationTime: now.Add(-time.Duration(n+10) * spacing),
		RetentionHours: 87600, Tags: map[string]string{},
	}
	if err := idx.CreateStream(st); err != nil {
		return err
	}
	hdr := &fragments.Header{StreamID: st.ID, TimecodeScale: 1e6, Raw: []byte("header"),
		Tracks: []mkv.Track{{Number: 1, UID: 1, Type: 1, CodecID: "V_MPEG4/ISO/AVC", Width: 1280, Height: 720}}}
	// A 2 s fragment at 25 fps: 50 samples, as a real sample table.
	var m fragments.Meta
	for i := 0; i < 50; i++ {
		m.Samples = append(m.Samples, fragments.Sample{Key: i == 0, PTS: int64(i) * 40e6, DTS: int64(i) * 40e6, Dur: 40e6, Offset: int64(20 + i*5000), Size: 4990})
	}
	meta := fragments.AppendMeta(nil, &m)
	rng := rand.New(rand.NewPCG(42, 42))
	base := now.Add(-time.Minute).Add(-time.Duration(n) * spacing).UnixNano()
	number := uint64(base/1e6) << 12
	const batch = 10000
	var seg int64
	for lo := 0; lo < n; lo += batch {
		var pend []*fragments.Pending
		for i := lo; i < min(lo+batch, n); i++ {
			if i%1000 == 0 {
				if seg, err = idx.NewSegment(st.ID); err != nil {
					return err
				}
			}
			server := base + int64(i)*int64(spacing) + rng.Int64N(int64(50*time.Millisecond))
			number++
			f := &fragments.Fragment{
				StreamID: st.ID, Number: number, ServerNS: server,
				ProducerNS: server - int64(1500*time.Millisecond) + rng.Int64N(int64(100*time.Millisecond)),
				DurationNS: int64(spacing), Size: 250000 + rng.Int64N(10000), SegmentID: seg, Offset: int64(i%1000) * 260000,
			}
			f.Timecode = f.ProducerNS / 1e6
			pend = append(pend, &fragments.Pending{Fragment: f, Meta: meta, Header: hdr})
		}
		if err := idx.Commit(pend); err != nil {
			return err
		}
		if lo%(10*batch) == 0 && lo > 0 {
			fmt.Printf("  %d fragments, %s\n", lo, time.Since(start).Round(time.Second))
		}
	}
	fmt.Printf("generated in %s\n", time.Since(start).Round(time.Second))
	return nil
}

type server struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

var listenRE = regexp.MustCompile(`msg="kvsgate serving" listen=(\S+)`)

func startServer(bin, dir string, extra ...string) (*server, error) {
	s := &server{done: make(chan error, 1)}
	s.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir}, extra...)...)
	s.cmd.Env = append(os.Environ(), "KVSGATE_ACCESS_KEY_ID=", "KVSGATE_SECRET_ACCESS_KEY=")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		s.done <- s.cmd.Wait()
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		return nil, fmt.Errorf("kvsgate did not start in 60 s")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			return nil, fmt.Errorf("/healthz not 200 in 60 s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *server) rss() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, ", ")
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
	}
}
