package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/hls"
	"github.com/kvsgate/kvsgate/session"
	"github.com/labstack/echo/v4"
)

// liveWindow is how recent a fragment must be for a LIVE session to start.
var liveWindow = 30 * time.Second

type hlsSessionIn struct {
	streamRef
	ContainerFormat          string                `json:"ContainerFormat"`
	DiscontinuityMode        string                `json:"DiscontinuityMode"`
	DisplayFragmentTimestamp string                `json:"DisplayFragmentTimestamp"`
	Expires                  *int                  `json:"Expires"`
	HLSFragmentSelector      *fragmentSelectorJSON `json:"HLSFragmentSelector"`
	MaxMediaPlaylistResults  *int                  `json:"MaxMediaPlaylistFragmentResults"`
	PlaybackMode             string                `json:"PlaybackMode"`
}

// fragmentSelectorJSON is HLSFragmentSelector / DASHFragmentSelector.
type fragmentSelectorJSON struct {
	FragmentSelectorType string          `json:"FragmentSelectorType"`
	TimestampRange       *timestampRange `json:"TimestampRange"`
}

type hlsSessionOut struct {
	HLSStreamingSessionURL string `json:"HLSStreamingSessionURL"`
}

// sessionParams are the parameters HLS and DASH sessions share.
type sessionParams struct {
	ref        streamRef
	mode       string
	selector   *fragmentSelectorJSON
	expires    *int
	maxResults *int
}

// newSession validates what HLS and DASH sessions share and builds the
// session: mode, selector, range, expiry, max results; the stream, its
// retention and that the session has fragments to show.
func (s *Server) newSession(ctx context.Context, p sessionParams, proto session.Protocol) (*session.Session, *fragments.Stream, error) {
	sess := session.Session{Protocol: proto}
	switch p.mode {
	case "", "LIVE":
		sess.Mode = session.Live
	case "LIVE_REPLAY":
		sess.Mode = session.LiveReplay
	case "ON_DEMAND":
		sess.Mode = session.OnDemand
	default:
		return nil, nil, invalidArg("PlaybackMode must be LIVE, LIVE_REPLAY or ON_DEMAND")
	}
	if sel := p.selector; sel != nil {
		switch sel.FragmentSelectorType {
		case "", "SERVER_TIMESTAMP":
		case "PRODUCER_TIMESTAMP":
			sess.Producer = true
		default:
			return nil, nil, invalidArg("FragmentSelectorType must be PRODUCER_TIMESTAMP or SERVER_TIMESTAMP")
		}
		if tr := sel.TimestampRange; tr != nil {
			if sess.Mode == session.Live {
				return nil, nil, invalidArg("a TimestampRange cannot be given in LIVE mode")
			}
			if tr.StartTimestamp == nil {
				return nil, nil, invalidArg("TimestampRange needs a StartTimestamp")
			}
			sess.StartNS = tr.StartTimestamp.UnixNano()
			if tr.EndTimestamp != nil {
				sess.EndNS, sess.HasEnd = tr.EndTimestamp.UnixNano(), true
				if sess.EndNS <= sess.StartNS {
					return nil, nil, invalidArg("EndTimestamp must be after StartTimestamp")
				}
				if sess.EndNS-sess.StartNS > int64(24*time.Hour) {
					return nil, nil, invalidArg("the timestamp range must span at most 24 hours")
				}
			}
		}
	}
	if sess.Mode != session.Live && (p.selector == nil || p.selector.TimestampRange == nil) {
		return nil, nil, invalidArg("%s needs a fragment selector with a TimestampRange", p.mode)
	}
	if sess.Mode == session.OnDemand && !sess.HasEnd {
		return nil, nil, invalidArg("ON_DEMAND needs an EndTimestamp")
	}
	expires := 300
	if p.expires != nil {
		expires = *p.expires
		if expires < 300 || expires > 43200 {
			return nil, nil, invalidArg("Expires must be between 300 and 43200 seconds")
		}
	}
	sess.MaxResults = 5
	if sess.Mode == session.OnDemand {
		sess.MaxResults = 1000
	}
	if p.maxResults != nil {
		sess.MaxResults = *p.maxResults
		if sess.MaxResults < 1 || sess.MaxResults > 5000 {
			return nil, nil, invalidArg("the maximum number of fragment results must be between 1 and 5000")
		}
	}
	st, err := s.resolve(ctx, p.ref)
	if err != nil {
		return nil, nil, err
	}
	if !st.Archived() {
		return nil, nil, noDataRetention(st.Name)
	}
	sess.StreamID = st.ID
	now := time.Now()
	if sess.Mode == session.Live {
		last, err := s.store.Index.LastOrdinal(st.ID)
		if err != nil {
			return nil, nil, err
		}
		sess.BaseOrdinal = max(1, last-int64(sess.MaxResults)+1)
	}
	created := session.New(sess, now, time.Duration(expires)*time.Second)
	return created, st, nil
}

