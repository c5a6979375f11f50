// Command kvsgate is a self-hosted Amazon Kinesis Video Streams gateway.
//
//	kvsgate serve [--listen 127.0.0.1:8080] [--data-dir ./data] [--public-url URL] [--demo] [--pprof ADDR]
//	kvsgate put --endpoint URL --stream NAME [--create] [--realtime] [--loop] FILE.mkv
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
  kvsgate serve [--listen 127.0.0.1:8080] [--data-dir ./data] [--public-url URL] [--credentials FILE] [--ffmpeg PATH] [--demo] [--pprof ADDR]
  kvsgate put --endpoint URL --stream NAME [--create] [--realtime] [--loop] FILE.mkv`)
	os.Exit(2)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	dataDir := fs.String("data-dir", "./data", "where fragments and the index are kept")
	publicURL := fs.String("public-url", "", "URL GetDataEndpoint returns (default: http://<listen address>)")
	credFile := fs.String("credentials", "", "AWS shared-credentials file with the keys to accept (default: env KVSGATE_ACCESS_KEY_ID / KVSGATE_SECRET_ACCESS_KEY; none: no auth)")
	region := fs.String("region", "us-west-2", "region in stream ARNs")
	account := fs.String("account", "000000000000", "account id in stream ARNs")
	maxFragDur := fs.Duration("max-fragment-duration", 20*time.Second, "longest fragment accepted (PutMedia error 4002)")
	getMediaConns := fs.Int("getmedia-connections", 3, "GetMedia connections allowed per stream at once")
	sessionKeyHex := fs.String("session-key", "", "hex AES-256 key sealing HLS/DASH session tokens (default: <data-dir>/session.key, created on first start); servers sharing it serve each other's sessions")
	clipMaxFragments := fs.Int("clip-max-fragments", 200, "GetClip: most fragments in one clip (the first of the range; a response header says when a clip is cut)")
	clipMaxBytes := fs.Int64("clip-max-bytes", 100<<20, "GetClip: largest clip file in bytes (whole fragments; the first is always included)")
	ffmpegPath := fs.String("ffmpeg", "ffmpeg", "ffmpeg executable GetImages decodes with (a path, or a name looked up in PATH)")
	imagesCacheMB := fs.Int("images-cache-mb", 64, "memory for GetImages' cache of encoded images, in MiB (0: no cache)")
	imagesTimeout := fs.Duration("images-decode-timeout", 30*time.Second, "longest a GetImages decoder process may run")
	imagesProcs := fs.Int("images-decoders", 0, "GetImages decoder processes at once, across requests (default: the CPU count)")
	partTarget := fs.Duration("hls-part-target", web.DefaultPartTarget, "LL-HLS PART-TARGET of LIVE fMP4 sessions (parts of the fragment being received, blocking playlist reload); 0 turns LL-HLS off")
	demo := fs.Bool("demo", false, "create the stream 'demo' and feed it forever from the bundled sample clip")
	verbose := fs.Bool("v", false, "debug logging")
	pprofAddr := fs.String("pprof", "", "serve Go's /debug/pprof/ profiles on this address (e.g. 127.0.0.1:6060; unauthenticated: keep it on loopback); off by default")
	fs.Parse(args)
	if *partTarget < 0 || (*partTarget > 0 && *partTarget < 20*time.Millisecond) {
		return errors.New("--hls-part-target must be 0 (off) or at least 20ms")
	}
	if *partTarget == 0 {
		*partTarget = -1 // web.Config: negative turns LL-HLS off
	}
	if *clipMaxFragments < 1 || *clipMaxBytes < 1 {
		return errors.New("--clip-max-fragments and --clip-max-bytes must be at least 1")
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	creds, err := web.LoadCredentials(*credFile)
	if err != nil {
		return err
	}
	verifier := web.NewVerifier(creds)
	if verifier.Open() {
		log.Warn("NO CREDENTIALS CONFIGURED: every request is accepted unsigned. Set --credentials or KVSGATE_ACCESS_KEY_ID/KVSGATE_SECRET_ACCESS_KEY to require SigV4.")
	}

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	idx, err := sqlindex.Open(filepath.Join(*dataDir, "index.db"))
	if err != nil {
		return err
	}
	store, err := fragments.NewStore(idx, fragments.DiskPayloads{Dir: filepath.Join(*dataDir, "payload")}, fragments.Config{
		Region: *region, Account: *account, MaxFragmentDuration: *maxFragDur, Logger: log,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *publicURL == "" {
		*publicURL = "http://" + ln.Addr().String()
	}
	key, err := sessionKey(*sessionKeyHex, filepath.Join(*dataDir, "session.key"))
	if err != nil {
		return err
	}
	cacheBytes := int64(*imagesCacheMB) << 20
	if cacheBytes == 0 {
		cacheBytes = -1 // images.Config: negative disables the cache
	}
	imagesCfg := images.Config{FFmpeg: *ffmpegPath, CacheBytes: cacheBytes, Timeout: *imagesTimeout, Concurrency: *imagesProcs, Logger: log}
	if _, err := exec.LookPath(*ffmpegPath); err != nil {
		log.Warn("ffmpeg not found: GetImages will fail with InternalFailure until it is installed (apt-get install ffmpeg) or --ffmpeg points at it", "ffmpeg", *ffmpegPath, "err", err)
	}
	srv := web.New(web.Config{PublicURL: *publicURL, Store: store, Verifier: verifier, Logger: log, GetMediaConnections: *getMediaConns, SessionKey: key, Images: imagesCfg,
		ClipMaxFragments: *clipMaxFragments, ClipMaxBytes: *clipMaxBytes, HLSPartTarget: *partTarget})
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	srv.SetReady()
	log.Info("kvsgate serving", "listen", ln.Addr().String(), "data_dir", *dataDir, "data_endpoint", *publicURL)

	if *demo {
		go runDemo(ctx, log, *publicURL, creds, *region)
	}
	if *pprofAddr != "" {
		pln, err := net.Listen("tcp", *pprofAddr)
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
