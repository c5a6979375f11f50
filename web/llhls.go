package web

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/hls"
	"github.com/kvsgate/kvsgate/session"
)

// Low-latency HLS (RFC 8216bis: EXT-X-PART, EXT-X-PART-INF,
// EXT-X-SERVER-CONTROL, blocking playlist reload, EXT-X-PRELOAD-HINT) for
// LIVE sessions in fMP4. A LIVE media playlist lists the stream's
// persisted fragments as before and, after them, the fragment being
// received, as partial segments from the ingest's partial feed
// (fragments.Store.Partial); the fragments near the end get their parts
// listed too, cut from the stored sample tables the same way. A part is
// getMP4MediaFragment.mp4 with Part=k: a moof+mdat of the fragment's
// samples in that part, on the fragment's timeline, so the parts of a
// fragment played one after the other are its whole segment.

// DefaultPartTarget is the PART-TARGET of LL-HLS playlists unless
// Config.HLSPartTarget says otherwise.
const DefaultPartTarget = 250 * time.Millisecond

// partWait bounds how long a request for a part that is not complete yet
// (a preload hint) is held before 503.
const partWait = 3 * time.Second

// lowLatency reports whether a session's media playlists are LL-HLS.
func (s *Server) lowLatency(sess *session.Session) bool {
	return s.cfg.HLSPartTarget > 0 && sess.Mode == session.Live && hls.Container(sess.Container) == hls.FMP4
}

// partHoldBack is PART-HOLD-BACK: three part targets (RFC 8216bis asks
// for at least two, and advises three).
func (s *Server) partHoldBack() time.Duration { return 3 * s.cfg.HLSPartTarget }

// llState is what an LL-HLS playlist holds at its end, for blocking reloads.
type llState struct {
	lastFull int64 // media sequence number of the last whole segment (-1: none)
	// The fragment still arriving listed after it (MSN lastFull+1), if any,
	// and how many of its parts are listed.
	open  *fragments.PartialFragment
	parts int
}

// has reports whether the playlist holds part part of segment msn (part
// < 0: the whole segment) or something later.
func (st *llState) has(msn, part int64) bool {
	if msn <= st.lastFull {
		return true
	}
	return st.open != nil && msn == st.lastFull+1 && part >= 0 && part < int64(st.parts)
}

// last is the media sequence number of the playlist's last segment, whole or not.
func (st *llState) last() int64 {
	if st.open != nil {
		return st.lastFull + 1
	}
	return st.lastFull
}

// blockingParams reads _HLS_msn and _HLS_part: the segment (and part, -1
// for none) a blocking playlist reload waits for; ok false without them.
func blockingParams(r *hlsRequest) (msn, part int64, ok bool, err error) {
	q := r.c.QueryParams()
	if !q.Has("_HLS_msn") {
		if q.Has("_HLS_part") {
			return 0, 0, false, invalidArg("_HLS_part needs _HLS_msn")
		}
		return 0, -1, false, nil
	}
	msn, err = strconv.ParseInt(q.Get("_HLS_msn"), 10, 64)
	if err != nil || msn < 0 {
		return 0, 0, false, invalidArg("_HLS_msn %.20q is not a media sequence number", q.Get("_HLS_msn"))
	}
	part = -1
	if q.Has("_HLS_part") {
		part, err = strconv.ParseInt(q.Get("_HLS_part"), 10, 64)
		if err != nil || part < 0 {
			return 0, 0, false, invalidArg("_HLS_part %.20q is not a part index", q.Get("_HLS_part"))
		}
	}
	return msn, part, true, nil
}

// llMediaPlaylist serves an LL-HLS media playlist, holding a blocking
// reload (_HLS_msn, _HLS_part) until the playlist has what it asks for:
// 400 for a segment more than two past the playlist's last, 503 after
// three target durations.
func (s *Server) llMediaPlaylist(r *hlsRequest) error {
	track, err := mediaPlaylistTrack(r)
	if err != nil {
		return err
	}
	msn, part, blocking, err := blockingParams(r)
	if err != nil {
		return err
	}
	ctx := r.c.Request().Context()
	var deadline time.Time
	for {
		now := time.Now()
		s.store.WantPartial(r.st.ID, now)
		// The partial feed before the index: a fragment that leaves the
		// feed between the two is in the index by then.
		partials, feedChanged := s.store.Partial(r.st.ID)
		committed := s.store.Wake(r.st.ID)
		w, err := r.sess.Compute(s.windows(), r.st, now)
		if err != nil {
			return err
		}
		p := r.mediaPlaylist(w, track)
		st, frames, err := s.addParts(r, w, p, track, partials)
		if err != nil {
			return err
		}
		if !blocking || st.has(msn, part) {
			return r.sendPlaylist(p, false)
		}
		if msn > st.last()+2 {
			return invalidArg("_HLS_msn %d is more than two segments after the playlist's last (%d)", msn, st.last())
		}
		if deadline.IsZero() {
			deadline = now.Add(time.Duration(3*hls.TargetDuration(p.Segments)) * time.Second)
		}
		if !waitAny(ctx, deadline, feedChanged, committed, frames) {
			if ctx.Err() != nil {
				return nil // the client is gone
			}
			return unavailable("segment %d part %d of the playlist did not arrive in time", msn, part)
		}
	}
}