// firstFragment returns the fragment a new session starts with (the newest
// for LIVE, which must be under 30 s old), or ResourceNotFoundException.
func (s *Server) firstFragment(sess *session.Session, st *fragments.Stream) (*session.Entry, error) {
	now := time.Now()
	w, err := sess.Compute(s.windows(), st, now)
	if err != nil {
		return nil, err
	}
	if sess.Mode == session.LiveReplay && len(w.Entries) == 0 {
		// Nothing has played yet: look at the range itself.
		probe := *sess
		probe.Mode = session.OnDemand
		probe.MaxResults = 1
		if w, err = probe.Compute(s.windows(), st, now); err != nil {
			return nil, err
		}
	}
	if len(w.Entries) == 0 {
		return nil, notFound("no fragments found in the requested range of stream %s", st.Name)
	}
	e := &w.Entries[len(w.Entries)-1]
	if sess.Mode == session.Live {
		if now.UnixNano()-e.ServerNS > int64(liveWindow) {
			return nil, notFound("stream %s had no fragment in the last %s", st.Name, liveWindow)
		}
	} else {
		e = &w.Entries[0]
	}
	return e, nil
}

// firstPlayable is firstFragment and its track header, which must meet the
// track requirements of the container the session plays in.
func (s *Server) firstPlayable(sess *session.Session, st *fragments.Stream, c hls.Container) (*session.Entry, *fragments.Header, error) {
	first, err := s.firstFragment(sess, st)
	if err != nil {
		return nil, nil, err
	}
	h, err := s.header(first.HeaderID)
	if err != nil {
		return nil, nil, err
	}
	if err := hls.CheckTracks(h, c); err != nil {
		return nil, nil, err
	}
	return first, h, nil
}

func (s *Server) getHLSStreamingSessionURL(ctx context.Context, in *hlsSessionIn) (*hlsSessionOut, error) {
	sess, st, err := s.newSession(ctx, sessionParams{ref: in.streamRef, mode: in.PlaybackMode, selector: in.HLSFragmentSelector,
		expires: in.Expires, maxResults: in.MaxMediaPlaylistResults}, session.HLS)
	if err != nil {
		return nil, err
	}
	container := hls.FMP4
	switch in.ContainerFormat {
	case "", "FRAGMENTED_MP4":
	case "MPEG_TS":
		container = hls.MPEGTS
	default:
		return nil, invalidArg("ContainerFormat must be FRAGMENTED_MP4 or MPEG_TS")
	}
	sess.Container = uint8(container)
	switch in.DiscontinuityMode {
	case "":
		if sess.Producer {
			sess.Discontinuity = session.DiscontinuityNever
		}
	case "ALWAYS":
	case "NEVER":
		sess.Discontinuity = session.DiscontinuityNever
	case "ON_DISCONTINUITY":
		sess.Discontinuity = session.DiscontinuityOnGap
	default:
		return nil, invalidArg("DiscontinuityMode must be ALWAYS, NEVER or ON_DISCONTINUITY")
	}
	if sess.DisplayTimestamp, err = alwaysNever("DisplayFragmentTimestamp", in.DisplayFragmentTimestamp); err != nil {
		return nil, err
	}
	if _, _, err := s.firstPlayable(sess, st, container); err != nil {
		return nil, err
	}
	if s.lowLatency(sess) {
		s.store.WantPartial(st.ID, time.Now()) // its player will want the fragment in progress
	}
	return &hlsSessionOut{HLSStreamingSessionURL: s.DataEndpoint() + "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=" + s.sessions.Seal(sess)}, nil
}

func (s *Server) header(id int64) (*fragments.Header, error) {
	if h, ok := s.headers.Load(id); ok {
		return h.(*fragments.Header), nil
	}
	h, err := s.store.Index.Header(id)
	if err != nil {
		return nil, err
	}
	s.headers.Store(id, h)
	return h, nil
}

