package web

import (
	"context"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/session"
	"github.com/labstack/echo/v4"
)

// requestInfo is what is known of a request as it is served: the API
// operation its route names and, once a handler has resolved it, the stream
// it is about. Limits, metrics and the request log all read it, so each
// handler resolves its stream once, in resolve or openSession.
type requestInfo struct {
	API      string // "ListFragments", "GetHLSMediaPlaylist", ...; "" for other routes
	Stream   string // stream name, "" until resolved (or for account-level calls)
	StreamID int64
	// Session is the playback session of an HLS or DASH resource request.
	Session *session.Session
	// LowLatency marks an LL-HLS request (a blocking playlist reload or a
	// partial segment), which has limits of its own.
	LowLatency bool
	// MetadataCredits and MediaCredits are the fragment credits the request
	// consumed (the guide's fragment-metadata and fragment-media quotas),
	// set by the limiter; metrics report them as ArchivedFragmentsConsumed.
	MetadataCredits, MediaCredits int
	// Error is the AWS error type the request ended with (handleError), or
	// the error code of a PutMedia ERROR ack or a GetMedia error in the
	// stream; "" if none. The request's Success and its log line read it.
	Error string
}

type infoKey struct{}

// apiNames maps each route to its operation's name in the KVS API (the
// names CloudWatch metrics and the quota tables use).
var apiNames = map[string]string{
	"/createStream":               "CreateStream",
	"/describeStream":             "DescribeStream",
	"/listStreams":                "ListStreams",
	"/deleteStream":               "DeleteStream",
	"/updateStream":               "UpdateStream",
	"/updateDataRetention":        "UpdateDataRetention",
	"/getDataEndpoint":            "GetDataEndpoint",
	"/tagStream":                  "TagStream",
	"/untagStream":                "UntagStream",
	"/listTagsForStream":          "ListTagsForStream",
	"/TagResource":                "TagResource",
	"/UntagResource":              "UntagResource",
	"/ListTagsForResource":        "ListTagsForResource",
	"/putMedia":                   "PutMedia",
	"/listFragments":              "ListFragments",
	"/getMedia":                   "GetMedia",
	"/getMediaForFragmentList":    "GetMediaForFragmentList",
	"/getClip":                    "GetClip",
	"/getImages":                  "GetImages",
	"/getHLSStreamingSessionURL":  "GetHLSStreamingSessionURL",
	"/getDASHStreamingSessionURL": "GetDASHStreamingSessionURL",

	"/hls/v1/getHLSMasterPlaylist.m3u8": "GetHLSMasterPlaylist",
	"/hls/v1/getHLSMediaPlaylist.m3u8":  "GetHLSMediaPlaylist",
	"/hls/v1/getMP4InitFragment.mp4":    "GetMP4InitFragment",
	"/hls/v1/getMP4MediaFragment.mp4":   "GetMP4MediaFragment",
	"/hls/v1/getTSFragment.ts":          "GetTSFragment",
	"/dash/v1/getDASHManifest.mpd":      "GetDASHManifest",
	"/dash/v1/getMP4InitFragment.mp4":   "GetMP4InitFragment",
	"/dash/v1/getMP4MediaFragment.mp4":  "GetMP4MediaFragment",
}

// describe installs the request's requestInfo, named after its route, in
// the echo context and in the request's context (JSON handlers see only the
// latter).
func (s *Server) describe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		info := &requestInfo{API: apiNames[c.Path()]}
		c.Set("info", info)
		r := c.Request()
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
		return next(c)
	}
}

// infoOf returns the requestInfo of a request's context; a fresh one when
// the context has none (tests calling handlers directly).
func infoOf(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}

// infoOfC is infoOf for an echo context.
func infoOfC(c echo.Context) *requestInfo {
	if info, ok := c.Get("info").(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}

// noteStream records the stream a request turned out to be about.
func (i *requestInfo) noteStream(st *fragments.Stream) {
	i.Stream, i.StreamID = st.Name, st.ID
}
