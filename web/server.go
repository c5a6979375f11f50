// Package web is kvsgate's HTTP layer: routing (echo), the AWS JSON request
// and error model, SigV4, and the handlers that map API calls onto the
// archive and the media packages.
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	mp4clip "github.com/kvsgate/kvsgate/clip"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/images"
	"github.com/kvsgate/kvsgate/session"
	"github.com/kvsgate/kvsgate/session/limits"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the HTTP layer.
type Config struct {
	// PublicURL is what GetDataEndpoint returns, e.g. http://127.0.0.1:8080.
	PublicURL string
	Store     *fragments.Store
	Verifier  *Verifier
	Logger    *slog.Logger
	// MaxJSONBody bounds JSON request bodies. Default 1 MiB.
	MaxJSONBody int64
	// Limits are the request limits and fragment-credit quotas
	// (session/limits). nil: the guide's defaults, limits.Default().
	Limits *limits.Config
	// SessionKey seals HLS and DASH session tokens (32 bytes). Servers that
	// share it serve each other's sessions. A random key if nil.
	SessionKey []byte
	// ClipMaxFragments and ClipMaxBytes bound a GetClip response: the first
	// ClipMaxFragments fragments of the range, or fewer so that the file
	// stays within ClipMaxBytes. Defaults 200 and 100 MiB, as KVS.
	ClipMaxFragments int
	ClipMaxBytes     int64
	// Images configures GetImages' decoder and cache.
	Images images.Config
	// ImagesMaxBytes bounds a GetImages response: a page ends early (its
	// NextToken continues) rather than pass it. Default 100 MB, as KVS.
	ImagesMaxBytes int64
	// Metrics is the registry the API metrics are registered on and GET
	// /metrics serves; a new one with the Go and process collectors if nil.
	Metrics *prometheus.Registry
	// NoMetricsRoute leaves GET /metrics out of the API's routes (serve
	// MetricsHandler on another listener instead).
	NoMetricsRoute bool
	// HLSPartTarget is the PART-TARGET of LL-HLS playlists (LIVE sessions
	// in fMP4): 0 means DefaultPartTarget, negative turns LL-HLS off.
	HLSPartTarget time.Duration
}

// Server serves the KVS API.
type Server struct {
	cfg   Config
	e     *echo.Echo
	store *fragments.Store
	log   *slog.Logger
	auth  *Verifier
	ready atomic.Bool

	limiter     *limits.Limiter
	lingering   sync.WaitGroup // PutMedia connections ended before their body
	sessions    *session.Keyring
	headers     sync.Map // header id -> *fragments.Header (headers never change)
	images      *images.Renderer
	segments    *segmentCache
	streamsByID sync.Map // stream id -> cachedStream, for session requests
	windowRows  windowCache
	metrics     *metrics
	parts       partLists
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxJSONBody == 0 {
		cfg.MaxJSONBody = 1 << 20
	}
	if cfg.Limits == nil {
		def := limits.Default()
		cfg.Limits = &def
	}
	if cfg.ClipMaxFragments <= 0 {
		cfg.ClipMaxFragments = mp4clip.DefaultMaxFragments
	}
	if cfg.ImagesMaxBytes <= 0 {
		cfg.ImagesMaxBytes = 100e6
	}
	if cfg.ClipMaxBytes <= 0 {
		cfg.ClipMaxBytes = mp4clip.DefaultMaxBytes
	}
	if cfg.HLSPartTarget == 0 {
		cfg.HLSPartTarget = DefaultPartTarget
	}
	if cfg.Verifier == nil {
		cfg.Verifier = NewVerifier(nil)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.SessionKey == nil {
		cfg.SessionKey = make([]byte, 32)
		rand.Read(cfg.SessionKey)
	}
	keyring, err := session.NewKeyring(cfg.SessionKey)
	if err != nil {
		panic(err) // a key of the wrong size is a programming error: main checks it
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger, auth: cfg.Verifier, sessions: keyring,
		segments: newSegmentCache(segmentCacheBytes, segmentCacheFragments), limiter: limits.New(*cfg.Limits, time.Now),
		metrics: newMetrics(cfg.Metrics)}
	if cfg.Images.Logger == nil {
		cfg.Images.Logger = cfg.Logger
	}
	s.images = images.New(cfg.Images)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Pre(s.requestID)
	e.Use(s.describe)
	// Metrics and the request log see every request, its error written.
	e.Use(s.observe)
	// CORS on every API and playback endpoint, preflight included, so
	// browser players and web apps on other origins can use kvsgate.
	e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins: []string{"*"},
		AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions},
		AllowHeaders: []string{"*", "Authorization", "Content-Type", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256", "X-Amz-User-Agent", "Range"},
		ExposeHeaders: []string{"x-amzn-ErrorType", "x-amz-RequestId", "x-amzn-RequestId", "Content-Length", "Content-Type",
			"x-amzn-kvsgate-clip-truncated", "x-amzn-kvsgate-clip-next-timestamp", "Retry-After"},
		MaxAge: 86400,
	}))
	s.e = e

	e.GET("/healthz", func(c echo.Context) error {
		if !s.ready.Load() {
			return c.String(http.StatusServiceUnavailable, "starting\n")
		}
		return c.String(http.StatusOK, "ok\n")
	})
	// Prometheus scrapes without signing; its own requests are not counted.
	if !cfg.NoMetricsRoute {
		e.GET("/metrics", echo.WrapHandler(s.metrics.handler))
	}

	// The web console (console.go).
	s.consoleRoutes(e)

	// Control plane.
	e.POST("/createStream", jsonAPI(s, s.createStream))
	e.POST("/describeStream", jsonAPI(s, s.describeStream))
	e.POST("/listStreams", jsonAPI(s, s.listStreams))
	e.POST("/deleteStream", jsonAPI(s, s.deleteStream))
	e.POST("/updateStream", jsonAPI(s, s.updateStream))
	e.POST("/updateDataRetention", jsonAPI(s, s.updateDataRetention))
	e.POST("/getDataEndpoint", jsonAPI(s, s.getDataEndpoint))
	e.POST("/tagStream", jsonAPI(s, s.tagStream))
	e.POST("/untagStream", jsonAPI(s, s.untagStream))
	e.POST("/listTagsForStream", jsonAPI(s, s.listTagsForStream))
	e.POST("/TagResource", jsonAPI(s, s.tagResource))
	e.POST("/UntagResource", jsonAPI(s, s.untagResource))
	e.POST("/ListTagsForResource", jsonAPI(s, s.listTagsForResource))

	// Media and archived media.
	e.POST("/putMedia", s.putMedia)
	e.POST("/listFragments", jsonAPI(s, s.listFragments))
	e.POST("/getMedia", s.getMedia)
	e.POST("/getMediaForFragmentList", s.getMediaForFragmentList)
	e.POST("/getClip", s.getClip)
	e.POST("/getImages", s.getImages)

	// HLS sessions. Their resources are answered for GET and HEAD.
	e.POST("/getHLSStreamingSessionURL", jsonAPI(s, s.getHLSStreamingSessionURL))
	for path, h := range map[string]echo.HandlerFunc{
		"/hls/v1/getHLSMasterPlaylist.m3u8": s.hlsMasterPlaylist,
		"/hls/v1/getHLSMediaPlaylist.m3u8":  s.hlsMediaPlaylist,
		"/hls/v1/getMP4InitFragment.mp4":    s.mp4Init(session.HLS),
		"/hls/v1/getMP4MediaFragment.mp4":   s.mp4Media(session.HLS),
		"/hls/v1/getTSFragment.ts":          s.hlsTS,
	} {
		e.GET(path, h)
		e.HEAD(path, h)
	}

	// DASH sessions: the same fMP4 segments as HLS, from the same handlers.
	e.POST("/getDASHStreamingSessionURL", jsonAPI(s, s.getDASHStreamingSessionURL))
	for path, h := range map[string]echo.HandlerFunc{
		"/dash/v1/getDASHManifest.mpd":     s.dashManifest,
		"/dash/v1/getMP4InitFragment.mp4":  s.mp4Init(session.DASH),
		"/dash/v1/getMP4MediaFragment.mp4": s.mp4Media(session.DASH),
		dashTimePath:                       s.dashTime,
	} {
		e.GET(path, h)
		e.HEAD(path, h)
	}
	return s
}

