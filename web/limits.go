package web

import (
	"context"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/session/limits"
)

// Limits and quotas (session/limits): each request is admitted once its
// stream is known. resolve admits the TPS limits of the request's API
// (account and stream level); openSession those of a playback session and
// its fragment credits; ListFragments, GetClip, GetImages and
// GetMediaForFragmentList their credits once the amount is known; GetMedia
// and GetMediaForFragmentList also count as connections.

// admit applies the request's limits (its API's TPS on its stream and
// session) and takes the fragment credits it consumes, which it records in
// info; refused, it returns ClientLimitExceededException and takes nothing.
func (s *Server) admit(info *requestInfo, metadata, media int) error {
	if err := s.limiter.Admit(s.limitRequest(info, metadata, media)); err != nil {
		return limitExceeded(info.Stream, err)
	}
	info.MetadataCredits += metadata
	info.MediaCredits += media
	return nil
}

// connect is admit for a request that holds a connection of the given kind
// for as long as it runs: call release when it ends.
func (s *Server) connect(info *requestInfo, kind limits.Conn, media int) (release func(), err error) {
	release, err = s.limiter.Connect(kind, s.limitRequest(info, 0, media))
	if err != nil {
		return nil, limitExceeded(info.Stream, err)
	}
	info.MediaCredits += media
	return release, nil
}

func (s *Server) limitRequest(info *requestInfo, metadata, media int) limits.Request {
	op, ok := limits.OpOf(info.API)
	if !ok {
		op = limits.NoOp
	}
	if info.LowLatency {
		switch op {
		case limits.GetHLSMediaPlaylist:
			op = limits.GetHLSMediaPlaylistLL
		case limits.GetMP4MediaFragment:
			op = limits.GetMP4MediaPart
		}
	}
	r := limits.Request{Op: op, Stream: info.StreamID, Metadata: metadata, Media: media}
	if info.Session != nil {
		r.Session = limits.SessionID(info.Session.ID)
	}
	return r
}

// resolve finds the stream a request names (lookup) and admits the TPS
// limits of its API on it.
func (s *Server) resolve(ctx context.Context, ref streamRef) (*fragments.Stream, error) {
	st, err := s.lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := s.admit(infoOf(ctx), 0, 0); err != nil {
		return nil, err
	}
	return st, nil
}

// sessionCredits are the fragment credits a playback resource request
// consumes: its session's MaxMediaPlaylistFragmentResults /
// MaxManifestFragmentResults for a playlist or manifest, one media credit
// for a media fragment.
func sessionCredits(info *requestInfo) (metadata, media int) {
	switch info.API {
	case "GetHLSMediaPlaylist", "GetDASHManifest":
		return info.Session.MaxResults, 0
	case "GetMP4MediaFragment", "GetTSFragment":
		return 0, 1
	}
	return 0, 0
}
