package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// discardWriter is a reusable http.ResponseWriter, so the benchmark
// measures the server side only.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// benchEcho is echo as the server sets it up (request id, requestInfo,
// error handler) around one handler on the ListFragments route, with the
// metrics and request-log middleware or without it.
func benchEcho(observe bool, log *slog.Logger) *echo.Echo {
	s := &Server{metrics: newMetrics(nil), log: log}
	e := echo.New()
	e.HTTPErrorHandler = s.handleError
	e.Pre(s.requestID)
	e.Use(s.describe)
	if observe {
		e.Use(s.observe)
	}
	body := make([]byte, 1024)
	e.POST("/listFragments", func(c echo.Context) error {
		infoOfC(c).Stream = "cam"
		return c.Blob(http.StatusOK, "application/json", body)
	})
	return e
}

// BenchmarkMetricsMiddleware: what the metrics and the request log add to
// a request, against the same handler without them. Variants: "bare" (no
// middleware), "metrics" (the request log at a level that drops its lines),
// "metrics+textlog" and "metrics+jsonlog" (a line per request, formatted,
// written to io.Discard). Each op runs a batch of requests of every variant
// in turn, so that load from other work on the machine falls on all of them
// alike; reported are the medians over the batches of wall and CPU (process:
// GC included) time per request. ns/op is the time of all the batches.
func BenchmarkMetricsMiddleware(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	variants := []struct {
		name string
		e    *echo.Echo
	}{
		{"bare", benchEcho(false, quiet)},
		{"metrics", benchEcho(true, quiet)},
		{"metrics+textlog", benchEcho(true, slog.New(slog.NewTextHandler(io.Discard, nil)))},
		{"metrics+jsonlog", benchEcho(true, slog.New(slog.NewJSONHandler(io.Discard, nil)))},
	}
	const batch = 200
	req := httptest.NewRequest(http.MethodPost, "/listFragments", nil)
	w := &discardWriter{h: http.Header{}}
	walls := make([][]time.Duration, len(variants))
	cpus := make([][]time.Duration, len(variants))
	for b.Loop() {
		for i, v := range variants {
			c0, w0 := cpuTime(), time.Now()
			for range batch {
				clear(w.h)
				v.e.ServeHTTP(w, req)
			}
			walls[i], cpus[i] = append(walls[i], time.Since(w0)), append(cpus[i], cpuTime()-c0)
		}
	}
	for i, v := range variants {
		b.ReportMetric(float64(median(walls[i]))/batch, v.name+"-ns/req")
		b.ReportMetric(float64(median(cpus[i]))/batch, v.name+"-cpu-ns/req")
	}
}

// BenchmarkSeriesLookup: the per-request series lookup, cached per (api,
// stream), against asking each vector for its child on every request.
func BenchmarkSeriesLookup(b *testing.B) {
	m := newMetrics(nil)
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			s := m.seriesOf("GetMP4MediaFragment", "camera-0042")
			s.requests.Inc()
			s.success.Inc()
			s.latency.Observe(0.001)
			s.outBytes.Add(1000)
			s.media.Add(1)
		}
	})
	b.Run("WithLabelValues", func(b *testing.B) {
		for b.Loop() {
			m.requests.WithLabelValues("GetMP4MediaFragment", "camera-0042").Inc()
			m.success.WithLabelValues("GetMP4MediaFragment", "camera-0042").Inc()
			m.latency.WithLabelValues("GetMP4MediaFragment", "camera-0042").Observe(0.001)
			m.outBytes.WithLabelValues("GetMP4MediaFragment", "camera-0042").Add(1000)
			m.media.WithLabelValues("GetMP4MediaFragment", "camera-0042").Add(1)
		}
	})
}
