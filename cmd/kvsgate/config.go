package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"github.com/kvsgate/kvsgate/web"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/kvsgate/kvsgate/session/limits"
)

// A config file for `kvsgate serve --config FILE` holds `name = value`
// lines, where names are the serve flags' names (without dashes before
// them), blank lines, and lines starting with # (comments). Values run to
// the end of the line, spaces around them trimmed. `limit = name=value`
// lines may repeat, as --limit may. The file is applied before the command
// line, so flags override it.

// setting is one line of a config file.
type setting struct {
	Name, Value string
	Line        int
}

// Config files are small: anything bigger is a mistake.
const (
	maxConfigBytes = 1 << 20
	maxConfigLine  = 4096
)

var reSettingName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// parseConfig reads a config file's settings, in order.
func parseConfig(r io.Reader) ([]setting, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxConfigBytes+1))
	sc.Buffer(make([]byte, 0, 512), maxConfigLine)
	var out []setting
	read := 0
	for n := 1; sc.Scan(); n++ {
		read += len(sc.Bytes()) + 1
		if read > maxConfigBytes+1 {
			return nil, fmt.Errorf("larger than %d bytes", maxConfigBytes)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !reSettingName.MatchString(name) {
			return nil, fmt.Errorf("line %d: not `name = value`", n)
		}
		out = append(out, setting{Name: name, Value: value, Line: n})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("a line is longer than %d bytes", maxConfigLine)
		}
		return nil, err
	}
	return out, nil
}

// serveOptions are `kvsgate serve`'s settings.
type serveOptions struct {
	listen, dataDir, publicURL, credFile string
	region, account                      string
	maxFragDur                           time.Duration
	sessionKeyHex                        string
	clipMaxFragments                     int
	clipMaxBytes                         int64
	ffmpegPath                           string
	imagesCacheMB, imagesProcs           int
	imagesTimeout                        time.Duration
	imagesMaxBytes                       int64
	partTarget                           time.Duration
	demo, verbose                        bool
	pprofAddr                            string
	logFormat, metricsListen             string
	config                               string
	limits                               limits.Config
}

// limitFlag is --limit name=value, repeatable.
type limitFlag struct{ cfg *limits.Config }

func (f limitFlag) String() string     { return "" }
func (f limitFlag) Set(v string) error { return f.cfg.SetPair(v) }

// limitsSwitch is --limits on|off.
type limitsSwitch struct{ cfg *limits.Config }

func (f limitsSwitch) String() string {
	if f.cfg != nil && f.cfg.Off {
		return "off"
	}
	return "on"
}

func (f limitsSwitch) Set(v string) error {
	switch v {
	case "on":
		f.cfg.Off = false
	case "off":
		f.cfg.Off = true
	default:
		return errors.New("--limits is on or off")
	}
	return nil
}

// connectionsFlag is --getmedia-connections, kept from before --limit:
// --limit get-media-connections=N.
type connectionsFlag struct{ cfg *limits.Config }

func (f connectionsFlag) String() string     { return "3" }
func (f connectionsFlag) Set(v string) error { return f.cfg.Set("get-media-connections", v) }

