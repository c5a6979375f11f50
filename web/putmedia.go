package web

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/labstack/echo/v4"
)

// PutMedia connection timing, as KVS behaves: IDLE acks while no data
// arrives, and the request is closed after 30 s without data.
var (
	putIdleAckEvery = 3 * time.Second
	putIdleTimeout  = 30 * time.Second
)

// putMedia is POST /putMedia: a chunked Matroska body in, a stream of JSON
// acks out on the same connection while the body is still arriving.
func (s *Server) putMedia(c echo.Context) error {
	r := c.Request()
	h := r.Header
	// Everything that can fail as an HTTP error does so before the body is read.
	if err := s.auth.Verify(r, ""); err != nil {
		return err
	}
	st, err := s.resolve(c.Request().Context(), streamRef{StreamName: h.Get("x-amzn-stream-name"), StreamARN: h.Get("x-amzn-stream-arn")})
	if err != nil {
		return err
	}
	opts := fragments.PutOptions{}
	switch tc := strings.ToUpper(h.Get("x-amzn-fragment-timecode-type")); tc {
	case "ABSOLUTE":
	case "RELATIVE":
		opts.Relative = true
	default:
		return invalidArg("x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE")
	}
	if v := h.Get("x-amzn-producer-start-timestamp"); v != "" {
		// A bad value is not fatal here: fragments that need it are
		// rejected with error 4007, as KVS does.
		opts.ProducerStart, opts.HasProducerStart = parseEpoch(strings.TrimSpace(v))
	}

	w := c.Response().Writer
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		return err
	}
	t := trackedOf(c)
	body := &activityReader{r: r.Body, t: t}
	body.touch()
	// The first read sends "100 Continue" to producers that wait for it;
	// only then does the 200 go out (after it, a 100 would be too late).
	br := bufio.NewReaderSize(body, 64<<10)
	br.Peek(1)

	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	// The response may end before the body does (an error ack, a newer
	// connection, a drain): the connection is not reused after it.
	c.Response().Header().Set(echo.HeaderConnection, "close")
	c.Response().WriteHeader(http.StatusOK)
	rc.Flush()
	if t != nil {
		opts.Observer = t
	}

	var mu sync.Mutex
	buf := make([]byte, 0, 256)
	ack := func(a fragments.Ack) error {
		mu.Lock()
		defer mu.Unlock()
		if a.EventType == fragments.AckError {
			t.errorAck()
		}
		buf = a.AppendJSON(buf[:0])
		if _, err := w.Write(buf); err != nil {
			return err
		}
		return rc.Flush()
	}
	opts.Abort = func() { rc.SetReadDeadline(time.Now()) }

	done := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		lastIdle := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				idle := now.Sub(body.last())
				switch {
				case idle >= putIdleTimeout:
					opts.Abort()
					return
				case idle >= putIdleAckEvery && now.Sub(lastIdle) >= putIdleAckEvery:
					lastIdle = now
					ack(fragments.Ack{EventType: fragments.AckIdle})
				}
			}
		}
	}()
	err = s.store.Put(r.Context(), st, opts, br, ack)
	close(done)
	watch.Wait() // no IDLE ack or abort after the handler returns
	if err != nil {
		s.log.Info("putMedia ended with an error", "stream", st.Name, "request_id", requestID(c), "err", err)
		infoOfC(c).Error = "INTERNAL_ERROR"
		var pe *fragments.PutError
		if errors.As(err, &pe) {
			infoOfC(c).Error = fragments.ErrorCode(pe.ID)
		}
	}
	if !body.eof.Load() {
		s.endEarly(rc)
	}
	return nil
}

// putLinger bounds how long a PutMedia connection whose response ended
// before its body (a drain, a newer connection, an error ack) keeps reading
// and dropping the body before it is closed.
var putLinger = 2 * time.Second

// endEarly ends a PutMedia response while the producer is still sending:
// it finishes the chunked response, half-closes the connection and drops
// what still arrives for a moment before closing it. Closing a socket with
// unread data in it sends a TCP reset, and a reset can make the producer
// lose the last acks before it has read them.
func (s *Server) endEarly(rc *http.ResponseController) {
	conn, rw, err := rc.Hijack()
	if err != nil {
		return // not HTTP/1: the server closes the stream itself
	}
	s.lingering.Add(1)
	go func() {
		defer s.lingering.Done()
		defer conn.Close()
		rw.WriteString("0\r\n\r\n") // the end of the chunked response
		if rw.Flush() != nil {
			return
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		conn.SetReadDeadline(time.Now().Add(putLinger))
		io.Copy(io.Discard, rw)
	}()
}

// WaitLingering waits (at most d) for connections ended early to close, so
// that a server exiting does not reset them.
func (s *Server) WaitLingering(d time.Duration) {
	done := make(chan struct{})
	go func() { s.lingering.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// activityReader remembers when data last arrived, and counts it.
type activityReader struct {
	r    io.Reader
	t    *tracked // counts the bytes (IncomingBytes)
	nano atomic.Int64
	eof  atomic.Bool // the body ended (the producer closed it)
}

func (a *activityReader) touch() { a.nano.Store(time.Now().UnixNano()) }

func (a *activityReader) last() time.Time { return time.Unix(0, a.nano.Load()) }

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.touch()
		a.t.received(n)
	}
	if err == io.EOF {
		a.eof.Store(true)
	}
	return n, err
}