// hlsRequest is an opened session resource request.
type hlsRequest struct {
	c     echo.Context
	sess  *session.Session
	st    *fragments.Stream
	token string
}

// openSession checks the request's SessionToken and loads its stream.
// Session resources are not SigV4-signed: as in KVS, the sealed token is
// the authority (players cannot sign).
func (s *Server) openSession(c echo.Context, proto session.Protocol) (*hlsRequest, error) {
	token := c.QueryParam("SessionToken")
	sess, err := s.sessions.Open(token, time.Now())
	if err != nil {
		return nil, err
	}
	if sess.Protocol != proto {
		return nil, session.ErrInvalid
	}
	st, err := s.sessionStream(sess.StreamID, time.Now())
	if err != nil {
		if errors.Is(err, fragments.ErrNotFound) {
			return nil, notFound("the session's stream no longer exists")
		}
		return nil, err
	}
	info := infoOfC(c)
	info.noteStream(st)
	info.Session = sess
	info.LowLatency = proto == session.HLS && (c.QueryParam("_HLS_msn") != "" || c.QueryParam("Part") != "")
	meta, media := sessionCredits(info)
	if err := s.admit(info, meta, media); err != nil {
		return nil, err
	}
	return &hlsRequest{c: c, sess: sess, st: st, token: token}, nil
}

// windows is the index to compute session windows with (windowIndex).
func (s *Server) windows() fragments.Index {
	return windowIndex{Index: s.store.Index, c: &s.windowRows}
}

// sessionStreamTTL is how long session requests reuse a stream looked up
// by id. Every playlist and segment request of every session names its
// stream, and with 1000 LIVE sessions the lookup was over a quarter of the
// server's CPU (docs/PERFORMANCE.md). A deleted stream, or a change of its
// retention, reaches its sessions up to this much later (KVS, too, deletes
// streams asynchronously).
const sessionStreamTTL = time.Second

type cachedStream struct {
	st *fragments.Stream
	at time.Time
}

// sessionStream returns stream id as looked up at most sessionStreamTTL ago.
func (s *Server) sessionStream(id int64, now time.Time) (*fragments.Stream, error) {
	if v, ok := s.streamsByID.Load(id); ok {
		if c := v.(cachedStream); now.Sub(c.at) < sessionStreamTTL && now.Sub(c.at) >= 0 {
			return c.st, nil
		}
	}
	st, err := s.store.Index.StreamByID(id)
	if err != nil {
		s.streamsByID.Delete(id)
		return nil, err
	}
	s.streamsByID.Store(id, cachedStream{st, now})
	return st, nil
}

func (r *hlsRequest) uri(resource string, params ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		v.Set(params[i], params[i+1])
	}
	q := v.Encode()
	if q != "" {
		q += "&"
	}
	return resource + "?" + q + "SessionToken=" + r.token
}

// trackParam reads TrackNumber (1-based; def if absent) against a header.
func trackParam(c echo.Context, h *fragments.Header, def int) (int, error) {
	v := c.QueryParam("TrackNumber")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > len(h.Tracks) {
		return 0, invalidArg("TrackNumber %.20q is not a track of the stream", v)
	}
	return n, nil
}

// send writes a buffered resource with its length, type and caching.
func send(c echo.Context, contentType string, cacheSeconds int, body []byte) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, contentType)
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	if cacheSeconds > 0 {
		h.Set("Cache-Control", "max-age="+strconv.Itoa(cacheSeconds))
	} else {
		h.Set("Cache-Control", "no-cache, no-store")
	}
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err := c.Response().Write(body)
	return err
}

// cacheFor is how long a session resource may be cached: segments and VOD
// playlists until the session expires; live playlists not at all.
func (r *hlsRequest) cacheFor(immutable bool) int {
	if !immutable {
		return 0
	}
	return int(max(0, (r.sess.ExpiresNS-time.Now().UnixNano())/1e9))
}

const mpegURL = "application/vnd.apple.mpegurl"

