package web

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kvsgate/kvsgate/dash"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/hls"
	"github.com/kvsgate/kvsgate/session"
	"github.com/labstack/echo/v4"
)

// DASH sessions share HLS's machinery: the session token and window
// (package session), the request checks (newSession, firstFragment,
// openSession) and the fMP4 segments (mp4Init, mp4Media). What is DASH's
// own is the manifest and how its segments are addressed:
//
//   - $Time$ addressing. Every segment's media URL carries its start in the
//     MPD timeline (Time=, milliseconds of the session's timestamp source,
//     lifted by mediaTime as the segments' decode times are); the server
//     maps it back to the fragment that starts then, with the index on that
//     timestamp. Fragment numbers are not consecutive and ordinals can jump
//     or go backwards in a session ordered by producer timestamp, so
//     $Number$ would need a new Period at every jump.
//   - One track header a session. A DASH session lists only the fragments
//     whose tracks are those of its first fragment (dashFirst): players
//     load one init segment per track and never another.
//   - Gaps. S@t are true times. Dynamic MPDs (LIVE, LIVE_REPLAY) have one
//     Period on the wall clock, where a gap is time passing; static MPDs
//     (ON_DEMAND) a Period per continuous run, laid end to end, since
//     dash.js ends a static presentation at a gap in its timeline (see
//     dash.Manifest.PeriodGap and README.md, "DASH manifests"). Whether a
//     run continues is measured on the first track (joinSegments).

const (
	dashMIME     = "application/dash+xml"
	dashTimePath = "/dash/v1/time"
)

type dashSessionIn struct {
	streamRef
	DASHFragmentSelector     *fragmentSelectorJSON `json:"DASHFragmentSelector"`
	DisplayFragmentNumber    string                `json:"DisplayFragmentNumber"`
	DisplayFragmentTimestamp string                `json:"DisplayFragmentTimestamp"`
	Expires                  *int                  `json:"Expires"`
	MaxManifestResults       *int                  `json:"MaxManifestFragmentResults"`
	PlaybackMode             string                `json:"PlaybackMode"`
}

type dashSessionOut struct {
	DASHStreamingSessionURL string `json:"DASHStreamingSessionURL"`
}

func alwaysNever(name, v string) (bool, error) {
	switch v {
	case "", "NEVER":
		return false, nil
	case "ALWAYS":
		return true, nil
	}
	return false, invalidArg("%s must be ALWAYS or NEVER", name)
}

func (s *Server) getDASHStreamingSessionURL(ctx context.Context, in *dashSessionIn) (*dashSessionOut, error) {
	sess, st, err := s.newSession(ctx, sessionParams{ref: in.streamRef, mode: in.PlaybackMode, selector: in.DASHFragmentSelector,
		expires: in.Expires, maxResults: in.MaxManifestResults}, session.DASH)
	if err != nil {
		return nil, err
	}
	if sess.DisplayNumber, err = alwaysNever("DisplayFragmentNumber", in.DisplayFragmentNumber); err != nil {
		return nil, err
	}
	if sess.DisplayTimestamp, err = alwaysNever("DisplayFragmentTimestamp", in.DisplayFragmentTimestamp); err != nil {
		return nil, err
	}
	first, h, err := s.firstPlayable(sess, st, hls.DASHFMP4)
	if err != nil {
		return nil, err
	}
	if sess.Mode == session.Live {
		// A LIVE session starts at the newest fragment; its first window
		// reaches back over the fragments that share its tracks. The first
		// of them is the session's first fragment (dashFirst).
		w, err := sess.Compute(s.store.Index, st, time.Now())
		if err != nil {
			return nil, err
		}
		base := first.Ordinal
		for i := len(w.Entries) - 1; i >= 0; i-- {
			e := &w.Entries[i]
			if e.Ordinal > first.Ordinal {
				continue
			}
			same, err := s.sameTracks(h, e.HeaderID)
			if err != nil {
				return nil, err
			}
			if !same {
				break
			}
			base = e.Ordinal
		}
		sess.BaseOrdinal = base
	}
	return &dashSessionOut{DASHStreamingSessionURL: s.DataEndpoint() + "/dash/v1/getDASHManifest.mpd?SessionToken=" + s.sessions.Seal(sess)}, nil
}

