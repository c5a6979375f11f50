package web

import (
	"encoding/base64"
	"encoding/binary"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/images"
	"github.com/kvsgate/kvsgate/session"
	"github.com/labstack/echo/v4"
)

// GetImages limits.
const (
	imagesMaxRange     = 300 * time.Second
	imagesMinInterval  = 200 // ms
	imagesMaxInterval  = math.MaxInt32
	imagesPageSize     = 25
	imagesMaxResults   = 100
	imagesTokenVersion = 1
)

type getImagesIn struct {
	streamRef
	ImageSelectorType string            `json:"ImageSelectorType"`
	StartTimestamp    *Timestamp        `json:"StartTimestamp"`
	EndTimestamp      *Timestamp        `json:"EndTimestamp"` // the SDKs' name; the reference's EndTimeStamp matches too (case-insensitive)
	SamplingInterval  *int64            `json:"SamplingInterval"`
	Format            string            `json:"Format"`
	FormatConfig      map[string]string `json:"FormatConfig"`
	WidthPixels       *int64            `json:"WidthPixels"`
	HeightPixels      *int64            `json:"HeightPixels"`
	MaxResults        *int64            `json:"MaxResults"`
	NextToken         *string           `json:"NextToken"`
}

// imagesGrid is the sample times of a GetImages request, t_k = Start +
// k x Interval for every t_k <= End (both ends included: a range shorter
// than the interval still has its StartTimestamp image), on one timestamp
// source; Next is the first k of the page. It is also what a NextToken
// holds.
type imagesGrid struct {
	By               fragments.Selector
	StreamID         int64
	Start, End, Ival int64 // unix ns; Ival > 0
	Next             int64
	count            int64
}

// valid checks the grid's own limits (requests and tokens alike).
func (g *imagesGrid) valid() bool {
	if g.By != fragments.ByServer && g.By != fragments.ByProducer {
		return false
	}
	if g.End <= g.Start || g.End-g.Start > int64(imagesMaxRange) || g.Start < 0 {
		return false
	}
	if g.Ival < imagesMinInterval*int64(time.Millisecond) || g.Ival > imagesMaxInterval*int64(time.Millisecond) || g.Ival%int64(time.Millisecond) != 0 {
		return false
	}
	g.count = (g.End-g.Start)/g.Ival + 1
	return g.Next >= 0 && g.Next < g.count
}

// encodeImagesToken makes a NextToken: the grid and where the next page
// starts, so that it continues exactly there without server state. It is
// unpadded base64 in the standard alphabet (the API's token pattern is
// [a-zA-Z0-9+/]+={0,2}).
func encodeImagesToken(g imagesGrid) string {
	b := []byte{imagesTokenVersion, byte(g.By)}
	for _, v := range []int64{g.StreamID, g.Start, g.End, g.Ival, g.Next} {
		b = binary.AppendVarint(b, v)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

func decodeImagesToken(t string) (imagesGrid, error) {
	var g imagesGrid
	bad := invalidArg("NextToken is not a GetImages token")
	if len(t) == 0 || len(t) > 4096 {
		return g, bad
	}
	// Strict: one token per grid (no slack in the last character's bits).
	b, err := base64.RawStdEncoding.Strict().DecodeString(t)
	if err != nil || len(b) < 2 || b[0] != imagesTokenVersion {
		return g, bad
	}
	g.By = fragments.Selector(b[1])
	b = b[2:]
	for _, p := range []*int64{&g.StreamID, &g.Start, &g.End, &g.Ival, &g.Next} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return g, bad
		}
		*p, b = v, b[n:]
	}
	if len(b) != 0 || g.Next < 1 || !g.valid() {
		return g, bad
	}
	return g, nil
}

// imagesRequest is a checked GetImages request.
type imagesRequest struct {
	grid imagesGrid
	spec images.Spec
	page int64
}

