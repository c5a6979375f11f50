package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
)

// benchArchive ingests 100 one-second fragments of 1080p-sized video (25
// frames of 40 kB: 8 Mbit/s) and returns their numbers and payload bytes.
func benchArchive(b *testing.B) (*testServer, []string, int64) {
	b.Helper()
	ts := newTestServer(b, nil, fragments.Config{})
	body := gmHeader()
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i := 0; i < 100; i++ {
		body = append(body, gmFragmentBytes(base+int64(i)*1000, 40000)...)
	}
	nums := gmIngestBytes(b, ts, "bench", body, false, 1)
	if len(nums) != 100 {
		b.Fatalf("%d fragments", len(nums))
	}
	st, _ := ts.Store.Stream("bench", "")
	var size int64
	for _, f := range gmIndexed(b, ts, st.ID) {
		size += f.Size
	}
	return ts, nums, size
}

func gmIndexed(b testing.TB, ts *testServer, streamID int64) []fragments.Fragment {
	f, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: streamID, By: fragments.ByOrdinal, Limit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkGetMediaForFragmentList fetches 100 fragments (about 100 MB) per
// op from the page cache over loopback HTTP. Baselines in the same run:
// BenchmarkPlainReadSegment (the payload file read to io.Discard) and
// BenchmarkPlainHTTPSegment (the same file served by net/http over loopback).
func BenchmarkGetMediaForFragmentList(b *testing.B) {
	ts, nums, size := benchArchive(b)
	req, _ := json.Marshal(map[string]any{"StreamName": "bench", "Fragments": nums})
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Post(ts.URL+"/getMediaForFragmentList", "application/json", bytes.NewReader(req))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n < size {
			b.Fatalf("%d bytes, want at least %d", n, size)
		}
	}
}

func benchSegmentFile(b *testing.B) (string, int64) {
	ts, _, size := benchArchive(b)
	files, _ := filepath.Glob(filepath.Join(ts.Dir, "payload", "*", "*.mkv"))
	if len(files) != 1 {
		b.Fatalf("segment files %v", files)
	}
	return files[0], size
}

func BenchmarkPlainReadSegment(b *testing.B) {
	path, size := benchSegmentFile(b)
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		io.CopyBuffer(io.Discard, f, buf)
		f.Close()
	}
}

func BenchmarkPlainHTTPSegment(b *testing.B) {
	path, size := benchSegmentFile(b)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _ := os.Open(path)
		defer f.Close()
		// Chunked, like GetMedia (no Content-Length, so no sendfile either).
		io.Copy(struct{ io.Writer }{w}, f)
	}))
	defer srv.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkGetMediaLiveTail measures the latency from a fragment's
// PERSISTED ack (at the producer) to its arrival at a GetMedia reader
// started with NOW; reported as p50-ms and p99-ms.
func BenchmarkGetMediaLiveTail(b *testing.B) {
	ts := newTestServer(b, nil, fragments.Config{})
	gmPost(b, ts.URL, "/createStream", map[string]any{"StreamName": "live", "DataRetentionInHours": 1})
	feed := gmFeed(b, ts, "live", "PERSISTED")
	defer feed.pw.Close()
	feed.pw.Write(gmHeader())
	arrivals, stop := gmTail(b, ts, map[string]any{"StreamName": "live", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	defer stop()
	base := time.Now().UnixMilli()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		feed.pw.Write(gmFragmentBytes(base+int64(i)*1000, 4000))
		i++
		acked := <-feed.persisted
		select {
		case a := <-arrivals:
			lat = append(lat, max(0, a.at.Sub(acked)))
		case <-time.After(5 * time.Second):
			b.Fatal("fragment never arrived")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
}