func (s *Server) hlsMasterPlaylist(c echo.Context) error {
	r, err := s.openSession(c, session.HLS)
	if err != nil {
		return err
	}
	w, err := r.sess.Compute(s.windows(), r.st, time.Now())
	if err != nil {
		return err
	}
	if len(w.Entries) == 0 {
		return notFound("no fragments in the session yet")
	}
	last := &w.Entries[len(w.Entries)-1]
	h, err := s.header(last.HeaderID)
	if err != nil {
		return err
	}
	meta, err := s.store.Index.Meta(r.st.ID, last.Ordinal)
	if err != nil {
		return err
	}
	info, err := hls.Describe(h, meta.Samples)
	if err != nil {
		return err
	}
	m := &hls.MasterPlaylist{Variant: hls.Variant{Codecs: info.Codecs, Width: info.Width, Height: info.Height, FrameRate: info.FrameRate}}
	// Bandwidth from the window's fragment sizes and durations.
	var size, dur int64
	for _, e := range w.Entries {
		size += e.Size
		dur += e.DurationNS
		if e.DurationNS > 0 {
			m.Variant.Bandwidth = max(m.Variant.Bandwidth, e.Size*8*1e9/e.DurationNS)
		}
	}
	if dur > 0 {
		m.Variant.AverageBandwidth = size * 8 * 1e9 / dur
	}
	if hls.Container(r.sess.Container) == hls.MPEGTS {
		m.Variant.URI = r.uri("getHLSMediaPlaylist.m3u8")
	} else {
		m.Variant.URI = r.uri("getHLSMediaPlaylist.m3u8", "TrackNumber", "1")
		if len(h.Tracks) > 1 {
			m.AudioURI = r.uri("getHLSMediaPlaylist.m3u8", "TrackNumber", "2")
		}
	}
	var buf bytes.Buffer
	hls.WriteMasterPlaylist(&buf, m)
	return send(c, mpegURL, r.cacheFor(w.Ended), buf.Bytes())
}

func (s *Server) hlsMediaPlaylist(c echo.Context) error {
	r, err := s.openSession(c, session.HLS)
	if err != nil {
		return err
	}
	if s.lowLatency(r.sess) {
		return s.llMediaPlaylist(r)
	}
	w, err := r.sess.Compute(s.windows(), r.st, time.Now())
	if err != nil {
		return err
	}
	track, err := mediaPlaylistTrack(r)
	if err != nil {
		return err
	}
	p := r.mediaPlaylist(w, track)
	return r.sendPlaylist(p, w.Ended)
}

// mediaPlaylistTrack is a media playlist's TrackNumber: 1 or 2 for fMP4
// (renditions are demuxed), 0 for MPEG-TS (all tracks).
func mediaPlaylistTrack(r *hlsRequest) (int, error) {
	if hls.Container(r.sess.Container) == hls.MPEGTS {
		return 0, nil
	}
	v := r.c.QueryParam("TrackNumber")
	track, err := strconv.Atoi(v)
	if err != nil || track < 1 || track > 2 {
		return 0, invalidArg("TrackNumber %.20q is not a track of the stream", v)
	}
	return track, nil
}

// mediaPlaylist lists a window's fragments for track (0: MPEG-TS).
func (r *hlsRequest) mediaPlaylist(w *session.Window, track int) *hls.MediaPlaylist {
	ts := track == 0
	p := &hls.MediaPlaylist{MediaSequence: w.MediaSequence, DiscontinuitySequence: w.DiscontinuitySequence,
		VOD: r.sess.Mode == session.OnDemand, Ended: w.Ended}
	// Segment URIs differ only in the fragment number: build them from a
	// prefix and a suffix (a playlist may list 5000 fragments).
	segPrefix, suffix := "getTSFragment.ts?FragmentNumber=", "&SessionToken="+r.token
	if !ts {
		segPrefix = "getMP4MediaFragment.mp4?FragmentNumber="
		suffix = "&TrackNumber=" + strconv.Itoa(track) + suffix
	}
	// EXT-X-MAP names the track header (its init segment), not a
	// fragment: the URI stays the same across reloads while the window
	// slides, so players load it once.
	const mapPrefix = "getMP4InitFragment.mp4?HeaderId="
	p.URIPrefix, p.URISuffix = segPrefix, suffix
	p.Segments = make([]hls.MediaSegment, 0, len(w.Entries)+1)
	for i, e := range w.Entries {
		seg := hls.MediaSegment{DurationNS: e.DurationNS, Discontinuity: e.Discontinuity, Number: e.Number}
		if !ts {
			if i == 0 {
				p.MapURI = mapPrefix + strconv.FormatInt(e.HeaderID, 10) + suffix
			} else if e.HeaderChange {
				seg.MapURI = mapPrefix + strconv.FormatInt(e.HeaderID, 10) + suffix
			}
		}
		if r.sess.DisplayTimestamp {
			seg.ProgramDateTime = time.Unix(0, e.StartNS)
		}
		p.Segments = append(p.Segments, seg)
	}
	return p
}

