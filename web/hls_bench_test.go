package web

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/session"
)

// BenchmarkHLSMediaPlaylistOnDemand5000 serves ON_DEMAND media playlists of
// 5000 fragments from a stream of 1,000,000 (the data dir that
// `go run ./cmd/kvsgate-bench listfragments` generates; set
// KVSGATE_BENCH_DATA to it). Reports p50-ms and p99-ms per playlist, the
// test process's CPU time per op (server and client: it depends less than
// latency on what else runs on the machine), and the test process's RSS at
// the end.
func BenchmarkHLSMediaPlaylistOnDemand5000(b *testing.B) {
	ts, st, first, count := openBenchStream(b)
	const n, spacing = 5000, int64(2 * time.Second) // the generated fragments are 2 s apart
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	client := &http.Client{}
	cpu := processCPU()
	for b.Loop() {
		from := first.ServerNS + rng.Int64N((count-2*n)*spacing)
		sess := session.New(session.Session{Protocol: session.HLS, StreamID: st.ID, Mode: session.OnDemand, StartNS: from, EndNS: from + 24*int64(time.Hour), HasEnd: true, MaxResults: n}, time.Now(), time.Hour)
		u := ts.URL + "/hls/v1/getHLSMediaPlaylist.m3u8?TrackNumber=1&SessionToken=" + ts.Server.sessions.Seal(sess)
		start := time.Now()
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if resp.StatusCode != 200 || bytes.Count(body, []byte("#EXTINF")) != n {
			b.Fatalf("%d, %d segments", resp.StatusCode, bytes.Count(body, []byte("#EXTINF")))
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	// The whole test process (server, its in-memory index of the 1M
	// fragments, and the client).
	b.ReportMetric(float64(procStatusKB(b, "VmRSS"))/1024, "rss-MB")
}

// BenchmarkHLSLivePlaylistLatency measures the time from a fragment's
// PERSISTED ack (at the producer) to the first LIVE media playlist that
// lists it, polling as fast as a client can.
func BenchmarkHLSLivePlaylistLatency(b *testing.B) {
	ts := newTestServer(b, nil, fragments.Config{})
	h := hlsClient{b, ts}
	gmPost(b, ts.URL, "/createStream", map[string]any{"StreamName": "live", "DataRetentionInHours": 1})
	feed := gmFeed(b, ts, "live", "PERSISTED")
	defer feed.pw.Close()
	feed.pw.Write(hlsStreamBytes(nil, false, -1))
	base := time.Now().UnixMilli()
	feed.pw.Write(hlsStreamBytes([]hlsFragment{{base, 1000}}, false, -1)[len(hlsStreamBytes(nil, false, -1)):])
	<-feed.persisted
	status, typ, master := h.sessionURL(map[string]any{"StreamName": "live"})
	if status != 200 {
		b.Fatalf("session: %d %s", status, typ)
	}
	media := strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?TrackNumber=1&", 1)
	header := len(hlsStreamBytes(nil, false, -1))
	var lat []time.Duration
	i := 1
	for b.Loop() {
		feed.pw.Write(hlsStreamBytes([]hlsFragment{{base + int64(i)*1000, 1000}}, false, -1)[header:])
		i++
		acked := <-feed.persisted
		want := "#EXT-X-MEDIA-SEQUENCE:"
		for {
			_, pl := h.get(media)
			// The newest fragment is listed once the playlist's last
			// segment is the i-th: count the media sequence forward.
			seq := 0
			if k := bytes.Index(pl, []byte(want)); k >= 0 {
				end := bytes.IndexByte(pl[k:], '\n')
				seq, _ = strconv.Atoi(string(pl[k+len(want) : k+end]))
			}
			if seq+bytes.Count(pl, []byte("#EXTINF"))-1 >= i {
				lat = append(lat, max(0, time.Since(acked)))
				break
			}
			if time.Since(acked) > 5*time.Second {
				b.Fatal("the fragment never appeared in the playlist")
			}
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
}

// BenchmarkHLSSegments serves one 1 s 1080p-sized fragment (25 frames of
// 40 kB) as getMP4MediaFragment and getTSFragment over loopback HTTP.
// Baselines in the same run: the fragment's stored bytes served by a plain
// net/http file handler (plain-http), and read from the file in process
// (plain-read). Each op is one segment; MB/s are of the stored fragment.
func BenchmarkHLSSegments(b *testing.B) {
	ts := newTestServer(b, nil, fragments.Config{})
	base := time.Now().Add(-time.Minute).UnixMilli()
	// A real SPS (the session checks the codec private data), 25 frames of 40 kB.
	body := hlsStreamBytes(nil, false, -1)
	body = append(body, mkv.ClusterStart(uint64(base))...)
	for k := 0; k < 25; k++ {
		body = append(body, mkv.SimpleBlock(1, int16(k*40), k == 0, bytes.Repeat([]byte{0, 0, 0x9c, 0x3c, 0x65}, 8000))...)
	}
	body = append(body, mkv.Tags([]mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})...)
	numbers := gmIngestBytes(b, ts, "seg", body, false, 1)
	st, _ := ts.Store.Stream("seg", "")
	f, err := ts.Store.Index.FragmentByNumber(st.ID, mustUint(b, numbers[0]))
	if err != nil {
		b.Fatal(err)
	}
	h := hlsClient{b, ts}
	get := func(b *testing.B, u string) {
		b.SetBytes(f.Size)
		for b.Loop() {
			resp, err := http.Get(u)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n < f.Size*9/10 {
				b.Fatalf("%d, %d bytes", resp.StatusCode, n)
			}
		}
	}
	for _, container := range []string{"FRAGMENTED_MP4", "MPEG_TS"} {
		status, typ, master := h.sessionURL(map[string]any{"StreamName": "seg", "PlaybackMode": "ON_DEMAND", "ContainerFormat": container,
			"HLSFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
				"TimestampRange": map[string]any{"StartTimestamp": float64(f.ServerNS/1e6-1000) / 1000, "EndTimestamp": float64(f.ServerNS/1e6+1000) / 1000}}})
		if status != 200 {
			b.Fatalf("session: %d %s", status, typ)
		}
		token := master[strings.Index(master, "SessionToken="):]
		u := ts.URL + "/hls/v1/getMP4MediaFragment.mp4?TrackNumber=1&FragmentNumber=" + numbers[0] + "&" + token
		if container == "MPEG_TS" {
			u = ts.URL + "/hls/v1/getTSFragment.ts?FragmentNumber=" + numbers[0] + "&" + token
		}
		b.Run(container, func(b *testing.B) { get(b, u) })
	}
	// The same stored bytes, plainly.
	seg, err := ts.Store.OpenFragment(f)
	if err != nil {
		b.Fatal(err)
	}
	defer seg.Close()
	plain := make([]byte, f.Size)
	if _, err := seg.ReadAt(plain, 0); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "fragment.mkv")
	os.WriteFile(path, plain, 0o644)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) }))
	defer srv.Close()
	b.Run("plain-http", func(b *testing.B) { get(b, srv.URL) })
	b.Run("plain-read", func(b *testing.B) {
		b.SetBytes(f.Size)
		buf := make([]byte, f.Size)
		for b.Loop() {
			fh, _ := os.Open(path)
			io.ReadFull(fh, buf)
			fh.Close()
		}
	})
}

