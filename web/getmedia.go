package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/session/limits"
	"github.com/labstack/echo/v4"
)

// getMediaIdle is how long a GetMedia reader waits without a new fragment
// before the response ends while no producer is connected (KVS: 3 s).
var getMediaIdle = 3 * time.Second

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
	st, err := s.lookup(c.Request().Context(), in.streamRef)
	if err != nil {
		return err
	}
	release, err := s.connect(infoOfC(c), limits.GetMediaConns, 0)
	if err != nil {
		return err
	}
	defer release()

	var src mediaSource
	if st.Archived() {
		src, err = s.archivedSource(st, sel)
	} else {
		src, err = s.liveSource(st, sel)
	}
	if err != nil {
		return err
	}
	mw := s.newMediaWriter(c)
	defer mw.close()
	s.startMedia(c, st)
	ctx := c.Request().Context()
	idleSince := time.Now()
	for ctx.Err() == nil {
		wake := s.store.Wake(st.ID)
		n, err := src.next(ctx, mw)
		if err != nil {
			mw.fail(5000, "INTERNAL_ERROR")
			infoOfC(c).Error = "INTERNAL_ERROR"
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
		p, err := mw.plan(&frags[i])
		if err != nil {
			return i, err
		}
		if err := mw.writeLive(p, &frags[i]); err != nil {
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
		payload := &byteSection{lf.Payload}
		p, err := mw.frame(lf.Header, &lf.Fragment, lf.Meta.Tags, payload, 0)
		if err != nil {
			return i, err
		}
		p.seg, p.frames = readerAtSegment{payload}, len(lf.Meta.Samples)
		if err := mw.writeLive(p, &lf.Fragment); err != nil {
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
	st, err := s.resolve(c.Request().Context(), in.streamRef)
	if err != nil {
		return err
	}
	if !st.Archived() {
		return noDataRetention(st.Name)
	}
	release, err := s.connect(infoOfC(c), limits.FragmentListConns, len(nums))
	if err != nil {
		return err
	}
	defer release()
	// Plan the whole body first: its length is known, so it goes out with a
	// Content-Length and the payloads straight from the segment files
	// (sendfile), with flat memory whatever the size.
	mw := s.newMediaWriter(c)
	defer mw.close()
	cutoff := st.Cutoff(time.Now())
	parts := make([]mediaPart, 0, len(nums))
	var total int64
	for i, n := range nums {
		f, err := s.store.Index.FragmentByNumber(st.ID, n)
		if err == nil && f.ServerNS < cutoff {
			err = fragments.ErrNotFound
		}
		var p mediaPart
		switch {
		case errors.Is(err, fragments.ErrNotFound):
			p.prefix = missingTags(in.Fragments[i])
		case err != nil:
			return err
		default:
			if p, err = mw.plan(f); err != nil {
				return err
			}
		}
		parts = append(parts, p)
		total += int64(len(p.prefix)) + p.n
	}
	c.Response().Header().Set(echo.HeaderContentLength, strconv.FormatInt(total, 10))
	s.startMedia(c, st)
	t := trackedOf(c)
	for _, p := range parts {
		if err := mw.writePart(p); err != nil {
			// The length is promised: all we can do is cut the response short.
			s.log.Warn("getMediaForFragmentList", "stream", st.Name, "request_id", requestID(c), "err", err)
			return nil
		}
		if p.seg != nil {
			t.sent(p.frames, -1)
		}
	}
	return nil
}

// startMedia sends the 200 with the stream's media type.
func (s *Server) startMedia(c echo.Context, st *fragments.Stream) {
	ct := st.MediaType
	if ct == "" {
		ct = "video/webm"
	}
	c.Response().Header().Set(echo.HeaderContentType, ct)
	c.Response().WriteHeader(http.StatusOK)
	c.Response().Flush()
}

// mediaWriter writes Matroska as GetMedia sends it: an EBML header and
// Segment (unknown size) with Info and Tracks whenever the track header
// changes, then per fragment a Tags element (fragment number, server and
// producer timestamps, the fragment's metadata), the Cluster with the frames
// as stored (its size made known), and for GetMedia a Tags element with
// MILLIS_BEHIND_NOW and the CONTINUATION_TOKEN.
type mediaWriter struct {
	s       *Server
	c       echo.Context
	last    *fragments.Header
	headers map[int64]*fragments.Header
	segs    map[int64]fragments.SegmentReader
	copyBuf []byte
}

func (s *Server) newMediaWriter(c echo.Context) *mediaWriter {
	return &mediaWriter{s: s, c: c, headers: map[int64]*fragments.Header{}, segs: map[int64]fragments.SegmentReader{}}
}

// close closes the segment files the writer opened.
func (m *mediaWriter) close() {
	for _, r := range m.segs {
		r.Close()
	}
}

// mediaPart is one fragment of output: framing bytes, then n payload bytes
// of a segment from off. A part without a segment is no fragment (the tags
// of a fragment not found).
type mediaPart struct {
	prefix []byte
	seg    fragments.SegmentReader
	off, n int64
	after  []byte
	frames int // the fragment's frames (metrics)
}

// plan frames a stored fragment.
func (m *mediaWriter) plan(f *fragments.Fragment) (mediaPart, error) {
	h := m.headers[f.HeaderID]
	if h == nil {
		var err error
		if h, err = m.s.store.Index.Header(f.HeaderID); err != nil {
			return mediaPart{}, err
		}
		m.headers[f.HeaderID] = h
	}
	meta, err := m.s.store.Index.Meta(f.StreamID, f.Ordinal)
	if err != nil {
		return mediaPart{}, err
	}
	seg := m.segs[f.SegmentID]
	if seg == nil {
		if seg, err = m.s.store.Payloads.Open(f.StreamID, f.SegmentID); err != nil {
			return mediaPart{}, err
		}
		m.segs[f.SegmentID] = seg
	}
	p, err := m.frame(h, f, meta.Tags, seg, f.Offset)
	p.seg, p.frames = seg, len(meta.Samples)
	return p, err
}

// frame builds the framing of a fragment whose stored Cluster starts at off in r.
func (m *mediaWriter) frame(h *fragments.Header, f *fragments.Fragment, tags []mkv.SimpleTag, r io.ReaderAt, off int64) (mediaPart, error) {
	var b []byte
	if h != m.last {
		b = append(b, mkv.EBMLHeader()...)
		b = mkv.AppendUnknownSizeHeader(b, mkv.IDSegment)
		b = append(b, mkv.Info(h.TimecodeScale)...)
		b = append(b, mkv.Tracks(h.Tracks)...)
		m.last = h
	}
	t := make([]mkv.SimpleTag, 0, 3+len(tags))
	t = append(t,
		mkv.SimpleTag{Name: "AWS_KINESISVIDEO_FRAGMENT_NUMBER", Value: strconv.FormatUint(f.Number, 10)},
		mkv.SimpleTag{Name: "AWS_KINESISVIDEO_SERVER_TIMESTAMP", Value: string(appendEpoch(nil, f.ServerNS))},
		mkv.SimpleTag{Name: "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", Value: string(appendEpoch(nil, f.ProducerNS))})
	t = append(t, tags...)
	b = append(b, mkv.Tags(t)...)

	// The stored Cluster starts with its ID and a size that may be unknown:
	// it goes out with its size known.
	var head [5]byte
	if _, err := r.ReadAt(head[:], off); err != nil {
		return mediaPart{}, err
	}
	hlen := int64(4 + mkv.VintLen(head[4]))
	if f.Size < hlen || head[4] == 0 {
		return mediaPart{}, errors.New("stored cluster header is corrupt")
	}
	b = mkv.AppendID(b, mkv.IDCluster)
	b = mkv.AppendSize(b, f.Size-hlen)
	return mediaPart{prefix: b, off: off + hlen, n: f.Size - hlen}, nil
}

// writePart writes one planned fragment. Payloads in files go out with
// sendfile where the response allows (a known Content-Length).
func (m *mediaWriter) writePart(p mediaPart) error {
	w := m.c.Response()
	if _, err := w.Write(p.prefix); err != nil {
		return err
	}
	if p.n > 0 {
		if f, ok := p.seg.(*os.File); ok {
			if _, err := f.Seek(p.off, io.SeekStart); err != nil {
				return err
			}
			// http.ResponseWriter's ReadFrom of an io.LimitedReader of a file is sendfile.
			if _, err := io.CopyN(w.Writer, f, p.n); err != nil {
				return err
			}
		} else {
			if m.copyBuf == nil {
				m.copyBuf = make([]byte, 256<<10)
			}
			if _, err := io.CopyBuffer(w, io.NewSectionReader(p.seg, p.off, p.n), m.copyBuf); err != nil {
				return err
			}
		}
	}
	if len(p.after) > 0 {
		if _, err := w.Write(p.after); err != nil {
			return err
		}
	}
	return nil
}

// writeLive writes one fragment of a GetMedia response (chunked): the part,
// then MILLIS_BEHIND_NOW and the CONTINUATION_TOKEN, flushed at once.
func (m *mediaWriter) writeLive(p mediaPart, f *fragments.Fragment) error {
	behind := time.Duration(max(0, time.Now().UnixNano()-f.ServerNS))
	p.after = mkv.Tags([]mkv.SimpleTag{
		{Name: "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", Value: strconv.FormatInt(behind.Milliseconds(), 10)},
		{Name: "AWS_KINESISVIDEO_CONTINUATION_TOKEN", Value: strconv.FormatUint(f.Number, 10)},
	})
	if err := m.writePart(p); err != nil {
		return err
	}
	m.c.Response().Flush()
	trackedOf(m.c).sent(p.frames, behind)
	return nil
}

// readerAtSegment lets an in-memory payload be written like a stored one.
type readerAtSegment struct{ io.ReaderAt }

func (readerAtSegment) Close() error { return nil }

// missingTags are the exception tags for a fragment number that is not in
// the archive (unknown or expired).
func missingTags(number string) []byte {
	return mkv.Tags([]mkv.SimpleTag{
		{Name: "AWS_KINESISVIDEO_FRAGMENT_NUMBER", Value: number},
		{Name: "AWS_KINESISVIDEO_ERROR_CODE", Value: "FRAGMENT_NOT_FOUND"},
		{Name: "AWS_KINESISVIDEO_ERROR_ID", Value: "4000"},
	})
}

// fail ends a chunked response whose body has started with the error tags.
func (m *mediaWriter) fail(id int, code string) {
	m.c.Response().Write(mkv.Tags([]mkv.SimpleTag{
		{Name: "AWS_KINESISVIDEO_ERROR_CODE", Value: code},
		{Name: "AWS_KINESISVIDEO_ERROR_ID", Value: strconv.Itoa(id)},
	}))
	m.c.Response().Flush()
}
