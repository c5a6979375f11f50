package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/labstack/echo/v4"
)

// GetMedia tuning: how long a reader waits without a new fragment before the
// response ends while no producer is connected (KVS: 3 s), and how many
// GetMedia connections a stream allows.
var (
	getMediaIdle        = 3 * time.Second
	getMediaConnections = int32(3)
)

var reFragmentNumber = regexp.MustCompile(`^[0-9]{1,128}$`)

type startSelector struct {
	StartSelectorType   string     `json:"StartSelectorType"`
	AfterFragmentNumber string     `json:"AfterFragmentNumber"`
	StartTimestamp      *Timestamp `json:"StartTimestamp"`
	ContinuationToken   string     `json:"ContinuationToken"`
}

type getMediaIn struct {
	streamRef
	StartSelector *startSelector `json:"StartSelector"`
}

// connLimits counts open GetMedia connections per stream.
type connLimits struct{ m sync.Map } // stream id -> *atomic.Int32

func (l *connLimits) acquire(id int64, max int32) bool {
	v, _ := l.m.LoadOrStore(id, new(atomic.Int32))
	n := v.(*atomic.Int32)
	if n.Add(1) > max {
		n.Add(-1)
		return false
	}
	return true
}

func (l *connLimits) release(id int64) {
	if v, ok := l.m.Load(id); ok {
		v.(*atomic.Int32).Add(-1)
	}
}

// getMedia is POST /getMedia: the stream's fragments as Matroska, from a
// start selector on, then live as fragments arrive.
func (s *Server) getMedia(c echo.Context) error {
	var in getMediaIn
	if err := s.readJSON(c, &in); err != nil {
		return err
	}
	sel := in.StartSelector
	if sel == nil {
		return invalidArg("StartSelector is required")
	}
	switch sel.StartSelectorType {
	case "NOW", "EARLIEST":
	case "FRAGMENT_NUMBER":
		if !reFragmentNumber.MatchString(sel.AfterFragmentNumber) {
			return invalidArg("AfterFragmentNumber must be 1 to 128 digits")
		}
	case "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP":
		if sel.StartTimestamp == nil {
			return invalidArg("StartTimestamp is required for %s", sel.StartSelectorType)
		}
	case "CONTINUATION_TOKEN":
		if !reFragmentNumber.MatchString(sel.ContinuationToken) {
			return invalidArg("ContinuationToken is not valid")
		}
	default:
		return invalidArg("StartSelectorType must be one of FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, NOW, EARLIEST, CONTINUATION_TOKEN")
	}
	st, err := s.resolve(in.streamRef)
	if err != nil {
		return err
	}
	if !s.getMediaConns.acquire(st.ID, getMediaConnections) {
		return apiErr(http.StatusBadRequest, "ConnectionLimitExceededException", "stream %s already has %d GetMedia connections", st.Name, getMediaConnections)
	}
	defer s.getMediaConns.release(st.ID)

	var src mediaSource
	if st.Archived() {
		src, err = s.archivedSource(st, sel)
	} else {
		src, err = s.liveSource(st, sel)
	}
	if err != nil {
		return err
	}
	mw := s.startMedia(c, st)
	ctx := c.Request().Context()
	idleSince := time.Now()
	for ctx.Err() == nil {
		wake := s.store.Wake(st.ID)
		n, err := src.next(ctx, mw)
		if err != nil {
			mw.fail(5000, "INTERNAL_ERROR")
			s.log.Warn("getMedia", "stream", st.Name, "request_id", requestID(c), "err", err)
			return nil
		}
		if n > 0 {
			idleSince = time.Now()
			continue
		}
		t := time.NewTimer(getMediaIdle)
		select {
		case <-wake:
		case <-ctx.Done():
		case <-t.C:
			if !s.store.Ingesting(st.ID) && time.Since(idleSince) >= getMediaIdle {
				t.Stop()
				return nil
			}
		}
		t.Stop()
	}
	return nil
}

// mediaSource yields the fragments a GetMedia reader has not had yet.
type mediaSource interface {
	// next writes the fragments available now and returns how many.
	next(ctx context.Context, mw *mediaWriter) (int, error)
}