// dashFirst returns a DASH session's first fragment and its header, whose
// tracks every fragment the session lists shares: ON_DEMAND and LIVE_REPLAY
// the first fragment of the range; LIVE the first (retained) fragment from
// BaseOrdinal on, which getDASHStreamingSessionURL set.
func (s *Server) dashFirst(sess *session.Session, st *fragments.Stream, now time.Time) (*fragments.Fragment, *fragments.Header, error) {
	var f *fragments.Fragment
	if sess.Mode == session.Live {
		page, err := s.store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal,
			AfterOrdinal: max(sess.BaseOrdinal-1, 0), MinServerNS: st.Cutoff(now), Limit: 1})
		if err != nil {
			return nil, nil, err
		}
		if len(page) > 0 {
			f = &page[0]
		}
	} else {
		probe := *sess
		probe.Mode, probe.MaxResults = session.OnDemand, 1
		w, err := probe.Compute(s.store.Index, st, now)
		if err != nil {
			return nil, nil, err
		}
		if len(w.Entries) > 0 {
			f = &w.Entries[0].Fragment
		}
	}
	if f == nil {
		return nil, nil, notFound("the session's fragments are no longer retained")
	}
	h, err := s.header(f.HeaderID)
	return f, h, err
}

// sameTracks reports whether the header with the given id describes the
// same tracks as h, as far as fMP4 init segments are concerned: codecs,
// codec private data, picture size, sampling rate and channels. (Headers
// identical to the byte share an id; a producer that reconnects may send
// one that differs elsewhere.)
func (s *Server) sameTracks(h *fragments.Header, id int64) (bool, error) {
	if id == h.ID {
		return true, nil
	}
	o, err := s.header(id)
	if err != nil || len(o.Tracks) != len(h.Tracks) {
		return false, err
	}
	for i := range h.Tracks {
		a, b := &h.Tracks[i], &o.Tracks[i]
		if a.CodecID != b.CodecID || !bytes.Equal(a.CodecPrivate, b.CodecPrivate) || a.Width != b.Width || a.Height != b.Height ||
			a.SamplingFreq != b.SamplingFreq || a.Channels != b.Channels {
			return false, nil
		}
	}
	return true, nil
}

// timelineMS is a session timestamp's place in the MPD timeline: lifted by
// mediaTime like the segments' decode times, in milliseconds (rounded).
func timelineMS(ns int64) int64 { return (mediaTime(ns) + 5e5) / 1e6 }

// dashSegments turns a window into the manifest's segments: those that
// share the session's tracks, in increasing time. Of fragments that start
// in the same millisecond the later is kept (dashFragment picks the same);
// in LIVE windows (ingest order) a fragment that starts before the one
// listed before it is left out, as LIVE sessions do with producer
// timestamps. Fragments before minTime are left out too.
func (s *Server) dashSegments(sess *session.Session, h *fragments.Header, w *session.Window, minTime int64) ([]dash.Segment, []*session.Entry, error) {
	segs := make([]dash.Segment, 0, len(w.Entries))
	listed := make([]*session.Entry, 0, len(w.Entries))
	same := map[int64]bool{h.ID: true}
	for i := range w.Entries {
		e := &w.Entries[i]
		ok, seen := same[e.HeaderID]
		if !seen {
			var err error
			if ok, err = s.sameTracks(h, e.HeaderID); err != nil {
				return nil, nil, err
			}
			same[e.HeaderID] = ok
		}
		if !ok {
			continue
		}
		t := timelineMS(e.StartNS)
		if t < minTime {
			continue
		}
		seg := dash.Segment{Time: t, Duration: timelineMS(e.StartNS+e.DurationNS) - t, Number: e.Number, TimestampMS: e.StartNS / 1e6}
		if n := len(segs); n > 0 && t <= segs[n-1].Time {
			if t == segs[n-1].Time {
				segs[n-1], listed[n-1] = seg, e
			}
			continue
		}
		segs = append(segs, seg)
		listed = append(listed, e)
	}
	return segs, listed, nil
}

// joinSegments marks the segments that look like they follow a gap longer
// than gap (milliseconds) but whose media continues the previous segment's
// (session.Joined, measured on the first track): they stay in its Period.
// Only such apparent gaps load the two fragments' sample tables, so a
// continuous stream costs nothing here.
func (s *Server) joinSegments(sess *session.Session, streamID int64, gap int64, segs []dash.Segment, listed []*session.Entry) error {
	// The lead of the segment last looked at: of gaps one after another,
	// each fragment's sample table is read once.
	known, knownLead := -1, int64(0)
	lead := func(i int) (int64, error) {
		if i == known {
			return knownLead, nil
		}
		meta, err := s.store.Index.Meta(streamID, listed[i].Ordinal)
		if err != nil {
			return 0, err
		}
		known, knownLead = i, session.FirstTrackLead(meta.Samples)
		return knownLead, nil
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].Time-(segs[i-1].Time+segs[i-1].Duration) <= gap {
			continue
		}
		prevLead, err := lead(i - 1)
		if err != nil {
			return err
		}
		curLead, err := lead(i)
		if err != nil {
			return err
		}
		segs[i].Joined = sess.Joined(listed[i-1], listed[i], prevLead, curLead)
	}
	return nil
}

