package web

import (
	"slices"
	"testing"

	"github.com/kvsgate/kvsgate/fragments"
)

// BenchmarkConsoleFirstLoad: the console's first load in headless Chromium
// on loopback, without a player library: each op is console.mjs --bench 5
// (five loads of #/streams, each in a fresh browser context with the cache
// disabled). Reported: medians over all loads of the bytes transferred
// (headers included) and of the time to interactive, the console's
// "console-ready" mark (the streams table rendered with its links),
// counted from navigation start; the baseline is the load event of the
// server's plain-text /healthz in the same context right after each load.
// Run with -benchtime 1x (or Nx).
func BenchmarkConsoleFirstLoad(b *testing.B) {
	requirePlayers(b)
	ts := newTestServer(b, nil, fragments.Config{})
	feedDemo(b, ts, "demo", nil, 2)
	var bytes, tti, reqs, base []float64
	for b.Loop() {
		out := runConsole(b, ts.URL, "--bench", "5")
		for _, r := range out.Bench.Runs {
			if len(r.PlayerLibraries) > 0 {
				b.Errorf("first load fetched player libraries: %v", r.PlayerLibraries)
			}
			bytes = append(bytes, float64(r.Bytes))
			tti = append(tti, r.TTIMs)
			reqs = append(reqs, float64(r.Requests))
			base = append(base, r.BaselineMs)
		}
	}
	b.ReportMetric(medianFloat(bytes), "bytes/load")
	b.ReportMetric(medianFloat(tti), "ms-tti")
	b.ReportMetric(slices.Max(tti), "ms-tti-max")
	b.ReportMetric(medianFloat(reqs), "requests/load")
	b.ReportMetric(medianFloat(base), "ms-baseline")
}

func medianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