// checkImagesRequest validates every parameter but the stream.
func checkImagesRequest(in *getImagesIn) (*imagesRequest, error) {
	rq := &imagesRequest{page: imagesPageSize}
	switch in.ImageSelectorType {
	case "PRODUCER_TIMESTAMP":
		rq.grid.By = fragments.ByProducer
	case "SERVER_TIMESTAMP":
		rq.grid.By = fragments.ByServer
	case "":
		return nil, invalidArg("ImageSelectorType is required")
	default:
		return nil, invalidArg("ImageSelectorType must be PRODUCER_TIMESTAMP or SERVER_TIMESTAMP")
	}
	if in.StartTimestamp == nil || in.EndTimestamp == nil {
		return nil, invalidArg("StartTimestamp and EndTimestamp are required")
	}
	rq.grid.Start, rq.grid.End = in.StartTimestamp.UnixNano(), in.EndTimestamp.UnixNano()
	if rq.grid.End <= rq.grid.Start {
		return nil, invalidArg("EndTimestamp must be after StartTimestamp")
	}
	if rq.grid.End-rq.grid.Start > int64(imagesMaxRange) {
		return nil, invalidArg("the range from StartTimestamp to EndTimestamp must be at most 300 seconds")
	}
	if in.SamplingInterval == nil {
		return nil, invalidArg("SamplingInterval is required")
	}
	if iv := *in.SamplingInterval; iv < imagesMinInterval || iv > imagesMaxInterval {
		return nil, invalidArg("SamplingInterval must be at least 200 milliseconds (and at most %d)", imagesMaxInterval)
	}
	rq.grid.Ival = *in.SamplingInterval * int64(time.Millisecond)
	switch in.Format {
	case "JPEG":
		rq.spec.Format = images.JPEG
	case "PNG":
		rq.spec.Format = images.PNG
	case "":
		return nil, invalidArg("Format is required")
	default:
		return nil, invalidArg("Format must be JPEG or PNG")
	}
	if len(in.FormatConfig) > 1 {
		return nil, invalidArg("FormatConfig holds at most one entry (JPEGQuality)")
	}
	for k, v := range in.FormatConfig {
		if k != "JPEGQuality" {
			return nil, invalidArg("FormatConfig key %.40q is not JPEGQuality", k)
		}
		q, err := strconv.Atoi(v)
		if err != nil || q < 1 || q > 100 || v != strconv.Itoa(q) {
			return nil, invalidArg("JPEGQuality %.40q must be an integer from 1 to 100", v)
		}
		rq.spec.Quality = q
	}
	if rq.spec.Format == images.JPEG && rq.spec.Quality == 0 {
		rq.spec.Quality = images.DefaultQuality
	}
	if p := in.WidthPixels; p != nil {
		if *p < 1 || *p > images.MaxWidth {
			return nil, invalidArg("WidthPixels must be between 1 and %d", images.MaxWidth)
		}
		rq.spec.Width = int(*p)
	}
	if p := in.HeightPixels; p != nil {
		if *p < 1 || *p > images.MaxHeight {
			return nil, invalidArg("HeightPixels must be between 1 and %d", images.MaxHeight)
		}
		rq.spec.Height = int(*p)
	}
	if p := in.MaxResults; p != nil {
		if *p < 1 || *p > imagesMaxResults {
			return nil, invalidArg("MaxResults must be between 1 and %d", imagesMaxResults)
		}
		rq.page = min(*p, imagesPageSize)
	}
	if !rq.grid.valid() {
		return nil, invalidArg("StartTimestamp is out of range")
	}
	return rq, nil
}

