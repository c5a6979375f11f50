package web

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
)

// logRequest writes a request's line in the request log, once it has ended
// (PutMedia and GetMedia connections too, with their duration): request id,
// method, path, remote address, API, stream, status, error (the AWS error
// type, or the error code of a PutMedia ERROR ack or a GetMedia error sent
// in the stream), latency as the metrics count it, and bytes sent. Lines of
// routes that are no API (health checks, metrics scrapes, the DASH clock)
// are debug-level unless they failed.
func (s *Server) logRequest(c echo.Context, t *tracked, latency time.Duration, end time.Time) {
	level := slog.LevelInfo
	if t.info.API == "" && t.status < 400 {
		level = slog.LevelDebug
	}
	r := c.Request()
	ctx := r.Context()
	h := s.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	var buf [16]slog.Attr
	attrs := append(buf[:0],
		slog.String("request_id", requestID(c)),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("remote", r.RemoteAddr),
		slog.String("api", t.info.API),
		slog.String("stream", t.info.Stream),
		slog.Int("status", t.status),
		slog.String("error", t.info.Error),
		slog.Float64("latency_ms", millis(latency)),
		slog.Int64("bytes", t.bytes),
	)
	if traits[t.info.API]&connection != 0 {
		attrs = append(attrs, slog.Float64("duration_ms", millis(end.Sub(t.start))), slog.Int64("fragments", t.fragments.Load()))
		if traits[t.info.API]&ingests != 0 {
			attrs = append(attrs, slog.Int64("bytes_in", t.bytesIn.Load()))
		}
	}
	// A record without a source position: the handler then skips
	// runtime.Callers, a good part of a line's cost.
	rec := slog.NewRecord(end, level, "request", 0)
	rec.AddAttrs(attrs...)
	h.Handle(ctx, rec)
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
