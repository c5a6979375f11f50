package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// The web console: plain HTML, CSS and ES modules under web/console,
// embedded in the binary. index.html is served at / (every page of the
// console is a hash route of it) and the assets under
// /console/<version>/..., where <version> is a hash of every embedded file:
// index.html names them with the current version, so they can be cached
// for a year and a new build is a new URL. index.html itself is revalidated
// (ETag) on every load.
//
//go:embed console
var consoleFS embed.FS

// consoleVersionToken in index.html is replaced by the assets' version.
const consoleVersionToken = "__CONSOLE_VERSION__"

// consoleAsset is one embedded file, ready to send.
type consoleAsset struct {
	body        []byte
	etag        string
	contentType string

	gzipOnce sync.Once
	gz       []byte // nil: not worth compressing
}

// consoleAssets are the embedded files, read once on first use.
type consoleAssets struct {
	once    sync.Once
	version string
	index   *consoleAsset
	files   map[string]*consoleAsset // path under console/, e.g. "app.js"
}

var console consoleAssets

func (ca *consoleAssets) load() {
	ca.once.Do(func() {
		ca.files = map[string]*consoleAsset{}
		var names []string
		fs.WalkDir(consoleFS, "console", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			names = append(names, p)
			return nil
		})
		sort.Strings(names)
		all := sha256.New()
		for _, p := range names {
			b, err := consoleFS.ReadFile(p)
			if err != nil {
				panic(err) // embedded files are always readable
			}
			rel := strings.TrimPrefix(p, "console/")
			a := newConsoleAsset(rel, b)
			ca.files[rel] = a
			all.Write([]byte(rel))
			all.Write([]byte(a.etag))
		}
		ca.version = hex.EncodeToString(all.Sum(nil))[:12]
		if idx := ca.files["index.html"]; idx != nil {
			ca.index = newConsoleAsset("index.html", bytes.ReplaceAll(idx.body, []byte(consoleVersionToken), []byte(ca.version)))
		}
	})
}

func newConsoleAsset(name string, body []byte) *consoleAsset {
	sum := sha256.Sum256(body)
	return &consoleAsset{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, contentType: consoleContentType(name)}
}

// consoleContentType is the Content-Type of an asset, by extension.
func consoleContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".json":
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

// gzipped is the asset compressed with gzip, made on first request; nil for
// bodies that do not shrink by at least a tenth (images).
func (a *consoleAsset) gzipped() []byte {
	a.gzipOnce.Do(func() {
		if len(a.body) < 512 {
			return
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(a.body)
		zw.Close()
		if buf.Len() < len(a.body)*9/10 {
			a.gz = buf.Bytes()
		}
	})
	return a.gz
}

// serve writes the asset with its ETag, answering If-None-Match with 304
// and sending gzip to clients that accept it.
func (a *consoleAsset) serve(c echo.Context, cacheControl string) error {
	h := c.Response().Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	if etagMatch(c.Request().Header.Get("If-None-Match"), a.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	body := a.body
	if acceptsGzip(c.Request().Header.Get("Accept-Encoding")) {
		if gz := a.gzipped(); gz != nil {
			h.Set("Content-Encoding", "gzip")
			body = gz
		}
	}
	if c.Request().Method == http.MethodHead {
		h.Set("Content-Length", strconv.Itoa(len(body)))
		return c.NoContent(http.StatusOK)
	}
	return c.Blob(http.StatusOK, a.contentType, body)
}

// etagMatch reports whether an If-None-Match header lists etag (or is *).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (listed without q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "q" {
				q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return err == nil && q > 0
			}
		}
		return true
	}
	return false
}

// consoleIndex serves index.html at /.
func (s *Server) consoleIndex(c echo.Context) error {
	console.load()
	if console.index == nil {
		return echo.ErrNotFound
	}
	return console.index.serve(c, "no-cache")
}

// consoleAsset serves /console/<version>/<path>. The current version is
// cached for a year; another one (a page loaded before an upgrade) gets the
// current file, revalidated every time.
func (s *Server) consoleAsset(c echo.Context) error {
	console.load()
	version, rel, ok := strings.Cut(strings.TrimPrefix(c.Request().URL.Path, "/console/"), "/")
	a := console.files[rel]
	if !ok || a == nil || rel == "index.html" {
		return echo.ErrNotFound
	}
	if version == console.version {
		return a.serve(c, "public, max-age=31536000, immutable")
	}
	return a.serve(c, "no-cache")
}

// consoleRoutes adds the console's routes.
func (s *Server) consoleRoutes(e *echo.Echo) {
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		e.Add(m, "/", s.consoleIndex)
		e.Add(m, "/console/*", s.consoleAsset)
	}
}
