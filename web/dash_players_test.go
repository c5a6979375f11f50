package web

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
)

// demoClip is the demo clip: H.264 640x480 25 fps (250 frames) and AAC
// (470 frames), timecodes from 0 to 10 s.
var demoClip = filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv")

// ingestAt posts a Matroska file as one PutMedia body with RELATIVE
// timecodes from the given producer start (unix ms), so its fragments'
// producer timestamps start there.
func ingestAt(t testing.TB, ts *testServer, stream string, data []byte, startMS int64) {
	t.Helper()
	req, _ := http.NewRequest("POST", ts.URL+"/putMedia", bytes.NewReader(data))
	req.Header.Set("x-amzn-stream-name", stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "RELATIVE")
	req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%d.%03d", startMS/1000, startMS%1000))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var acks bytes.Buffer
	acks.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || bytes.Contains(acks.Bytes(), []byte("ERROR")) {
		t.Fatalf("putMedia: %d %s", resp.StatusCode, acks.String())
	}
}

// gapStream ingests the demo clip twice, the second run 3 s after the end
// of the first (producer timestamps), and returns the session body of an
// ON_DEMAND session over both.
func gapStream(t testing.TB, ts *testServer, stream string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(demoClip)
	if err != nil {
		t.Fatal(err)
	}
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": stream, "DataRetentionInHours": 87600})
	start := time.Now().Add(-time.Hour).UnixMilli() / 1000 * 1000
	ingestAt(t, ts, stream, data, start)
	ingestAt(t, ts, stream, data, start+13000) // the clip lasts 10 s: a 3 s gap
	return map[string]any{"StreamName": stream, "PlaybackMode": "ON_DEMAND",
		"DASHFragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP",
			"TimestampRange": map[string]any{"StartTimestamp": float64(start) / 1000, "EndTimestamp": float64(start+30000) / 1000}}}
}

func dashOnDemandBody(stream string, fromMS, toMS int64) map[string]any {
	return map[string]any{"StreamName": stream, "PlaybackMode": "ON_DEMAND",
		"DASHFragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP",
			"TimestampRange": map[string]any{"StartTimestamp": float64(fromMS) / 1000, "EndTimestamp": float64(toMS) / 1000}}}
}

// TestDashPlayers plays kvsgate's DASH sessions in dash.js and Shaka Player
// in headless Chromium: ON_DEMAND, across a 3 s gap, and LIVE fed in real
// time, with and without a 3 s pause of the producer.
func TestDashPlayers(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium")
	}
	requirePlayers(t)
	ts := newTestServer(t, nil, fragments.Config{})
	d := dashClient{hlsClient{t, ts}}
	gmIngest(t, ts, "vod", demoClip, 87600)
	vod := d.mustSessionURL(dashOnDemandBody("vod", 0, 20000))
	gap := d.mustSessionURL(gapStream(t, ts, "gap"))
	for _, player := range []string{"dashjs", "shaka"} {
		t.Run("ON_DEMAND/"+player, func(t *testing.T) {
			r := playInBrowser(t, player, vod, 3)
			t.Logf("%s", r)
			if !r.OK || len(r.Errors) > 0 || r.VideoWidth != 640 || r.Advanced < 3 {
				t.Fatalf("%s\n%s", r, r.Raw)
			}
			if r.Live == nil || *r.Live {
				t.Errorf("live = %s, want false", fmtLive(r.Live))
			}
		})
		// The first run lasts 10 s; the second is the next Period, 10 s
		// into the presentation (the gap is left out of it): playing 14 s
		// means playing across the gap.
		t.Run("ON_DEMAND-gap/"+player, func(t *testing.T) {
			r := playInBrowserWith(t, playOptions{Player: player, URL: gap, Seconds: 14, Timeout: 60 * time.Second})
			t.Logf("%s", r)
			if !r.OK || len(r.Errors) > 0 || r.Advanced < 14 || r.CurrentTime < 14 {
				t.Fatalf("did not play across the gap: %s\n%s", r, r.Raw)
			}
		})
		t.Run("LIVE_REPLAY/"+player, func(t *testing.T) {
			body := dashOnDemandBody("vod", 0, 20000)
			body["PlaybackMode"] = "LIVE_REPLAY"
			r := playInBrowser(t, player, d.mustSessionURL(body), 3)
			t.Logf("%s", r)
			if !r.OK || len(r.Errors) > 0 || r.VideoWidth != 640 || r.Advanced < 3 {
				t.Fatalf("%s\n%s", r, r.Raw)
			}
			if r.Live == nil || !*r.Live {
				t.Errorf("live = %s, want true", fmtLive(r.Live))
			}
		})
	}
}

// dashLive feeds the demo clip to a stream in real time; with pause > 0 it
// plays the clip once, pauses, and plays it again (a gap of pause), and
// sets *resumed to when the second run started. It returns a LIVE session
// URL once the stream has a few fragments.
func dashLive(t *testing.T, d dashClient, stream string, pause time.Duration, resumed *atomic.Int64) string {
	t.Helper()
	data, err := os.ReadFile(demoClip)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	o := producer.Options{Endpoint: d.ts.URL, Stream: stream, Create: true, Realtime: true, Loop: pause == 0, RetentionHours: 1}
	go func() {
		defer close(done)
		if _, err := producer.Put(ctx, bytes.NewReader(data), o); err != nil || pause == 0 {
			return
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		resumed.Store(time.Now().UnixMilli())
		producer.Put(ctx, bytes.NewReader(data), o)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, _, u := d.sessionURL(map[string]any{"StreamName": stream, "PlaybackMode": "LIVE", "MaxManifestFragmentResults": 5})
		if status == 200 {
			time.Sleep(3 * time.Second) // a few fragments in the window
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("no LIVE session: %d", status)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestDashPlayersLive(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium")
	}
	requirePlayers(t)
	for _, player := range []string{"dashjs", "shaka"} {
		t.Run("LIVE/"+player, func(t *testing.T) {
			ts := newTestServer(t, nil, fragments.Config{})
			u := dashLive(t, dashClient{hlsClient{t, ts}}, "live", 0, nil)
			r := playInBrowser(t, player, u, 3)
			t.Logf("%s", r)
			if !r.OK || len(r.Errors) > 0 || r.VideoWidth != 640 || r.Advanced < 3 {
				t.Fatalf("%s\n%s", r, r.Raw)
			}
			if r.Live == nil || !*r.Live {
				t.Errorf("live = %s, want true", fmtLive(r.Live))
			}
		})
		t.Run("LIVE-gap/"+player, func(t *testing.T) {
			ts := newTestServer(t, nil, fragments.Config{})
			var resumed atomic.Int64
			u := dashLive(t, dashClient{hlsClient{t, ts}}, "live", 3*time.Second, &resumed)
			// The session starts about 4 s into the first run: 6 s of it
			// are left, then the gap, then 10 s of the second run.
			r := playInBrowserWith(t, playOptions{Player: player, URL: u, Seconds: 11, Timeout: 60 * time.Second})
			t.Logf("%s (second run from %.3f)", r, float64(resumed.Load())/1000)
			if !r.OK || len(r.Errors) > 0 || r.Advanced < 11 {
				t.Fatalf("did not play across the gap: %s\n%s", r, r.Raw)
			}
			// A LIVE session's presentation time is the server's clock
			// (availabilityStartTime 1970): the player is past the gap.
			if r.CurrentTime < float64(resumed.Load())/1000+1 {
				t.Fatalf("currentTime %.3f: not past the second run's start %.3f", r.CurrentTime, float64(resumed.Load())/1000)
			}
		})
	}
}