// sendPlaylist writes a media playlist.
func (r *hlsRequest) sendPlaylist(p *hls.MediaPlaylist, ended bool) error {
	// About 250 bytes a segment or part (the token is in every URL).
	lines := int64(len(p.Segments))
	for i := range p.Segments {
		lines += int64(len(p.Segments[i].Parts))
	}
	buf := segmentBuffer(lines*(200+int64(len(r.token))) + 512)
	defer segmentBuffers.Put(buf)
	hls.WriteMediaPlaylist(buf, p)
	return send(r.c, mpegURL, r.cacheFor(ended), buf.Bytes())
}

// protocolFragment loads the fragment a segment request names: by
// FragmentNumber in HLS sessions; in DASH sessions by Time or FragmentNumber,
// among the fragments that share the session's tracks (dashFragment).
func (s *Server) protocolFragment(r *hlsRequest) (*fragments.Fragment, *fragments.Header, error) {
	if r.sess.Protocol == session.DASH {
		return s.dashFragment(r)
	}
	return s.sessionFragment(r)
}

// sessionFragment loads the fragment a segment request names, if it
// belongs to the session: its stream, its range, not expired.
func (s *Server) sessionFragment(r *hlsRequest) (*fragments.Fragment, *fragments.Header, error) {
	v := r.c.QueryParam("FragmentNumber")
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || !reFragmentNumber.MatchString(v) {
		return nil, nil, invalidArg("FragmentNumber %.130q is not a fragment number", v)
	}
	f, err := s.segments.fragment(r.st.ID, n, func() (*fragments.Fragment, error) { return s.store.Index.FragmentByNumber(r.st.ID, n) })
	if errors.Is(err, fragments.ErrNotFound) || (err == nil && f.ServerNS < r.st.Cutoff(time.Now())) {
		return nil, nil, notFound("fragment %s is not in the session", v)
	}
	if err != nil {
		return nil, nil, err
	}
	if !inRange(r.sess, f) {
		return nil, nil, notFound("fragment %s is not in the session", v)
	}
	h, err := s.header(f.HeaderID)
	return f, h, err
}

// sessionTime is a fragment's timestamp in the session's timestamp source.
func sessionTime(sess *session.Session, f *fragments.Fragment) int64 {
	if sess.Producer {
		return f.ProducerNS
	}
	return f.ServerNS
}

// inRange reports whether a retained fragment of the session's stream is in
// its range (LIVE sessions have none).
func inRange(sess *session.Session, f *fragments.Fragment) bool {
	if sess.Mode == session.Live {
		return true
	}
	ts := sessionTime(sess, f)
	return ts >= sess.StartNS && (!sess.HasEnd || ts <= sess.EndNS)
}

// segment loads what a media segment of f is made of.
func (s *Server) segment(r *hlsRequest, f *fragments.Fragment, h *fragments.Header) (*hls.Segment, func(), error) {
	meta, err := s.store.Index.Meta(f.StreamID, f.Ordinal)
	if err != nil {
		return nil, nil, err
	}
	fr, err := s.store.OpenFragment(f)
	if err != nil {
		return nil, nil, err
	}
	base := f.ServerNS
	if r.sess.Producer {
		base = f.ProducerNS
	}
	return &hls.Segment{Header: h, Meta: meta, Payload: fr, Size: f.Size, BaseNS: mediaTime(base), Sequence: f.Ordinal}, func() { fr.Close() }, nil
}

// epochOffset lifts media times of streams whose timestamps start near the
// epoch (ABSOLUTE timecodes from 0, as files made by ffmpeg have): decode
// times of B-frame streams start before the first presentation time, and
// MP4 decode times cannot be negative. Real wall-clock timestamps (later
// than a day after 1970) are used as they are.
const epochOffset = int64(time.Hour)

func mediaTime(ns int64) int64 {
	if ns < int64(24*time.Hour) {
		return ns + epochOffset
	}
	return ns
}

// mp4Init serves getMP4InitFragment.mp4 of HLS and DASH sessions: the init
// segment of the named track header (HeaderId, as HLS playlists name it) or
// fragment's header (FragmentNumber), else of the session's (DASH: its first
// fragment's; HLS: its window's first).
func (s *Server) mp4Init(proto session.Protocol) echo.HandlerFunc {
	return func(c echo.Context) error { return s.serveMP4Init(c, proto) }
}

