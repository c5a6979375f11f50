package web

import (
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/session"
	"github.com/zencoder/go-dash/v3/mpd"
)

// BenchmarkDASHManifestOnDemand5000 serves ON_DEMAND manifests of 5000
// fragments from a stream of 1,000,000 (the data dir that `go run
// ./cmd/kvsgate-bench listfragments` generates; set KVSGATE_BENCH_DATA to
// it), as BenchmarkHLSMediaPlaylistOnDemand5000 does. Reports p50-ms and
// p99-ms per manifest, and CPU time per op as the HLS benchmark does;
// "plain" lists S@t/S@d only, "fn-ts" adds kvs:fn and kvs:ts to every S.
//
// The generated stream's header has no codec private data (a manifest
// needs it for the codecs attribute): the server's header cache is handed
// one with the HLS tests' SPS/PPS for that header id. The data dir is not
// changed.
func BenchmarkDASHManifestOnDemand5000(b *testing.B) {
	ts, st, first, count := openBenchStream(b)
	h, err := ts.Store.Index.Header(first.HeaderID)
	if err != nil {
		b.Fatal(err)
	}
	h.Tracks[0].CodecPrivate = hlsVideo.CodecPrivate
	ts.Server.headers.Store(h.ID, h)
	const n, spacing = 5000, int64(2 * time.Second) // the generated fragments are 2 s apart
	for _, display := range []bool{false, true} {
		name := "plain"
		if display {
			name = "fn-ts"
		}
		b.Run(name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var lat []time.Duration
			var size int
			client := &http.Client{}
			cpu := processCPU()
			for b.Loop() {
				from := first.ServerNS + rng.Int64N((count-2*n)*spacing)
				sess := session.New(session.Session{Protocol: session.DASH, StreamID: st.ID, Mode: session.OnDemand, StartNS: from,
					EndNS: from + 24*int64(time.Hour), HasEnd: true, MaxResults: n, DisplayNumber: display, DisplayTimestamp: display}, time.Now(), time.Hour)
				u := ts.URL + "/dash/v1/getDASHManifest.mpd?SessionToken=" + ts.Server.sessions.Seal(sess)
				start := time.Now()
				resp, err := client.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(start))
				size = len(body)
				if resp.StatusCode != 200 || len(body) < n*20 {
					b.Fatalf("%d, %d bytes: %.300s", resp.StatusCode, len(body), body)
				}
				// The first manifests are read through (go-dash parsing
				// takes more CPU than serving: not on every op).
				if len(lat) <= 3 {
					m, err := mpd.ReadFromString(string(body))
					if err != nil {
						b.Fatal(err)
					}
					if got := len(mpdTimeline(m, 0)); got != n || (display && strings.Count(string(body), "kvs:fn=") != n) {
						b.Fatalf("%d segments, %d kvs:fn", got, strings.Count(string(body), "kvs:fn="))
					}
				}
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
			b.ReportMetric(float64(size)/1e6, "MB/manifest")
		})
	}
}

// BenchmarkDASHLiveManifestLatency measures the time from a fragment's
// PERSISTED ack (at the producer) to the first LIVE manifest that lists
// it, polling as fast as a client can (BenchmarkHLSLivePlaylistLatency's
// DASH twin). Fragments are recognized by their kvs:fn.
func BenchmarkDASHLiveManifestLatency(b *testing.B) {
	ts := newTestServer(b, nil, fragments.Config{})
	d := dashClient{hlsClient{b, ts}}
	gmPost(b, ts.URL, "/createStream", map[string]any{"StreamName": "live", "DataRetentionInHours": 1})
	feed := gmFeed(b, ts, "live", "PERSISTED")
	defer feed.pw.Close()
	header := len(hlsStreamBytes(nil, false, -1))
	feed.pw.Write(hlsStreamBytes(nil, false, -1))
	base := time.Now().UnixMilli()
	feed.pw.Write(hlsStreamBytes([]hlsFragment{{base, 1000}}, false, -1)[header:])
	<-feed.persisted
	status, typ, u := d.sessionURL(map[string]any{"StreamName": "live", "DisplayFragmentNumber": "ALWAYS"})
	if status != 200 {
		b.Fatalf("session: %d %s", status, typ)
	}
	newest := func() uint64 {
		_, body := d.get(u)
		var top uint64
		for _, m := range reKVSFn.FindAllSubmatch(body, -1) {
			n, _ := strconv.ParseUint(string(m[1]), 10, 64)
			top = max(top, n)
		}
		return top
	}
	seen := newest()
	var lat []time.Duration
	i := 1
	for b.Loop() {
		feed.pw.Write(hlsStreamBytes([]hlsFragment{{base + int64(i)*1000, 1000}}, false, -1)[header:])
		i++
		acked := <-feed.persisted
		for {
			if n := newest(); n > seen {
				lat = append(lat, max(0, time.Since(acked)))
				seen = n
				break
			}
			if time.Since(acked) > 5*time.Second {
				b.Fatal("the fragment never appeared in the manifest")
			}
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
}