func (s *Server) dashManifest(c echo.Context) error {
	r, err := s.openSession(c, session.DASH)
	if err != nil {
		return err
	}
	now := time.Now()
	w, err := r.sess.Compute(s.store.Index, r.st, now)
	if err != nil {
		return err
	}
	first, h, err := s.dashFirst(r.sess, r.st, now)
	if err != nil {
		return err
	}
	m := &dash.Manifest{Dynamic: r.sess.Mode != session.OnDemand, Ended: w.Ended,
		DisplayNumber: r.sess.DisplayNumber, DisplayTimestamp: r.sess.DisplayTimestamp}
	// Where the timeline sits in the presentation (and for LIVE and
	// LIVE_REPLAY on the wall clock: availabilityStartTime + presentation
	// time is when a segment is there).
	switch r.sess.Mode {
	case session.Live:
		// The wall clock: a fragment is presented at its server timestamp,
		// and with producer timestamps at its producer timestamp moved by
		// the first fragment's (server - producer) offset.
		m.AvailabilityStart = time.Unix(0, 0)
		if r.sess.Producer {
			offset := first.ServerNS/1e6 - timelineMS(first.ProducerNS)
			if offset >= 0 {
				m.PeriodStart = time.Duration(offset) * time.Millisecond
			} else {
				m.PresentationTimeOffset = -offset
			}
		}
	case session.LiveReplay:
		// The range replays from the session's creation on, at its true
		// times (a gap in the stream is a gap in the replay).
		m.AvailabilityStart = time.Unix(0, r.sess.CreatedNS).Truncate(time.Millisecond)
		m.PresentationTimeOffset = timelineMS(sessionTime(r.sess, first))
	}
	segs, listed, err := s.dashSegments(r.sess, h, w, m.PresentationTimeOffset)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return notFound("no fragment with the session's tracks in its window")
	}
	m.Segments = segs
	if r.sess.Mode == session.OnDemand {
		// A static MPD has no clock: each continuous run of fragments is a
		// Period, laid end to end with the previous one (see dash.Manifest.PeriodGap).
		m.PresentationTimeOffset = segs[0].Time
		m.PeriodGap = session.GapTolerance.Milliseconds()
		if err := s.joinSegments(r.sess, r.st.ID, m.PeriodGap, segs, listed); err != nil {
			return err
		}
	}

	// Codecs, picture and frame rate from the newest fragment, bandwidths
	// from the window (per track in the proportion of the newest
	// fragment's bytes).
	last := listed[len(listed)-1]
	meta, err := s.store.Index.Meta(r.st.ID, last.Ordinal)
	if err != nil {
		return err
	}
	info, err := hls.Describe(h, meta.Samples)
	if err != nil {
		return err
	}
	var peak, longest int64
	for _, e := range listed {
		if e.DurationNS > 0 {
			peak = max(peak, e.Size*8*1e9/e.DurationNS)
		}
	}
	for _, sg := range segs {
		longest = max(longest, sg.Duration)
	}
	trackBytes := make([]int64, len(h.Tracks))
	var allBytes int64
	for _, smp := range meta.Samples {
		if int(smp.Track) < len(trackBytes) {
			trackBytes[smp.Track] += smp.Size
			allBytes += smp.Size
		}
	}
	suffix := "&SessionToken=" + r.token
	for i := range h.Tracks {
		t := &h.Tracks[i]
		n := strconv.Itoa(i + 1)
		tr := dash.Track{ID: i + 1, Codecs: info.Codecs[i], Video: strings.HasPrefix(t.CodecID, "V_"), Bandwidth: peak,
			Init:  "getMP4InitFragment.mp4?TrackNumber=" + n + suffix,
			Media: "getMP4MediaFragment.mp4?TrackNumber=" + n + "&Time=$Time$" + suffix}
		if allBytes > 0 {
			tr.Bandwidth = peak * trackBytes[i] / allBytes
		}
		if tr.Video {
			tr.Width, tr.Height, tr.FrameRate = info.Width, info.Height, info.FrameRate
		} else {
			tr.SampleRate, tr.Channels = audioFormat(t)
		}
		m.Tracks = append(m.Tracks, tr)
	}
	longestD := time.Duration(longest) * time.Millisecond
	m.MinBufferTime = max(longestD, time.Second)
	if m.Dynamic {
		span := time.Duration(m.End()-segs[0].Time) * time.Millisecond
		m.PublishTime = now
		m.MinimumUpdatePeriod = time.Second
		m.TimeShiftBufferDepth = span + longestD
		m.SuggestedPresentationDelay = min(3*longestD, span)
		m.UTCTiming = s.DataEndpoint() + dashTimePath
	}
	buf := segmentBuffer(int64(len(segs))*(60+boolSize(m.DisplayNumber, 30)+boolSize(m.DisplayTimestamp, 26))*int64(len(m.Tracks)) + 2048)
	defer segmentBuffers.Put(buf)
	if err := dash.Write(buf, m); err != nil {
		return err
	}
	return send(c, dashMIME, r.cacheFor(w.Ended), buf.Bytes())
}