// Close stops what the server runs besides its handlers: GetImages' idle
// decoder processes. Call it when the server is done serving.
func (s *Server) Close() { s.images.Close() }

// SetReady makes /healthz answer 200.
func (s *Server) SetReady() { s.ready.Store(true) }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.e }

// MetricsHandler serves the metrics in the Prometheus text format.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler }

// DataEndpoint is the URL GetDataEndpoint returns.
func (s *Server) DataEndpoint() string { return s.cfg.PublicURL }

type ctxKey int

const requestIDKey ctxKey = 0

// requestID gives every request an id, sent back as x-amz-RequestId (and
// x-amzn-RequestId, which the SDKs read) on successes and errors alike.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := uuid.NewString()
		c.Set("request_id", id)
		h := c.Response().Header()
		h.Set("x-amz-RequestId", id)
		h.Set("x-amzn-RequestId", id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get("request_id").(string)
	return id
}

// jsonAPI adapts a handler of one AWS JSON operation: it reads and checks
// the request (readJSON) and encodes the output.
func jsonAPI[In any, Out any](s *Server, h func(ctx context.Context, in *In) (*Out, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		in := new(In)
		if err := s.readJSON(c, in); err != nil {
			return err
		}
		out, err := h(c.Request().Context(), in)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

// readJSON reads an AWS JSON request body (bounded), checks its signature
// and decodes it into in.
func (s *Server) readJSON(c echo.Context, in any) error {
	r := c.Request()
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxJSONBody+1))
	if err != nil {
		return invalidArg("cannot read the request body: %v", err)
	}
	if int64(len(body)) > s.cfg.MaxJSONBody {
		return invalidArg("request body larger than %d bytes", s.cfg.MaxJSONBody)
	}
	sum := sha256.Sum256(body)
	if err := s.auth.Verify(r, hex.EncodeToString(sum[:])); err != nil {
		return err
	}
	return decodeJSON(body, in)
}

// decodeJSON decodes an AWS JSON body. An empty body is an empty object.
// Unknown fields are ignored (newer SDKs may send them); fields of the wrong
// type and malformed JSON are InvalidArgumentException.
func decodeJSON(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return invalidArg("field %s: expected %s", te.Field, te.Type)
		}
		var ae *APIError
		if errors.As(err, &ae) {
			return ae
		}
		return invalidArg("malformed JSON: %v", err)
	}
	if dec.More() {
		return invalidArg("malformed JSON: trailing data")
	}
	return nil
}
