package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

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
// a request, against the same handler without them: "bare" (no
// middleware), "metrics" (request log at a level that drops its lines),
// "metrics+textlog" and "metrics+jsonlog" (a line per request, formatted,
// written to io.Discard). "parallel" runs the metrics on every CPU at once,
// all on one (api, stream): the counters' contention.
func BenchmarkMetricsMiddleware(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cases := []struct {
		name    string
		observe bool
		log     *slog.Logger
	}{
		{"bare", false, quiet},
		{"metrics", true, quiet},
		{"metrics+textlog", true, slog.New(slog.NewTextHandler(io.Discard, nil))},
		{"metrics+jsonlog", true, slog.New(slog.NewJSONHandler(io.Discard, nil))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e := benchEcho(c.observe, c.log)
			req := httptest.NewRequest(http.MethodPost, "/listFragments", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				e.ServeHTTP(w, req)
			}
		})
	}
	for _, c := range cases[:2] {
		b.Run("parallel/"+c.name, func(b *testing.B) {
			e := benchEcho(c.observe, c.log)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodPost, "/listFragments", nil)
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					e.ServeHTTP(w, req)
				}
			})
		})
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