func boolSize(b bool, n int64) int64 {
	if b {
		return n
	}
	return 0
}

// audioFormat is an audio track's sampling rate and channel count as its
// header says.
func audioFormat(t *mkv.Track) (rate, channels int) {
	if t.SamplingFreq >= 1 && t.SamplingFreq < 1e7 {
		rate = int(t.SamplingFreq)
	}
	if t.Channels > 0 && t.Channels < 256 {
		channels = int(t.Channels)
	}
	return rate, channels
}

// reTimelineMS matches a Time: milliseconds up to 9e12 (the year 2255),
// so that nanoseconds fit an int64.
var reTimelineMS = regexp.MustCompile(`^[0-8]?[0-9]{1,12}$`)

// dashFragment loads the fragment a DASH segment request names, if the
// session lists it (or would): by Time, the segment's start in the MPD
// timeline, or by FragmentNumber (as in kvs:fn). A fragment whose tracks are
// not the session's is not in the session.
func (s *Server) dashFragment(r *hlsRequest) (*fragments.Fragment, *fragments.Header, error) {
	now := time.Now()
	_, first, err := s.dashFirst(r.sess, r.st, now)
	if err != nil {
		return nil, nil, err
	}
	var f *fragments.Fragment
	v := r.c.QueryParam("Time")
	if v == "" {
		var h *fragments.Header
		if f, h, err = s.sessionFragment(r); err != nil {
			return nil, nil, err
		}
		if same, err := s.sameTracks(first, h.ID); err != nil || !same {
			if err == nil {
				err = notFound("fragment %d is not in the session (its tracks are not the session's)", f.Number)
			}
			return nil, nil, err
		}
		return f, h, nil
	}
	if !reTimelineMS.MatchString(v) {
		return nil, nil, invalidArg("Time %.40q is not a time in milliseconds", v)
	}
	ms, _ := strconv.ParseInt(v, 10, 64)
	// The session timestamps that timelineMS maps to ms: mediaTime lifts
	// timestamps of the first day after the epoch by epochOffset.
	lo, hi := ms*1e6-5e5, ms*1e6+5e5-1
	var ranges [][2]int64
	day := int64(24 * time.Hour)
	if lo < day+epochOffset && hi >= epochOffset {
		ranges = append(ranges, [2]int64{max(lo-epochOffset, 0), min(hi-epochOffset, day-1)})
	}
	if hi >= day {
		ranges = append(ranges, [2]int64{max(lo, day), hi})
	}
	by := fragments.ByServer
	if r.sess.Producer {
		by = fragments.ByProducer
	}
	for _, rg := range ranges {
		page, err := s.store.Index.Fragments(fragments.FragmentQuery{StreamID: r.st.ID, By: by, From: rg[0], To: rg[1],
			MinServerNS: r.st.Cutoff(now), Limit: 64})
		if err != nil {
			return nil, nil, err
		}
		for i := range page {
			c := &page[i]
			if timelineMS(sessionTime(r.sess, c)) != ms || !inRange(r.sess, c) {
				continue
			}
			same, err := s.sameTracks(first, c.HeaderID)
			if err != nil {
				return nil, nil, err
			}
			if same {
				f = c // the later of fragments in the same millisecond
			}
		}
	}
	if f == nil {
		return nil, nil, notFound("no fragment of the session starts at %s", v)
	}
	h, err := s.header(f.HeaderID)
	return f, h, err
}

// dashTime answers the server's clock (the UTCTiming of dynamic MPDs), so
// players need no time server of their own.
func (s *Server) dashTime(c echo.Context) error {
	return send(c, "text/plain; charset=utf-8", 0, []byte(time.Now().UTC().Format("2006-01-02T15:04:05.000Z")))
}
