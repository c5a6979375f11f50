// Command kvsgate is a self-hosted Amazon Kinesis Video Streams gateway.
//
//	kvsgate serve [--config FILE] [--listen 127.0.0.1:8080] [--data-dir ./data] [--public-url URL] [--limit name=value]... [--limits=off] [--demo] [--pprof ADDR] [--log-format text|json] [--metrics-listen ADDR]
//	kvsgate put --endpoint URL --stream NAME [--create] [--realtime] [--loop] FILE.mkv
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
	"github.com/kvsgate/kvsgate/fragments/sqlindex"
	"github.com/kvsgate/kvsgate/images"
	playback "github.com/kvsgate/kvsgate/session"
	"github.com/kvsgate/kvsgate/web"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "put":
		err = put(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvsgate:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  kvsgate serve [--config FILE] [--listen 127.0.0.1:8080] [--data-dir ./data] [--public-url URL] [--credentials FILE] [--ffmpeg PATH]
                [--limit name=value]... [--limits=off] [--demo] [--pprof ADDR] [--log-format text|json] [--metrics-listen ADDR]
                (serve -h lists every flag)
  kvsgate put --endpoint URL --stream NAME [--create] [--realtime] [--loop] FILE.mkv`)
	os.Exit(2)
}

func serve(args []string) error {
	o, err := parseServe(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		return err
	}

	log, err := newLogger(os.Stderr, o.logFormat, o.verbose)
	if err != nil {
		return err
	}
	slog.SetDefault(log)

	creds, err := web.LoadCredentials(o.credFile)
	if err != nil {
		return err
	}
	verifier := web.NewVerifier(creds)
	if verifier.Open() {
		log.Warn("NO CREDENTIALS CONFIGURED: every request is accepted unsigned. Set --credentials or KVSGATE_ACCESS_KEY_ID/KVSGATE_SECRET_ACCESS_KEY to require SigV4.")
	}

	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return err
	}
	idx, err := sqlindex.Open(filepath.Join(o.dataDir, "index.db"))
	if err != nil {
		return err
	}
	store, err := fragments.NewStore(idx, fragments.DiskPayloads{Dir: filepath.Join(o.dataDir, "payload")}, fragments.Config{
		Region: o.region, Account: o.account, MaxFragmentDuration: o.maxFragDur, Logger: log,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	if o.publicURL == "" {
		o.publicURL = "http://" + ln.Addr().String()
	}
	key, err := sessionKey(o.sessionKeyHex, filepath.Join(o.dataDir, "session.key"))
	if err != nil {
		return err
	}
	cacheBytes := int64(o.imagesCacheMB) << 20
	if cacheBytes == 0 {
		cacheBytes = -1 // images.Config: negative disables the cache
	}
	imagesCfg := images.Config{FFmpeg: o.ffmpegPath, CacheBytes: cacheBytes, Timeout: o.imagesTimeout, Concurrency: o.imagesProcs, Logger: log}
	if _, err := exec.LookPath(o.ffmpegPath); err != nil {
		log.Warn("ffmpeg not found: GetImages will fail with InternalFailure until it is installed (apt-get install ffmpeg) or --ffmpeg points at it", "ffmpeg", o.ffmpegPath, "err", err)
	}
	srv := web.New(web.Config{PublicURL: o.publicURL, Store: store, Verifier: verifier, Logger: log, Limits: &o.limits, SessionKey: key, Images: imagesCfg,
		ClipMaxFragments: o.clipMaxFragments, ClipMaxBytes: o.clipMaxBytes, ImagesMaxBytes: o.imagesMaxBytes, NoMetricsRoute: o.metricsListen != "", HLSPartTarget: o.partTarget})
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	srv.SetReady()
	log.Info("kvsgate serving", "listen", ln.Addr().String(), "data_dir", o.dataDir, "data_endpoint", o.publicURL)
	// The console's address is a line of its own for people; with JSON logs,
	// a log record like the rest.
	if o.logFormat == "json" {
		log.Info("web console", "url", consoleURL(ln.Addr(), o.publicURL)+"/")
	} else {
		fmt.Fprintf(os.Stderr, "kvsgate: web console at %s/\n", consoleURL(ln.Addr(), o.publicURL))
	}
	if o.limits.Off {
		log.Warn("request limits and fragment-credit quotas are OFF (--limits=off)")
	}

	if o.demo {
		go runDemo(ctx, log, o.publicURL, creds, o.region)
	}
	if o.metricsListen != "" {
		mln, err := net.Listen("tcp", o.metricsListen)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		log.Info("metrics endpoint", "metrics", "http://"+mln.Addr().String()+"/metrics")
		go http.Serve(mln, mux)
	}
	if o.pprofAddr != "" {
		pln, err := net.Listen("tcp", o.pprofAddr)
		if err != nil {
			return err
		}
		log.Warn("profiling endpoint enabled (unauthenticated)", "pprof", "http://"+pln.Addr().String()+"/debug/pprof/")
		go http.Serve(pln, pprofMux())
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight fragments")
	store.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
		hs.Close()
	}
	srv.WaitLingering(5 * time.Second)
	srv.Close()
	return store.Close()
}

func put(args []string) error {
	fs := flag.NewFlagSet("put", flag.ExitOnError)
	endpoint := fs.String("endpoint", "http://127.0.0.1:8080", "kvsgate (or KVS data) endpoint")
	stream := fs.String("stream", "", "stream name")
	create := fs.Bool("create", false, "create the stream if it does not exist")
	realtime := fs.Bool("realtime", false, "pace frames by their timecodes")
	loop := fs.Bool("loop", false, "repeat the file forever, timecodes continuing")
	region := fs.String("region", "us-west-2", "SigV4 region")
	fs.Parse(args)
	if *stream == "" || fs.NArg() != 1 {
		return errors.New("put needs --stream and one FILE.mkv")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p := &producer.Progress{W: os.Stderr}
	o := producer.Options{Endpoint: *endpoint, Stream: *stream, Create: *create, Realtime: *realtime, Loop: *loop, Region: *region, OnAck: p.OnAck}
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" {
		o.Credentials = &aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: os.Getenv("AWS_SESSION_TOKEN")}
	}
	stats, err := producer.Put(ctx, f, o)
	fmt.Fprintln(os.Stderr)
	if stats != nil {
		fmt.Fprintf(os.Stderr, "sent %d clusters, %d bytes; acks %v\n", stats.Clusters, stats.Bytes, stats.Acks)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// consoleURL is where a browser on this machine finds the web console: the
// public URL, unless the server listens on every interface (0.0.0.0, ::)
// and no public URL was given, then loopback on the listening port.
func consoleURL(addr net.Addr, publicURL string) string {
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() && publicURL == "http://"+addr.String() {
		return fmt.Sprintf("http://127.0.0.1:%d", tcp.Port)
	}
	return strings.TrimRight(publicURL, "/")
}

// newLogger makes the server's logger: slog lines on w, as text
// (key=value) or JSON, at debug level with verbose.
func newLogger(w io.Writer, format string, verbose bool) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbose {
		opts.Level = slog.LevelDebug
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// pprofMux serves net/http/pprof's handlers, on --pprof's listener only
// (not on http.DefaultServeMux, which kvsgate never serves anyway).
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

// sessionKey is the --session-key flag, or the key kept in the data dir.
func sessionKey(flagHex, path string) ([]byte, error) {
	if flagHex == "" {
		return playback.LoadOrCreateKey(path)
	}
	key, err := hex.DecodeString(flagHex)
	if err != nil || len(key) != 32 {
		return nil, errors.New("--session-key must be 64 hex digits (32 bytes)")
	}
	return key, nil
}
