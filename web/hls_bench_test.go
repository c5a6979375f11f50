package web

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/session"
)

// BenchmarkHLSMediaPlaylistOnDemand5000 serves ON_DEMAND media playlists of
// 5000 fragments from a stream of 1,000,000 (the data dir that
// `go run ./cmd/kvsgate-bench listfragments` generates; set
// KVSGATE_BENCH_DATA to it). Reports p50-ms and p99-ms per playlist.
func BenchmarkHLSMediaPlaylistOnDemand5000(b *testing.B) {
	dir := os.Getenv("KVSGATE_BENCH_DATA")
	if dir == "" {
		b.Skip("KVSGATE_BENCH_DATA is not set: make a data dir with `go run ./cmd/kvsgate-bench listfragments` first")
	}
	ts := startTestServer(b, dir, nil, fragments.Config{})
	st, err := ts.Store.Stream("bench", "")
	if err != nil {
		b.Fatal(err)
	}
	first, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, Limit: 1})
	if err != nil || len(first) != 1 {
		b.Fatalf("no fragments: %v", err)
	}
	count, _ := ts.Store.Index.LastOrdinal(st.ID)
	const n, spacing = 5000, int64(2 * time.Second) // the generated fragments are 2 s apart
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	client := &http.Client{}
	for b.Loop() {
		from := first[0].ServerNS + rng.Int64N((count-2*n)*spacing)
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
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
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
