package web

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/labstack/echo/v4"
)

// tracked is a request as the metrics and the request log see it. It wraps
// the response writer to count the bytes that go out: into the API's
// OutgoingBytes as they go (a GetMedia connection's bytes show while it
// lasts), and for the log line. Writes through echo's Response and straight
// to Response().Writer (sendfile) are both counted.
type tracked struct {
	http.ResponseWriter
	m       *metrics
	info    *requestInfo
	api     string     // the API counted: "" for other routes and CORS preflights
	series  *apiSeries // nil until the response starts (or the request ends)
	start   time.Time
	begun   bool      // the response has started
	headers time.Time // when, for long connections (their latency)
	active  bool      // counted in active connections
	status  int

	bytes   int64 // body bytes written
	counted int64 // of those, added to series.outBytes

	bytesIn   atomic.Int64 // PutMedia body bytes received
	fragments atomic.Int64 // PutMedia fragments received; GetMedia and GetMediaForFragmentList fragments sent
}

// trackedOf returns the request's tracked writer; nil (whose methods do
// nothing) for requests the middleware did not see.
func trackedOf(c echo.Context) *tracked {
	t, _ := c.Response().Writer.(*tracked)
	return t
}

// Unwrap lets http.ResponseController reach the connection (flush, hijack,
// deadlines, full duplex).
func (t *tracked) Unwrap() http.ResponseWriter { return t.ResponseWriter }

func (t *tracked) WriteHeader(code int) {
	if !t.begun {
		t.begin(code)
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *tracked) Write(p []byte) (int, error) {
	if !t.begun {
		t.begin(http.StatusOK)
	}
	n, err := t.ResponseWriter.Write(p)
	t.wrote(int64(n))
	return n, err
}

// ReadFrom keeps the response writer's sendfile (io.Copy of a file).
func (t *tracked) ReadFrom(r io.Reader) (int64, error) {
	if !t.begun {
		t.begin(http.StatusOK)
	}
	n, err := io.Copy(t.ResponseWriter, r)
	t.wrote(n)
	return n, err
}

// begin notes the start of the response: by then the handler has resolved
// the stream, so the request's series are looked up now.
func (t *tracked) begin(status int) {
	t.begun, t.status = true, status
	if t.api == "" {
		return
	}
	t.series = t.m.seriesOf(t.api, t.info.Stream)
	if t.series.traits&connection != 0 {
		t.headers = time.Now()
	}
	t.series.requests.Inc()
	if n := t.bytesIn.Load(); n > 0 && t.series.inBytes != nil {
		// PutMedia reads the body's first bytes before it answers.
		t.series.inBytes.Add(float64(n))
	}
	if t.series.active != nil && status < 300 {
		t.series.active.Inc()
		t.active = true
	}
}

func (t *tracked) wrote(n int64) {
	t.bytes += n
	if t.series != nil {
		t.series.outBytes.Add(float64(n))
		t.counted += n
	}
}

// received counts PutMedia body bytes as they arrive. It runs on the
// handler's goroutine, as begin does.
func (t *tracked) received(n int) {
	if t == nil || n <= 0 {
		return
	}
	t.bytesIn.Add(int64(n))
	if s := t.series; s != nil && s.inBytes != nil {
		s.inBytes.Add(float64(n))
	}
}

// Received is fragments.PutObserver: a complete fragment.
func (t *tracked) Received(f fragments.FragmentStats) {
	t.fragments.Add(1)
	if s := t.series; s != nil && s.inFragments != nil {
		s.inFragments.Inc()
		s.inFrames.Add(float64(f.Frames))
		s.ingestion.Observe(f.Ingestion.Seconds())
	}
}

// Persisted is fragments.PutObserver: a fragment acked PERSISTED.
func (t *tracked) Persisted(f fragments.FragmentStats) {
	if s := t.series; s != nil && s.persisted != nil {
		s.persisted.Inc()
		s.persist.Observe(f.Persist.Seconds())
	}
}

// errorAck counts a PutMedia ERROR ack.
func (t *tracked) errorAck() {
	if t == nil {
		return
	}
	if s := t.series; s != nil && s.errorAcks != nil {
		s.errorAcks.Inc()
	}
}

// sent counts a fragment of a GetMedia or GetMediaForFragmentList response
// that went out, with its frames; behind >= 0 is GetMedia's
// MILLIS_BEHIND_NOW.
func (t *tracked) sent(frames int, behind time.Duration) {
	if t == nil {
		return
	}
	t.fragments.Add(1)
	s := t.series
	if s == nil || s.outFragments == nil {
		return
	}
	s.outFragments.Inc()
	s.outFrames.Add(float64(frames))
	if s.behind != nil && behind >= 0 {
		s.behind.Set(behind.Seconds())
	}
}

// observe is the middleware of the metrics and the request log. It runs
// the handler, writes its error (handleError) so the status is final, then
// counts the request and logs it.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		res := c.Response()
		info := infoOfC(c)
		t := &tracked{ResponseWriter: res.Writer, m: s.metrics, info: info, api: info.API, start: time.Now()}
		if c.Request().Method == http.MethodOptions {
			t.api = ""
		}
		res.Writer = t
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.finish(c, t, err)
		res.Writer = t.ResponseWriter
		return nil
	}
}

// finish counts a request that ended in its API's series and logs it.
func (s *Server) finish(c echo.Context, t *tracked, err error) {
	end := time.Now()
	info := t.info
	if !t.begun {
		// Nothing written: net/http sends a 200 with no body.
		t.begin(http.StatusOK)
	}
	latency := end.Sub(t.start)
	if se := t.series; se != nil {
		if se.traits&connection != 0 {
			latency = t.headers.Sub(t.start)
		}
		ok := err == nil && info.Error == "" && t.status < 400
		if ok {
			se.success.Inc()
		}
		se.latency.Observe(latency.Seconds())
		if n := t.bytes - t.counted; n > 0 {
			se.outBytes.Add(float64(n))
		}
		s.metrics.credits(se, info.MetadataCredits, info.MediaCredits)
		if se.connErrors != nil && t.status >= 400 {
			se.connErrors.Inc()
		}
		if t.active {
			se.active.Dec()
		}
		if ok && t.api == "DeleteStream" {
			// A deleted stream's series go (this request's with them), so
			// that those of deleted streams do not pile up.
			s.metrics.forgetStream(info.Stream)
		}
	}
	s.logRequest(c, t, latency, end)
}
