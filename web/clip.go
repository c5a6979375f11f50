package web

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	mp4clip "github.com/kvsgate/kvsgate/clip"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/labstack/echo/v4"
)

// Response headers of GetClip beyond the API's: a clip cut short of its
// range (by the fragment or byte limit, or at a codec private data change)
// says why and where the next clip would start, since the API has no other
// way to say so.
const (
	// headerClipTruncated: fragments=<n>, bytes=<limit>, codec-change or
	// gap (see mp4clip.Cut). Absent when the clip holds the whole range.
	headerClipTruncated = "x-amzn-kvsgate-clip-truncated"
	// headerClipNext: the timestamp (epoch seconds with nanoseconds, in the
	// selector's source) of the first fragment left out: a GetClip with it
	// as StartTimestamp continues exactly where this clip ends.
	headerClipNext = "x-amzn-kvsgate-clip-next-timestamp"
)

type getClipIn struct {
	streamRef
	ClipFragmentSelector *fragmentSelectorJSON `json:"ClipFragmentSelector"`
}

// getClip is POST /getClip: an MP4 file of a time range (package clip).
func (s *Server) getClip(c echo.Context) error {
	var in getClipIn
	if err := s.readJSON(c, &in); err != nil {
		return err
	}
	sel := in.ClipFragmentSelector
	if sel == nil {
		return invalidArg("ClipFragmentSelector is required")
	}
	req := mp4clip.Request{Limits: mp4clip.Limits{MaxFragments: s.cfg.ClipMaxFragments, MaxBytes: s.cfg.ClipMaxBytes}}
	switch sel.FragmentSelectorType {
	case "PRODUCER_TIMESTAMP":
		req.Producer = true
	case "SERVER_TIMESTAMP":
	default:
		return invalidArg("FragmentSelectorType must be PRODUCER_TIMESTAMP or SERVER_TIMESTAMP")
	}
	tr := sel.TimestampRange
	if tr == nil || tr.StartTimestamp == nil || tr.EndTimestamp == nil {
		return invalidArg("TimestampRange with StartTimestamp and EndTimestamp is required")
	}
	now := time.Now()
	req.StartNS, req.EndNS = tr.StartTimestamp.UnixNano(), tr.EndTimestamp.UnixNano()
	switch {
	case req.EndNS <= req.StartNS:
		return invalidArg("EndTimestamp must be after StartTimestamp")
	case req.EndNS-req.StartNS > int64(24*time.Hour):
		return invalidArg("EndTimestamp must be within 24 hours of StartTimestamp")
	case !req.Producer && req.EndNS > now.UnixNano():
		return invalidArg("with SERVER_TIMESTAMP, EndTimestamp must not be in the future")
	}
	// Timestamps are sent in milliseconds but kept in ns: the bounds cover
	// whole milliseconds, as in ListFragments, so a range ending at a
	// fragment's timestamp as listed includes that fragment.
	req.StartNS -= req.StartNS % 1e6
	req.EndNS += 1e6 - 1 - req.EndNS%1e6
	st, err := s.resolve(c.Request().Context(), in.streamRef)
	if err != nil {
		return err
	}
	if !st.Archived() {
		return noDataRetention(st.Name)
	}
	req.StreamID, req.MinServerNS = st.ID, st.Cutoff(now)

	cl, err := mp4clip.New(clipIndex{s.store.Index, s}, s.store.Payloads, req)
	if errors.Is(err, mp4clip.ErrNoFragments) {
		return notFound("no fragments found in the requested range of stream %s", st.Name)
	}
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := s.admit(infoOfC(c), cl.Fragments, cl.Fragments); err != nil {
		return err
	}

	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "video/mp4")
	h.Set(echo.HeaderContentLength, strconv.FormatInt(cl.Size, 10))
	switch cl.Cut {
	case mp4clip.NotCut:
	case mp4clip.CutFragments:
		h.Set(headerClipTruncated, "fragments="+strconv.Itoa(cl.Fragments))
	case mp4clip.CutBytes:
		h.Set(headerClipTruncated, "bytes="+strconv.FormatInt(req.Limits.MaxBytes, 10))
	default:
		h.Set(headerClipTruncated, string(cl.Cut))
	}
	if cl.Cut != mp4clip.NotCut {
		h.Set(headerClipNext, epochNanos(cl.NextNS))
	}
	c.Response().WriteHeader(http.StatusOK)
	// The http.ResponseWriter itself: its ReadFrom is sendfile.
	if n, err := cl.WriteTo(c.Response().Writer); err != nil {
		// The length is promised: all we can do is cut the response short.
		s.log.Warn("getClip", "stream", st.Name, "request_id", requestID(c), "written", n, "size", cl.Size, "err", err)
	}
	return nil
}

// clipIndex reads track headers through the server's cache.
type clipIndex struct {
	fragments.Index
	s *Server
}

func (x clipIndex) Header(id int64) (*fragments.Header, error) { return x.s.header(id) }

// epochNanos formats unix ns as epoch seconds with nine decimals, which
// Timestamp parses exactly.
func epochNanos(ns int64) string {
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	f := strconv.FormatInt(frac+1e9, 10)[1:]
	return strconv.FormatInt(sec, 10) + "." + f
}
