package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mp4clip "github.com/kvsgate/kvsgate/clip"
	"github.com/kvsgate/kvsgate/fragments"
)

// clipBenchFragments is the benchmark clip's length: 200 one-second
// fragments of 25 frames of 40 kB (8 Mbit/s, a 1080p-sized stream): 200 MB.
const clipBenchFragments = 200

// BenchmarkClip serves a 200-fragment clip (200 MB; the byte limit is
// raised to 1 GiB for it) over loopback HTTP and discards it, against a
// plain net/http file server sending the same bytes from a file (Content-
// Length, sendfile) in the same run. Reported per op: MB/s, time to the
// first body byte (p50 and max, ms) and, for getClip, the increase of the
// process's peak RSS (VmHWM, reset through /proc/self/clear_refs after the
// ingest and a GC that returns free memory to the OS) over all its ops.
func BenchmarkClip(b *testing.B) {
	ts := newTestServer(b, nil, fragments.Config{})
	body := hlsStreamBytes(nil, false, -1) // the header: H.264 640x480 (a real SPS)
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i := range clipBenchFragments {
		body = append(body, gmFragmentBytes(base+int64(i)*1000, 40000)...)
	}
	if n := len(gmIngestBytes(b, ts, "bench", body, false, 24)); n != clipBenchFragments {
		b.Fatalf("%d fragments", n)
	}
	body = nil
	srv := httptest.NewServer(New(Config{PublicURL: ts.URL, Store: ts.Store, Logger: ts.Server.log, ClipMaxBytes: 1 << 30}).Handler())
	defer srv.Close()
	req, _ := json.Marshal(clipBody("bench", "PRODUCER_TIMESTAMP", float64(base)/1000, float64(base+clipBenchFragments*1000)/1000))
	post := func() (*http.Response, error) {
		return http.Post(srv.URL+"/getClip", "application/json", bytes.NewReader(req))
	}

	// The clip once, as the plain server's file.
	resp, err := post()
	if err != nil {
		b.Fatal(err)
	}
	clipFile := filepath.Join(b.TempDir(), "clip.mp4")
	f, _ := os.Create(clipFile)
	size, err := io.Copy(f, resp.Body)
	resp.Body.Close()
	f.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get(headerClipTruncated) != "" || size < clipBenchFragments*25*40000 {
		b.Fatalf("clip: %d, %d bytes, %v, cut %q", resp.StatusCode, size, err, resp.Header.Get(headerClipTruncated))
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, clipFile) }))
	defer plain.Close()

	// one fetches a whole response and returns its time to first byte.
	one := func(b *testing.B, get func() (*http.Response, error)) time.Duration {
		start := time.Now()
		resp, err := get()
		if err != nil {
			b.Fatal(err)
		}
		var first [1]byte
		if _, err := io.ReadFull(resp.Body, first[:]); err != nil {
			b.Fatal(err)
		}
		ttfb := time.Since(start)
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n+1 != size {
			b.Fatalf("%d bytes, %v", n+1, err)
		}
		return ttfb
	}
	fetch := func(b *testing.B, get func() (*http.Response, error)) {
		var ttfb []time.Duration
		b.SetBytes(size)
		for b.Loop() {
			ttfb = append(ttfb, one(b, get))
		}
		slices.Sort(ttfb)
		b.ReportMetric(float64(ttfb[len(ttfb)/2])/1e6, "p50-ttfb-ms")
		b.ReportMetric(float64(ttfb[len(ttfb)-1])/1e6, "max-ttfb-ms")
	}
	b.Run("getClip", func(b *testing.B) {
		runtime.GC()
		debug.FreeOSMemory()
		rss := resetPeakRSS(b)
		fetch(b, post)
		b.ReportMetric(float64(procStatusKB(b, "VmHWM")-rss)/1024, "peak-rss-MB")
	})
	b.Run("plain-http", func(b *testing.B) {
		fetch(b, func() (*http.Response, error) { return http.Get(plain.URL) })
	})
	// Both in turn, so that both see the same load on a shared machine:
	// their MB/s and the ratio.
	b.Run("interleaved", func(b *testing.B) {
		var clipT, plainT time.Duration
		for b.Loop() {
			start := time.Now()
			one(b, post)
			mid := time.Now()
			one(b, func() (*http.Response, error) { return http.Get(plain.URL) })
			clipT, plainT = clipT+mid.Sub(start), plainT+time.Since(mid)
		}
		mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
		b.ReportMetric(mbps(clipT), "getClip-MB/s")
		b.ReportMetric(mbps(plainT), "plain-MB/s")
		b.ReportMetric(plainT.Seconds()/clipT.Seconds(), "x-plain")
	})
	// The planning alone (index reads, tables, moov), which is most of the
	// time to first byte.
	b.Run("plan", func(b *testing.B) {
		st, err := ts.Store.Stream("bench", "")
		if err != nil {
			b.Fatal(err)
		}
		r := mp4clip.Request{StreamID: st.ID, Producer: true, StartNS: base * 1e6, EndNS: (base + clipBenchFragments*1000) * 1e6,
			Limits: mp4clip.Limits{MaxBytes: 1 << 30}}
		for b.Loop() {
			c, err := mp4clip.New(clipIndex{ts.Store.Index, ts.Server}, ts.Store.Payloads, r)
			if err != nil || c.Size != size {
				b.Fatalf("%v, %d bytes", err, c.Size)
			}
			c.Close()
		}
	})
	plainCopy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _ := os.Open(clipFile)
		defer f.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		io.CopyBuffer(struct{ io.Writer }{w}, f, make([]byte, 256<<10))
	}))
	defer plainCopy.Close()
	b.Run("plain-copy", func(b *testing.B) {
		fetch(b, func() (*http.Response, error) { return http.Get(plainCopy.URL) })
	})
}

// resetPeakRSS resets the process's VmHWM to its current RSS (Linux
// clear_refs 5) and returns that RSS in kB.
func resetPeakRSS(b *testing.B) int64 {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS: %v", err)
	}
	return procStatusKB(b, "VmRSS")
}

// procStatusKB reads a kB field of /proc/self/status.
func procStatusKB(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