func mustUint(b testing.TB, s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// openBenchStream serves the 1M-fragment data dir that `go run
// ./cmd/kvsgate-bench listfragments` generates (KVSGATE_BENCH_DATA; the
// benchmark is skipped without it) and returns its stream "bench", first
// fragment and fragment count.
func openBenchStream(b *testing.B) (*testServer, *fragments.Stream, fragments.Fragment, int64) {
	b.Helper()
	dir := os.Getenv("KVSGATE_BENCH_DATA")
	if dir == "" {
		b.Skip("KVSGATE_BENCH_DATA is not set: make a data dir with `go run ./cmd/kvsgate-bench listfragments` first")
	}
	ts := startTestServer(b, dir, nil, fragments.Config{})
	// The index loads its in-memory rows of the 1M fragments in the
	// background after start (about 0.6 s from the page cache); requests
	// meanwhile are answered by SQLite. Measure the loaded server.
	if w, ok := ts.Store.Index.(interface{ WaitBriefs() }); ok {
		start := time.Now()
		w.WaitBriefs()
		b.Logf("in-memory index loaded %v after the wait began", time.Since(start))
	}
	st, err := ts.Store.Stream("bench", "")
	if err != nil {
		b.Fatal(err)
	}
	first, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, Limit: 1})
	if err != nil || len(first) != 1 {
		b.Fatalf("no fragments: %v", err)
	}
	count, err := ts.Store.Index.LastOrdinal(st.ID)
	if err != nil {
		b.Fatal(err)
	}
	return ts, st, first[0], count
}