// getImages answers POST /getImages. The body is written by hand: it is
// mostly base64 images, which encoding/json would scan byte by byte.
func (s *Server) getImages(c echo.Context) error {
	in := new(getImagesIn)
	if err := s.readJSON(c, in); err != nil {
		return err
	}
	rq, err := checkImagesRequest(in)
	if err != nil {
		return err
	}
	st, err := s.resolve(c.Request().Context(), in.streamRef)
	if err != nil {
		return err
	}
	if !st.Archived() {
		return noDataRetention(st.Name)
	}
	// Credits: 400 + MaxResults metadata, MaxResults media (the
	// guide's table; MaxResults defaults to the page size).
	asked := imagesPageSize
	if in.MaxResults != nil {
		asked = int(*in.MaxResults)
	}
	if err := s.admit(infoOfC(c), 400+asked, asked); err != nil {
		return err
	}
	rq.grid.StreamID = st.ID
	if in.NextToken != nil {
		g, err := decodeImagesToken(*in.NextToken)
		if err != nil || g.StreamID != st.ID {
			return invalidArg("NextToken is not valid for this stream")
		}
		rq.grid = g
	}
	body, err := s.imagesPage(c, st, rq)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// imagesPage makes one page of images and its JSON.
func (s *Server) imagesPage(c echo.Context, st *fragments.Stream, rq *imagesRequest) ([]byte, error) {
	g := rq.grid
	n := min(rq.page, g.count-g.Next)
	times := make([]int64, n)
	for i := range times {
		times[i] = g.Start + (g.Next+int64(i))*g.Ival
	}
	frags, err := s.coveringFragments(st, g.By, times)
	if err != nil {
		return nil, err
	}

	// The frame on screen at each time: the last frame of the first track
	// presented at or before it, in the newest fragment whose first track
	// covers it. A fragment's timestamp is its earliest frame of any track,
	// so where audio leads the video a time just after the timestamp is
	// still the previous fragment's last picture.
	var reqs []images.Request
	slot := make([]int, n) // index into reqs, or -1: NO_MEDIA
	byOrdinal := map[int64]*images.Fragment{}
	fragment := func(f *fragments.Fragment) (*images.Fragment, error) {
		if imf := byOrdinal[f.Ordinal]; imf != nil {
			return imf, nil
		}
		meta, err := s.store.Index.Meta(f.StreamID, f.Ordinal)
		if err != nil {
			return nil, err
		}
		h, err := s.header(f.HeaderID)
		if err != nil {
			return nil, err
		}
		imf := &images.Fragment{StreamID: f.StreamID, Number: f.Number, Header: h, Samples: meta.Samples,
			Open: func() (io.ReaderAt, io.Closer, error) {
				fr, err := s.store.OpenFragment(f)
				if err != nil {
					return nil, nil, err
				}
				return fr, fr, nil
			}}
		byOrdinal[f.Ordinal] = imf
		return imf, nil
	}
	for i, t := range times {
		slot[i] = -1
		for j := len(frags[i]) - 1; j >= 0; j-- { // the newest first
			f := frags[i][j]
			imf, err := fragment(f)
			if err != nil {
				return nil, err
			}
			rel := t - fragmentStart(f, g.By)
			lead := session.FirstTrackLead(imf.Samples)
			// (A fragment of no duration covers its first frame's time.)
			if covers := rel >= lead && (rel < lead+f.DurationNS || rel == lead); !covers {
				continue
			}
			if k := images.FrameAt(imf.Samples, rel); k >= 0 {
				slot[i] = len(reqs)
				reqs = append(reqs, images.Request{Frag: imf, Sample: k})
				break
			}
		}
	}
	var res []images.Result
	if len(reqs) > 0 {
		if res, err = s.images.Render(c.Request().Context(), rq.spec, reqs); err != nil {
			return nil, err
		}
	}

	// The guide's 100 MB for a GetImages response: the page ends before
	// the entry that would take it past ImagesMaxBytes (it always has one),
	// and its NextToken continues there.
	size := 64
	for i := range times {
		entry := 64
		if slot[i] >= 0 {
			entry += base64.StdEncoding.EncodedLen(len(res[slot[i]].Image))
		}
		if i > 0 && int64(size+entry) > s.cfg.ImagesMaxBytes {
			times, n = times[:i], int64(i)
			break
		}
		size += entry
	}
	b := make([]byte, 0, size)
	b = append(b, `{"Images":[`...)
	for i, t := range times {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"TimeStamp":`...)
		b = appendEpoch(b, t)
		switch {
		case slot[i] < 0:
			b = append(b, `,"Error":"NO_MEDIA"}`...)
		case res[slot[i]].Err != nil:
			b = append(b, `,"Error":"MEDIA_ERROR"}`...)
		default:
			b = append(b, `,"ImageContent":"`...)
			b = base64.StdEncoding.AppendEncode(b, res[slot[i]].Image)
			b = append(b, `"}`...)
		}
	}
	b = append(b, ']')
	if next := g.Next + n; next < g.count {
		g.Next = next
		b = append(b, `,"NextToken":"`...)
		b = append(b, encodeImagesToken(g)...)
		b = append(b, '"')
	}
	b = append(b, '}')
	return b, nil
}

func fragmentStart(f *fragments.Fragment, by fragments.Selector) int64 {
	if by == fragments.ByProducer {
		return f.ProducerNS
	}
	return f.ServerNS
}

// coveringFragments returns, per time (ascending), the retained fragments
// that may cover it, in the index's order (by start on the selected
// timestamp, then by ingest; where fragments overlap, the later one is the
// newer picture): those that start at or before t and end after it, or
// less than their length before it. Whether a fragment's first track
// covers t depends on where that track begins in it (see imagesPage),
// which is not in the index; a track that begins later than the
// fragment's length after its timestamp would be absurd.
func (s *Server) coveringFragments(st *fragments.Stream, by fragments.Selector, times []int64) ([][]*fragments.Fragment, error) {
	out := make([][]*fragments.Fragment, len(times))
	if len(times) == 0 {
		return out, nil
	}
	span := max(int64(s.store.Config().MaxFragmentDuration), int64(20*time.Second))
	q := fragments.FragmentQuery{StreamID: st.ID, By: by, From: max(0, times[0]-span), To: times[len(times)-1],
		AfterTS: -1, MinServerNS: st.Cutoff(time.Now()), Limit: 1000}
	for {
		frags, err := s.store.Index.Fragments(q)
		if err != nil {
			return nil, err
		}
		for i := range frags {
			f := &frags[i]
			start := fragmentStart(f, by)
			for k, t := range times {
				if start <= t && (t < start+2*f.DurationNS || t == start) {
					out[k] = append(out[k], f)
				}
			}
		}
		if len(frags) < q.Limit {
			return out, nil
		}
		last := &frags[len(frags)-1]
		q.AfterTS, q.AfterOrdinal = fragmentStart(last, by), last.Ordinal
	}
}