// archivedSource reads a stream that keeps data from the index, in ingest
// order after an ordinal.
type archivedSource struct {
	s     *Server
	st    *fragments.Stream
	after int64
}

func (s *Server) archivedSource(st *fragments.Stream, sel *startSelector) (mediaSource, error) {
	src := &archivedSource{s: s, st: st}
	idx := s.store.Index
	switch sel.StartSelectorType {
	case "EARLIEST":
	case "NOW":
		last, err := idx.LastOrdinal(st.ID)
		if err != nil {
			return nil, err
		}
		src.after = last
	case "FRAGMENT_NUMBER", "CONTINUATION_TOKEN":
		num := sel.AfterFragmentNumber
		if sel.StartSelectorType == "CONTINUATION_TOKEN" {
			num = sel.ContinuationToken
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return nil, notFound("fragment %s not found", num)
		}
		f, err := idx.FragmentByNumber(st.ID, n)
		switch {
		case err == nil:
			src.after = f.Ordinal
		case errors.Is(err, fragments.ErrNotFound) && sel.StartSelectorType == "CONTINUATION_TOKEN":
			// The fragment expired: everything still kept comes after it.
		case errors.Is(err, fragments.ErrNotFound):
			return nil, notFound("fragment %s not found in stream %s", num, st.Name)
		default:
			return nil, err
		}
	case "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP":
		// Start with the fragment that holds the timestamp, or the first after it.
		by := fragments.ByServer
		if sel.StartSelectorType == "PRODUCER_TIMESTAMP" {
			by = fragments.ByProducer
		}
		ts := sel.StartTimestamp.UnixNano()
		span := int64(s.store.Config().MaxFragmentDuration)
		frags, err := idx.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: by, From: ts - span, To: 1<<63 - 1, AfterTS: -1 << 62,
			MinServerNS: st.Cutoff(time.Now()), Limit: 64})
		if err != nil {
			return nil, err
		}
		src.after = -1
		for _, f := range frags {
			start := f.ServerNS
			if by == fragments.ByProducer {
				start = f.ProducerNS
			}
			if start+f.DurationNS > ts || start >= ts {
				src.after = f.Ordinal - 1
				break
			}
		}
		if src.after < 0 {
			// Nothing holds or follows the timestamp yet: wait for new fragments.
			last, err := idx.LastOrdinal(st.ID)
			if err != nil {
				return nil, err
			}
			src.after = last
		}
	}
	return src, nil
}

func (a *archivedSource) next(ctx context.Context, mw *mediaWriter) (int, error) {
	frags, err := a.s.store.Index.Fragments(fragments.FragmentQuery{StreamID: a.st.ID, By: fragments.ByOrdinal, AfterOrdinal: a.after,
		MinServerNS: a.st.Cutoff(time.Now()), Limit: 32})
	if err != nil {
		return 0, err
	}
	for i := range frags {
		if ctx.Err() != nil {
			return i, nil
		}
		if err := mw.stored(&frags[i], true); err != nil {
			return i, err
		}
		a.after = frags[i].Ordinal
	}
	return len(frags), nil
}

// liveSource reads a stream without retention from the in-memory hub.
type liveSource struct {
	s     *Server
	st    *fragments.Stream
	after int64 // hub sequence
}

func (s *Server) liveSource(st *fragments.Stream, sel *startSelector) (mediaSource, error) {
	src := &liveSource{s: s, st: st}
	recent, newest := s.store.LiveAfter(st.ID, 0)
	switch sel.StartSelectorType {
	case "NOW":
		src.after = newest
	case "EARLIEST":
	case "FRAGMENT_NUMBER", "CONTINUATION_TOKEN":
		num := sel.AfterFragmentNumber + sel.ContinuationToken
		n, _ := strconv.ParseUint(num, 10, 64)
		src.after = newest
		for _, lf := range recent {
			if lf.Fragment.Number <= n {
				src.after = lf.Seq
			}
		}
	case "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP":
		ts := sel.StartTimestamp.UnixNano()
		src.after = newest
		for _, lf := range recent {
			start := lf.Fragment.ServerNS
			if sel.StartSelectorType == "PRODUCER_TIMESTAMP" {
				start = lf.Fragment.ProducerNS
			}
			if start+lf.Fragment.DurationNS > ts {
				src.after = lf.Seq - 1
				break
			}
		}
	}
	return src, nil
}