// serveFlags defines serve's flags on o, whose fields hold their defaults.
func serveFlags(o *serveOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.dataDir, "data-dir", "./data", "where fragments and the index are kept")
	fs.StringVar(&o.publicURL, "public-url", "", "URL GetDataEndpoint returns (default: http://<listen address>)")
	fs.StringVar(&o.credFile, "credentials", "", "AWS shared-credentials file with the keys to accept (default: env KVSGATE_ACCESS_KEY_ID / KVSGATE_SECRET_ACCESS_KEY; none: no auth)")
	fs.StringVar(&o.region, "region", "us-west-2", "region in stream ARNs")
	fs.StringVar(&o.account, "account", "000000000000", "account id in stream ARNs")
	fs.DurationVar(&o.maxFragDur, "max-fragment-duration", 20*time.Second, "longest fragment accepted (PutMedia error 4002)")
	fs.Var(connectionsFlag{&o.limits}, "getmedia-connections", "GetMedia connections allowed per stream at once (the same as --limit get-media-connections=N)")
	fs.StringVar(&o.sessionKeyHex, "session-key", "", "hex AES-256 key sealing HLS/DASH session tokens (default: <data-dir>/session.key, created on first start); servers sharing it serve each other's sessions")
	fs.IntVar(&o.clipMaxFragments, "clip-max-fragments", 200, "GetClip: most fragments in one clip (the first of the range; a response header says when a clip is cut)")
	fs.Int64Var(&o.clipMaxBytes, "clip-max-bytes", 100<<20, "GetClip: largest clip file in bytes (whole fragments; the first is always included)")
	fs.StringVar(&o.ffmpegPath, "ffmpeg", "ffmpeg", "ffmpeg executable GetImages decodes with (a path, or a name looked up in PATH)")
	fs.IntVar(&o.imagesCacheMB, "images-cache-mb", 64, "memory for GetImages' cache of encoded images, in MiB (0: no cache)")
	fs.DurationVar(&o.imagesTimeout, "images-decode-timeout", 30*time.Second, "longest a GetImages decoder process may run")
	fs.Int64Var(&o.imagesMaxBytes, "images-max-bytes", 100e6, "GetImages: largest response in bytes (a page ends early, its NextToken continuing, rather than pass it)")
	fs.IntVar(&o.imagesProcs, "images-decoders", 0, "GetImages decoder processes at once, across requests (default: the CPU count)")
	fs.DurationVar(&o.partTarget, "hls-part-target", web.DefaultPartTarget, "LL-HLS PART-TARGET of LIVE fMP4 sessions (parts of the fragment being received, blocking playlist reload); 0 turns LL-HLS off")
	fs.BoolVar(&o.demo, "demo", false, "create the stream 'demo' and feed it forever from the bundled sample clip")
	fs.BoolVar(&o.verbose, "v", false, "debug logging (also logs health checks and metrics scrapes)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log lines as text (key=value) or json")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve /metrics on this address instead of the API's (e.g. 127.0.0.1:9100); default: GET /metrics on --listen")
	fs.StringVar(&o.pprofAddr, "pprof", "", "serve Go's /debug/pprof/ profiles on this address (e.g. 127.0.0.1:6060; unauthenticated: keep it on loopback); off by default")
	fs.StringVar(&o.config, "config", "", "read settings from this `FILE` first (name = value lines named as these flags; flags override it)")
	fs.Var(limitFlag{&o.limits}, "limit", "set one limit, `name=value` (repeatable; 0: no limit; README lists the names and defaults)")
	fs.Var(limitsSwitch{&o.limits}, "limits", "`off` turns every request limit and quota off (a lab); default on")
	return fs
}

// parseServe reads serve's settings: the defaults, then the --config file,
// then the command line.
func parseServe(args []string, errOut io.Writer) (*serveOptions, error) {
	// A first pass finds --config (errors are reported by the second).
	probe := &serveOptions{limits: limits.Default()}
	pfs := serveFlags(probe)
	pfs.SetOutput(io.Discard)
	pfs.Parse(args)

	o := &serveOptions{limits: limits.Default()}
	fs := serveFlags(o)
	fs.SetOutput(errOut)
	if probe.config != "" {
		f, err := os.Open(probe.config)
		if err != nil {
			return nil, err
		}
		settings, err := parseConfig(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", probe.config, err)
		}
		for _, s := range settings {
			if s.Name == "config" {
				return nil, fmt.Errorf("%s line %d: a config file cannot name another", probe.config, s.Line)
			}
			if fs.Lookup(s.Name) == nil {
				return nil, fmt.Errorf("%s line %d: no setting called %q", probe.config, s.Line, s.Name)
			}
			if err := fs.Set(s.Name, s.Value); err != nil {
				return nil, fmt.Errorf("%s line %d: %s: %v", probe.config, s.Line, s.Name, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve takes no arguments (got %q)", fs.Args())
	}
	if o.clipMaxFragments < 1 || o.clipMaxBytes < 1 || o.imagesMaxBytes < 1 {
		return nil, errors.New("--clip-max-fragments, --clip-max-bytes and --images-max-bytes must be at least 1")
	}
	if o.partTarget < 0 || (o.partTarget > 0 && o.partTarget < 20*time.Millisecond) {
		return nil, errors.New("--hls-part-target must be 0 (off) or at least 20ms")
	}
	if o.partTarget == 0 {
		o.partTarget = -1 // web.Config: negative turns LL-HLS off
	}
	return o, nil
}