func (s *Server) serveMP4Init(c echo.Context, proto session.Protocol) error {
	r, err := s.openSession(c, proto)
	if err != nil {
		return err
	}
	var h *fragments.Header
	if v := c.QueryParam("HeaderId"); v != "" {
		// A track header of the session's stream (EXT-X-MAP).
		id, perr := strconv.ParseInt(v, 10, 64)
		if perr == nil && id > 0 {
			h, err = s.header(id)
		}
		if perr != nil || id <= 0 || errors.Is(err, fragments.ErrNotFound) || (err == nil && h.StreamID != r.st.ID) {
			return notFound("HeaderId %.30q is not a track header of the session's stream", v)
		}
		if err != nil {
			return err
		}
	} else if c.QueryParam("FragmentNumber") != "" {
		if _, h, err = s.protocolFragment(r); err != nil {
			return err
		}
	} else if proto == session.DASH {
		if _, h, err = s.dashFirst(r.sess, r.st, time.Now()); err != nil {
			return err
		}
	} else {
		w, err := r.sess.Compute(s.windows(), r.st, time.Now())
		if err != nil {
			return err
		}
		if len(w.Entries) == 0 {
			return notFound("no fragments in the session yet")
		}
		if h, err = s.header(w.Entries[0].HeaderID); err != nil {
			return err
		}
	}
	track, err := trackParam(c, h, 0)
	if err != nil {
		return err
	}
	if track == 0 {
		return invalidArg("TrackNumber is required")
	}
	var buf bytes.Buffer
	if err := hls.WriteMP4Init(&buf, h, track-1); err != nil {
		return err
	}
	return send(c, "video/mp4", r.cacheFor(true), buf.Bytes())
}

// mp4Media serves getMP4MediaFragment.mp4 of HLS and DASH sessions.
func (s *Server) mp4Media(proto session.Protocol) echo.HandlerFunc {
	return func(c echo.Context) error { return s.serveMP4Media(c, proto) }
}

func (s *Server) serveMP4Media(c echo.Context, proto session.Protocol) error {
	r, err := s.openSession(c, proto)
	if err != nil {
		return err
	}
	if proto == session.HLS && c.QueryParams().Has("Part") {
		return s.serveMP4Part(r)
	}
	f, h, err := s.protocolFragment(r)
	if err != nil {
		return err
	}
	track, err := trackParam(c, h, 0)
	if err != nil {
		return err
	}
	if track == 0 {
		return invalidArg("TrackNumber is required")
	}
	body, err := s.segmentBody(r, f, h, segVariant{track: track, producer: r.sess.Producer}, int(f.Size)+4096,
		func(w io.Writer, seg *hls.Segment) error { return hls.WriteMP4Media(w, seg, track-1) })
	if err != nil {
		return err
	}
	return send(c, "video/mp4", r.cacheFor(true), body)
}

// segmentBody returns fragment f as the segment variant v, from the segment
// cache or built by write into a buffer of about sizeHint bytes.
func (s *Server) segmentBody(r *hlsRequest, f *fragments.Fragment, h *fragments.Header, v segVariant, sizeHint int,
	write func(io.Writer, *hls.Segment) error) ([]byte, error) {
	return s.segments.body(f, v, func() ([]byte, error) {
		seg, done, err := s.segment(r, f, h)
		if err != nil {
			return nil, err
		}
		defer done()
		var buf bytes.Buffer
		buf.Grow(sizeHint)
		if err := write(&buf, seg); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	})
}

// segmentBuffers hold media playlists while they are built, so that they go
// out with a Content-Length (segments are built into the segment cache).
var segmentBuffers sync.Pool

func segmentBuffer(size int64) *bytes.Buffer {
	b, _ := segmentBuffers.Get().(*bytes.Buffer)
	if b == nil {
		b = new(bytes.Buffer)
	}
	b.Reset()
	b.Grow(int(size))
	return b
}

func (s *Server) hlsTS(c echo.Context) error {
	r, err := s.openSession(c, session.HLS)
	if err != nil {
		return err
	}
	f, h, err := s.sessionFragment(r)
	if err != nil {
		return err
	}
	body, err := s.segmentBody(r, f, h, segVariant{ts: true, producer: r.sess.Producer}, int(f.Size)*11/10+4096, hls.WriteTS)
	if err != nil {
		return err
	}
	return send(c, "video/mp2t", r.cacheFor(true), body)
}