// waitAny waits until one of chs (nil ones never) is closed, ctx ends or
// the deadline passes; it reports whether a channel was closed.
func waitAny(ctx context.Context, deadline time.Time, a, b, c <-chan struct{}) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-a:
	case <-b:
	case <-c:
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
	return true
}

// addParts makes p (a LIVE window's fMP4 playlist of track) low-latency:
// the server-control and part-info tags, the parts of the segments within
// three target durations of the end, and the fragment still arriving
// after them with its complete parts and a preload hint for its next. It
// returns what the playlist ends with, and a channel closed at the next
// change of the fragment of the feed that comes next (nil if none): the
// playlist may be waiting for its frames.
func (s *Server) addParts(r *hlsRequest, w *session.Window, p *hls.MediaPlaylist, track int, partials []*fragments.PartialFragment) (*llState, <-chan struct{}, error) {
	target := int64(s.cfg.HLSPartTarget)
	p.PartTargetNS, p.PartHoldBackNS = target, int64(s.partHoldBack())
	st := &llState{lastFull: w.MediaSequence + int64(len(w.Entries)) - 1}
	if len(w.Entries) == 0 {
		return st, nil, nil
	}
	// Parts of the last segments: three target durations' worth.
	recent := int64(3*hls.TargetDuration(p.Segments)) * int64(time.Second)
	for i := len(w.Entries) - 1; i >= 0 && recent > 0; i-- {
		e := &w.Entries[i]
		recent -= e.DurationNS
		parts, err := s.storedParts(&e.Fragment, track)
		if err != nil {
			return nil, nil, err
		}
		p.Segments[i].Parts = r.partLines(e.Number, track, parts)
	}

	// The fragment after the last listed one, if it is that fragment's
	// successor on the same connection and header, and the window's
	// numbering is the stream's ordinals: then it becomes the next segment
	// with exactly the media sequence number given here.
	last := &w.Entries[len(w.Entries)-1]
	var next *fragments.PartialFragment
	for _, pf := range partials {
		if pf.Number > last.Number {
			next = pf
			break
		}
	}
	// The playlist always ends with a preload hint of the next part: the
	// next part of the fragment listed last, else part 0 of the fragment
	// after it. (hls.js 1.7.4 also needs a line after the last segment:
	// without one it takes that segment for the next one in progress, and
	// with a discontinuity before every segment it fails the playlist.)
	p.PreloadHintURI = r.nextPartURI(last.Number, track)
	if next == nil || next.PrevNumber != last.Number || !next.SameHeader || st.lastFull != last.Ordinal {
		return st, nil, nil
	}
	changed := next.Changed() // before the snapshot, so no change is missed
	snap, ok := next.Snapshot()
	if !ok {
		return st, changed, nil
	}
	e := session.Entry{Fragment: snap.Fragment, StartNS: sessionTime(r.sess, &snap.Fragment)}
	e.HeaderID = last.HeaderID
	if r.sess.Producer && e.StartNS <= last.StartNS {
		return st, changed, nil // it will be left out of the window
	}
	parts := hls.Parts(snap.Header, snap.Meta.Samples, track-1, target, snap.Settled[track-1], snap.Complete)
	if len(parts) == 0 {
		p.PreloadHintURI = r.partURI(snap.Fragment.Number, track, 0)
		return st, changed, nil
	}
	seg := hls.MediaSegment{Discontinuity: r.sess.Discontinuous(last, &e), Parts: r.partLines(snap.Fragment.Number, track, parts), InProgress: true}
	if r.sess.DisplayTimestamp {
		seg.ProgramDateTime = time.Unix(0, e.StartNS)
	}
	p.Segments = append(p.Segments, seg)
	st.open, st.parts = next, len(parts)
	if snap.Complete {
		p.PreloadHintURI = r.nextPartURI(snap.Fragment.Number, track)
	} else {
		p.PreloadHintURI = r.partURI(snap.Fragment.Number, track, len(parts))
	}
	return st, changed, nil
}