func (l *liveSource) next(ctx context.Context, mw *mediaWriter) (int, error) {
	frags, _ := l.s.store.LiveAfter(l.st.ID, l.after)
	for i, lf := range frags {
		if ctx.Err() != nil {
			return i, nil
		}
		if err := mw.fragment(lf.Header, &lf.Fragment, lf.Meta.Tags, &byteSection{lf.Payload}, true); err != nil {
			return i, err
		}
		l.after = lf.Seq
	}
	return len(frags), nil
}

// byteSection lets an in-memory payload be written like a stored one.
type byteSection struct{ p []byte }

func (b *byteSection) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b.p)) {
		return 0, io.EOF
	}
	n := copy(p, b.p[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

type getMediaForFragmentListIn struct {
	streamRef
	Fragments []string `json:"Fragments"`
}

// getMediaForFragmentList is POST /getMediaForFragmentList: the listed
// fragments, in the order given, as Matroska.
func (s *Server) getMediaForFragmentList(c echo.Context) error {
	var in getMediaForFragmentListIn
	if err := s.readJSON(c, &in); err != nil {
		return err
	}
	if len(in.Fragments) < 1 || len(in.Fragments) > 1000 {
		return invalidArg("Fragments holds 1 to 1000 fragment numbers")
	}
	nums := make([]uint64, len(in.Fragments))
	for i, f := range in.Fragments {
		if !reFragmentNumber.MatchString(f) {
			return invalidArg("fragment number %.130q is not 1 to 128 digits", f)
		}
		// Digits beyond 64 bits name no fragment: 0 is never a fragment number.
		nums[i], _ = strconv.ParseUint(f, 10, 64)
	}
	st, err := s.resolve(in.streamRef)
	if err != nil {
		return err
	}
	if !st.Archived() {
		return noDataRetention(st.Name)
	}
	mw := s.startMedia(c, st)
	cutoff := st.Cutoff(time.Now())
	for i, n := range nums {
		if c.Request().Context().Err() != nil {
			return nil
		}
		f, err := s.store.Index.FragmentByNumber(st.ID, n)
		if err == nil && f.ServerNS < cutoff {
			err = fragments.ErrNotFound
		}
		if errors.Is(err, fragments.ErrNotFound) {
			mw.missing(in.Fragments[i])
			continue
		}
		if err == nil {
			err = mw.stored(f, false)
		}
		if err != nil {
			mw.fail(5000, "INTERNAL_ERROR")
			s.log.Warn("getMediaForFragmentList", "stream", st.Name, "request_id", requestID(c), "err", err)
			return nil
		}
	}
	return nil
}

// startMedia sends the 200 and returns a writer of the Matroska body.
func (s *Server) startMedia(c echo.Context, st *fragments.Stream) *mediaWriter {
	ct := st.MediaType
	if ct == "" {
		ct = "video/webm"
	}
	c.Response().Header().Set(echo.HeaderContentType, ct)
	c.Response().WriteHeader(http.StatusOK)
	c.Response().Flush()
	return &mediaWriter{s: s, w: c.Response(), flush: c.Response().Flush, headers: map[int64]*fragments.Header{}}
}

// mediaWriter writes Matroska as GetMedia sends it: an EBML header and
// Segment (unknown size) with Info and Tracks whenever the track header
// changes, then per fragment a Tags element (fragment number, server and
// producer timestamps, the fragment's metadata), the Cluster with the frames
// as stored (its size made known), and for GetMedia a Tags element with
// MILLIS_BEHIND_NOW and the CONTINUATION_TOKEN.
type mediaWriter struct {
	s       *Server
	w       io.Writer
	flush   func()
	last    *fragments.Header
	headers map[int64]*fragments.Header
	buf     []byte
	copyBuf []byte
}

// stored writes a fragment from the archive.
func (m *mediaWriter) stored(f *fragments.Fragment, live bool) error {
	h := m.headers[f.HeaderID]
	if h == nil {
		var err error
		if h, err = m.s.store.Index.Header(f.HeaderID); err != nil {
			return err
		}
		m.headers[f.HeaderID] = h
	}
	meta, err := m.s.store.Index.Meta(f.StreamID, f.Ordinal)
	if err != nil {
		return err
	}
	r, err := m.s.store.OpenFragment(f)
	if err != nil {
		return err
	}
	defer r.Close()
	return m.fragment(h, f, meta.Tags, r, live)
}

func (m *mediaWriter) fragment(h *fragments.Header, f *fragments.Fragment, tags []mkv.SimpleTag, payload io.ReaderAt, live bool) error {
	b := m.buf[:0]
	if h != m.last {
		b = append(b, mkv.EBMLHeader()...)
		b = mkv.AppendUnknownSizeHeader(b, mkv.IDSegment)
		b = append(b, mkv.Info(h.TimecodeScale)...)
		b = append(b, mkv.Tracks(h.Tracks)...)
		m.last = h
	}
	number := strconv.FormatUint(f.Number, 10)
	t := make([]mkv.SimpleTag, 0, 3+len(tags))
	t = append(t,
		mkv.SimpleTag{Name: "AWS_KINESISVIDEO_FRAGMENT_NUMBER", Value: number},
		mkv.SimpleTag{Name: "AWS_KINESISVIDEO_SERVER_TIMESTAMP", Value: string(appendEpoch(nil, f.ServerNS))},
		mkv.SimpleTag{Name: "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", Value: string(appendEpoch(nil, f.ProducerNS))})
	t = append(t, tags...)
	b = append(b, mkv.Tags(t)...)

	// The stored Cluster starts with its ID and a size that may be unknown:
	// write it with its size known.
	var head [12]byte
	n, err := payload.ReadAt(head[:], 0)
	if n < 5 && err != nil {
		return err
	}
	hlen := 4 + mkv.VintLen(head[4])
	if hlen > n || f.Size < int64(hlen) {
		return errors.New("stored cluster header is corrupt")
	}
	b = mkv.AppendID(b, mkv.IDCluster)
	b = mkv.AppendSize(b, f.Size-int64(hlen))
	m.buf = b
	if _, err := m.w.Write(b); err != nil {
		return err
	}
	if m.copyBuf == nil {
		m.copyBuf = make([]byte, 256<<10)
	}
	if _, err := io.CopyBuffer(m.w, io.NewSectionReader(payload, int64(hlen), f.Size-int64(hlen)), m.copyBuf); err != nil {
		return err
	}
	if live {
		behind := max(0, time.Now().UnixNano()-f.ServerNS) / 1e6
		after := mkv.Tags([]mkv.SimpleTag{
			{Name: "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", Value: strconv.FormatInt(behind, 10)},
			{Name: "AWS_KINESISVIDEO_CONTINUATION_TOKEN", Value: number},
		})
		if _, err := m.w.Write(after); err != nil {
			return err
		}
	}
	m.flush()
	return nil
}

// missing writes the exception tags for a fragment number that is not in
// the archive (unknown or expired).
func (m *mediaWriter) missing(number string) {
	m.w.Write(mkv.Tags([]mkv.SimpleTag{
		{Name: "AWS_KINESISVIDEO_FRAGMENT_NUMBER", Value: number},
		{Name: "AWS_KINESISVIDEO_ERROR_CODE", Value: "FRAGMENT_NOT_FOUND"},
		{Name: "AWS_KINESISVIDEO_ERROR_ID", Value: "4000"},
	}))
	m.flush()
}

// fail ends a response whose body has started with the error tags.
func (m *mediaWriter) fail(id int, code string) {
	m.w.Write(mkv.Tags([]mkv.SimpleTag{
		{Name: "AWS_KINESISVIDEO_ERROR_CODE", Value: code},
		{Name: "AWS_KINESISVIDEO_ERROR_ID", Value: strconv.Itoa(id)},
	}))
	m.flush()
}
