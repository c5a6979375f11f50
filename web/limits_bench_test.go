package web

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/session/limits"
)

// raisedLimits are the default limits with every figure so high that
// nothing is refused: every bucket is still checked and taken from.
func raisedLimits() limits.Config {
	c := limits.Default()
	c.FragmentMetadataCredits, c.FragmentMediaCredits = 1e9, 1e9
	for op := range limits.NumOps {
		if c.TPS[op] > 0 {
			c.TPS[op] = 1e9
		}
		if c.AccountTPS[op] > 0 {
			c.AccountTPS[op] = 1e9
		}
	}
	return c
}

// BenchmarkLimitsRequest is one playback request served in process (no
// network) with the limits off, and on with figures raised so that nothing
// is refused: the limiter's share of a whole request. cpu-ns/op is the
// process's CPU time (all threads, GC included) per request. Requests: a LIVE
// media playlist (5 metadata credits) and a cached media fragment (1 media
// credit), both with their session TPS.
func BenchmarkLimitsRequest(b *testing.B) {
	type target struct {
		name string
		h    http.Handler
		urls [2]string // playlist, fragment
	}
	var targets []target
	for _, mode := range []struct {
		name string
		cfg  limits.Config
	}{{"off", limits.Config{Off: true}}, {"on", raisedLimits()}} {
		ts := newLimitedTestServer(b, mode.cfg, nil)
		nums := gmIngest(b, ts, "cam", filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"), 1)
		now := float64(time.Now().UnixMilli()) / 1000
		status, typ, master := hlsClient{b, ts}.sessionURL(map[string]any{"StreamName": "cam", "PlaybackMode": "ON_DEMAND",
			"MaxMediaPlaylistFragmentResults": 5, "HLSFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
				"TimestampRange": map[string]any{"StartTimestamp": now - 600, "EndTimestamp": now + 60}}})
		if status != 200 {
			b.Fatalf("session: %d %s", status, typ)
		}
		targets = append(targets, target{mode.name, ts.Server.Handler(), [2]string{
			strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?TrackNumber=1&", 1),
			strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getMP4MediaFragment.mp4?TrackNumber=1&FragmentNumber="+nums[0]+"&", 1),
		}})
	}
	// Off and on alternate, so that the machine's load drifts over both.
	for i, res := range []string{"playlist", "fragment"} {
		for _, tg := range targets {
			req := httptest.NewRequest(http.MethodGet, tg.urls[i], nil)
			b.Run(res+"/"+tg.name, func(b *testing.B) {
				cpu0, n := cpuTime(), 0
				for b.Loop() {
					w := httptest.NewRecorder()
					tg.h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatalf("%d %s", w.Code, w.Body.String())
					}
					n++
				}
				// CPU time is steadier than wall time on a shared machine.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
			})
		}
	}
}