// nextPartURI names part 0 of the fragment after number, whose number is
// not known yet: AfterFragmentNumber instead of FragmentNumber.
func (r *hlsRequest) nextPartURI(number uint64, track int) string {
	return "getMP4MediaFragment.mp4?AfterFragmentNumber=" + strconv.FormatUint(number, 10) + "&Part=0&TrackNumber=" +
		strconv.Itoa(track) + "&SessionToken=" + r.token
}

func (r *hlsRequest) partURI(number uint64, track, part int) string {
	return "getMP4MediaFragment.mp4?FragmentNumber=" + strconv.FormatUint(number, 10) + "&Part=" + strconv.Itoa(part) +
		"&TrackNumber=" + strconv.Itoa(track) + "&SessionToken=" + r.token
}

func (r *hlsRequest) partLines(number uint64, track int, parts []hls.Part) []hls.MediaPart {
	out := make([]hls.MediaPart, len(parts))
	for k, pt := range parts {
		out[k] = hls.MediaPart{URI: r.partURI(number, track, k), DurationNS: pt.DurationNS, Independent: pt.Independent}
	}
	return out
}

// partKey names the parts of one track of a stored fragment.
type partKey struct {
	stream int64
	number uint64
	track  int
}

// partLists keeps the parts of stored fragments (which never change): a
// LIVE playlist lists the parts of its last few segments on every reload.
// It is emptied when it holds partListsMax lists.
type partLists struct {
	mu    sync.Mutex
	lists map[partKey][]hls.Part
}

const partListsMax = 4096

// storedParts returns the parts of track (1-based) of a stored fragment.
func (s *Server) storedParts(f *fragments.Fragment, track int) ([]hls.Part, error) {
	k := partKey{f.StreamID, f.Number, track}
	s.parts.mu.Lock()
	parts, ok := s.parts.lists[k]
	s.parts.mu.Unlock()
	if ok {
		return parts, nil
	}
	h, err := s.header(f.HeaderID)
	if err != nil {
		return nil, err
	}
	meta, err := s.store.Index.Meta(f.StreamID, f.Ordinal)
	if err != nil {
		return nil, err
	}
	parts = hls.Parts(h, meta.Samples, track-1, int64(s.cfg.HLSPartTarget), 0, true)
	s.parts.mu.Lock()
	if s.parts.lists == nil || len(s.parts.lists) >= partListsMax {
		s.parts.lists = map[partKey][]hls.Part{}
	}
	s.parts.lists[k] = parts
	s.parts.mu.Unlock()
	return parts, nil
}

// serveMP4Part serves a part (Part=k) of getMP4MediaFragment.mp4 in an HLS
// session: of a stored fragment from storage; of the fragment being
// received from memory, holding the request (at most partWait) until the
// part is complete. A part the fragment turns out not to have, or a
// fragment that failed, is 404.
func (s *Server) serveMP4Part(r *hlsRequest) error {
	c := r.c
	v := c.QueryParam("Part")
	k, err := strconv.Atoi(v)
	if err != nil || k < 0 || k > 100000 {
		return invalidArg("Part %.20q is not a part index", v)
	}
	ctx := c.Request().Context()
	deadline := time.Now().Add(partWait)
	if c.QueryParams().Has("AfterFragmentNumber") && !c.QueryParams().Has("FragmentNumber") {
		if !s.lowLatency(r.sess) {
			return invalidArg("AfterFragmentNumber is for LIVE sessions")
		}
		av := c.QueryParam("AfterFragmentNumber")
		after, err := strconv.ParseUint(av, 10, 64)
		if err != nil || !reFragmentNumber.MatchString(av) {
			return invalidArg("AfterFragmentNumber %.130q is not a fragment number", av)
		}
		next, err := s.nextFragment(ctx, r.st.ID, after, deadline)
		if ctx.Err() != nil {
			return nil // the client is gone
		}
		if err != nil {
			return err
		}
		q := c.QueryParams()
		q.Set("FragmentNumber", strconv.FormatUint(next, 10))
		c.Request().URL.RawQuery = q.Encode()
	}
	nv := c.QueryParam("FragmentNumber")
	n, err := strconv.ParseUint(nv, 10, 64)
	if err != nil || !reFragmentNumber.MatchString(nv) {
		return invalidArg("FragmentNumber %.130q is not a fragment number", nv)
	}
	for {
		pf := s.store.PartialByNumber(r.st.ID, n)
		if pf == nil {
			return s.serveStoredPart(r, k)
		}
		if !s.lowLatency(r.sess) {
			return notFound("fragment %s is not in the session", nv)
		}
		changed := pf.Changed() // before the snapshot, so no change is missed
		snap, ok := pf.Snapshot()
		if ok {
			track, err := trackParam(c, snap.Header, 0)
			if err != nil {
				return err
			}
			if track == 0 {
				return invalidArg("TrackNumber is required")
			}
			parts := hls.Parts(snap.Header, snap.Meta.Samples, track-1, int64(s.cfg.HLSPartTarget), snap.Settled[track-1], snap.Complete)
			if k < len(parts) {
				return s.sendPartialPart(r, pf, snap, &parts[k], track)
			}
			if snap.Complete {
				return notFound("fragment %s has no part %d", nv, k)
			}
		}
		if !ok {
			continue // stored or failed: look again
		}
		if !waitAny(ctx, deadline, changed, nil, nil) {
			if ctx.Err() != nil {
				return nil // the client is gone
			}
			return unavailable("part %d of fragment %s did not arrive in time", k, nv)
		}
	}
}

