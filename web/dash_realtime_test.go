package web

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
)

// TestDashPlayersRealtimeOnDemand plays an ON_DEMAND session over server
// timestamps of the demo stream (the demo clip fed in real time, looped:
// its audio starts about 0.1 s before its video, and server timestamps are
// arrival times with jitter) in dash.js for 15 s. Such a stream is
// continuous: its MPD has one Period, and playback advances the whole way.
func TestDashPlayersRealtimeOnDemand(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium")
	}
	requirePlayers(t)
	ts := newTestServer(t, nil, fragments.Config{})
	d := dashClient{hlsClient{t, ts}}
	from := time.Now().Add(-time.Second)
	feedDemo(t, ts, "demo", nil, 26) // about 25 s at 1 s a fragment
	to := time.Now()
	st, err := ts.Store.Index.Stream("demo", "")
	if err != nil {
		t.Fatal(err)
	}
	frags, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByServer, To: 1<<63 - 1, AfterTS: -1, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frags {
		if i > 0 {
			p := frags[i-1]
			t.Logf("fragment %d: server gap %+d ms, producer gap %+d ms, duration %d ms", f.Ordinal,
				(f.ServerNS-p.ServerNS-p.DurationNS)/1e6, (f.ProducerNS-p.ProducerNS-p.DurationNS)/1e6, f.DurationNS/1e6)
		}
	}
	// The stream's fragment timestamps are up to about 90 ms off their
	// predecessors' ends (the audio's lead over the video varies from 21
	// to 101 ms, plus the loop), its video is not: one Period, whose
	// timeline has no hole (S@t on the first S only), in either timestamp
	// source.
	var u string
	for _, sel := range []string{"PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"} {
		u = d.mustSessionURL(map[string]any{"StreamName": "demo", "PlaybackMode": "ON_DEMAND",
			"DASHFragmentSelector": map[string]any{"FragmentSelectorType": sel,
				"TimestampRange": map[string]any{"StartTimestamp": float64(from.UnixMilli()) / 1000, "EndTimestamp": float64(to.UnixMilli()) / 1000}}})
		body, m := d.manifest(u)
		if len(m.Periods) != 1 || strings.Count(body, `<S t="`) != 2 {
			t.Errorf("%s: %d Periods, %d S@t (want 1, and 2: one a track)\n%s", sel, len(m.Periods), strings.Count(body, `<S t="`), body)
		}
	}
	r := playInBrowserWith(t, playOptions{Player: "dashjs", URL: u, Seconds: 15, Timeout: 60 * time.Second})
	t.Logf("%s", r)
	if !r.OK || len(r.Errors) > 0 || r.Advanced < 15 || r.CurrentTime < 15 {
		t.Fatalf("did not play 15 s: %s\n%s", r, r.Raw)
	}
}

// TestDashOnDemandLoopOnePeriod: the demo clip looped by the put client
// (as fast as it goes) makes fragments whose producer timestamps are up to
// about 90 ms off their predecessors' ends (the audio's varying lead over
// the video, and the loop), while the video is continuous: an ON_DEMAND
// MPD over them has one Period, with no hole in its timeline.
func TestDashOnDemandLoopOnePeriod(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	d := dashClient{hlsClient{t, ts}}
	data, err := os.ReadFile(demoClip)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var persisted atomic.Int64
	start := time.Now()
	producer.Put(ctx, bytes.NewReader(data), producer.Options{Endpoint: ts.URL, Stream: "loop", Create: true, Loop: true,
		OnAck: func(a producer.Ack) {
			if a.EventType == "PERSISTED" && persisted.Add(1) == 25 {
				cancel()
			}
		}})
	if persisted.Load() < 25 {
		t.Fatalf("%d fragments persisted", persisted.Load())
	}
	body, m := d.manifest(d.mustSessionURL(dashOnDemandBody("loop", start.Add(-time.Second).UnixMilli(), start.Add(time.Minute).UnixMilli())))
	if len(m.Periods) != 1 || strings.Count(body, `<S t="`) != 2 {
		t.Fatalf("%d Periods, %d S@t (want 1, and 2: one a track)\n%s", len(m.Periods), strings.Count(body, `<S t="`), body)
	}
}