// nextFragment waits (until deadline) for the fragment that follows
// fragment after in the stream, in the partial feed or the index, and
// returns its number. One with another track header is not the next
// part of the playlist that hinted it (a new EXT-X-MAP comes first): 404.
func (s *Server) nextFragment(ctx context.Context, stream int64, after uint64, deadline time.Time) (uint64, error) {
	for {
		partials, feedChanged := s.store.Partial(stream)
		committed := s.store.Wake(stream)
		for _, pf := range partials {
			if pf.PrevNumber == after {
				if !pf.SameHeader {
					return 0, notFound("the fragment after %d has other tracks", after)
				}
				return pf.Number, nil
			}
		}
		f, err := s.store.Index.FragmentByNumber(stream, after)
		if err != nil {
			return 0, err // not found: 404
		}
		next, err := s.store.Index.Fragments(fragments.FragmentQuery{StreamID: stream, By: fragments.ByOrdinal, AfterOrdinal: f.Ordinal, Limit: 1})
		if err != nil {
			return 0, err
		}
		if len(next) > 0 {
			if next[0].HeaderID != f.HeaderID {
				return 0, notFound("the fragment after %d has other tracks", after)
			}
			return next[0].Number, nil
		}
		if !waitAny(ctx, deadline, feedChanged, committed, nil) {
			if ctx.Err() != nil {
				return 0, ctx.Err() // the client is gone: nothing is sent
			}
			return 0, unavailable("no fragment after %d arrived in time", after)
		}
	}
}

// serveStoredPart serves part k of a stored fragment of the session.
func (s *Server) serveStoredPart(r *hlsRequest, k int) error {
	f, h, err := s.sessionFragment(r)
	if err != nil {
		return err
	}
	track, err := trackParam(r.c, h, 0)
	if err != nil {
		return err
	}
	if track == 0 {
		return invalidArg("TrackNumber is required")
	}
	parts, err := s.storedParts(f, track)
	if err != nil {
		return err
	}
	if k >= len(parts) {
		return notFound("fragment %d has no part %d", f.Number, k)
	}
	body, err := s.segmentBody(r, f, h, segVariant{track: track, producer: r.sess.Producer, part: k + 1}, 0,
		func(w io.Writer, seg *hls.Segment) error {
			seg.Part = &parts[k]
			return hls.WriteMP4Media(w, seg, track-1)
		})
	if err != nil {
		return err
	}
	return send(r.c, "video/mp4", r.cacheFor(true), body)
}

// sendPartialPart writes a part of a fragment of the partial feed.
func (s *Server) sendPartialPart(r *hlsRequest, pf *fragments.PartialFragment, snap *fragments.PartialSnapshot, part *hls.Part, track int) error {
	seq := int64(0)
	if prev, err := s.segments.fragment(r.st.ID, pf.PrevNumber, func() (*fragments.Fragment, error) {
		return s.store.Index.FragmentByNumber(r.st.ID, pf.PrevNumber)
	}); err == nil {
		seq = prev.Ordinal + 1
	}
	seg := &hls.Segment{Header: snap.Header, Meta: snap.Meta, Payload: bytes.NewReader(snap.Payload), Size: int64(len(snap.Payload)),
		BaseNS: mediaTime(sessionTime(r.sess, &snap.Fragment)), Sequence: seq, Part: part}
	var buf bytes.Buffer
	if err := hls.WriteMP4Media(&buf, seg, track-1); err != nil {
		return err
	}
	// Not cached by clients: a fragment still arriving may yet fail.
	return send(r.c, "video/mp4", 0, buf.Bytes())
}
