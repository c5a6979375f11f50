package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/session/limits"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kvsgate.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseConfig(t *testing.T) {
	got, err := parseConfig(strings.NewReader("# a comment\n\n  listen = 0.0.0.0:9000  \nlimit = fragment-media-credits=100\r\nlimit=get-mp4-media-fragment-tps = 40\n  # indented comment\ndemo = true\npublic-url = http://h/a=b\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []setting{
		{"listen", "0.0.0.0:9000", 3},
		{"limit", "fragment-media-credits=100", 4},
		{"limit", "get-mp4-media-fragment-tps = 40", 5},
		{"demo", "true", 7},
		{"public-url", "http://h/a=b", 8},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"listen", "= x", "Listen = x", "--listen = x", "li sten = x", "a.b = c", strings.Repeat("x", maxConfigLine+1)} {
		if _, err := parseConfig(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
	if _, err := parseConfig(strings.NewReader(strings.Repeat("# filler\n", maxConfigBytes/9+1))); err == nil {
		t.Error("a file over the size limit accepted")
	}
}

// TestParseServe: defaults, then the config file, then flags, which
// override it; --limit repeats and --limits=off turns limits off.
func TestParseServe(t *testing.T) {
	o, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:8080" || !reflect.DeepEqual(o.limits, limits.Default()) {
		t.Fatalf("defaults: %+v", o)
	}

	conf := writeConfig(t, `# lab server
listen = 127.0.0.1:9999
data-dir = /tmp/x
max-fragment-duration = 10s
clip-max-fragments = 50
demo = true
limit = fragment-media-credits=1000
limit = get-hls-media-playlist-tps=10
getmedia-connections = 7
`)
	o, err = parseServe([]string{"--config", conf, "--data-dir", "/tmp/y", "--limit", "get-hls-media-playlist-tps=12", "--limit", "describe-stream-account-tps=0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := limits.Default()
	want.FragmentMediaCredits = 1000
	want.TPS[limits.GetHLSMediaPlaylist] = 12
	want.AccountTPS[limits.DescribeStream] = 0
	want.Connections[limits.GetMediaConns] = 7
	if o.listen != "127.0.0.1:9999" || o.dataDir != "/tmp/y" || o.maxFragDur != 10*time.Second || o.clipMaxFragments != 50 || !o.demo {
		t.Fatalf("settings: %+v", o)
	}
	if !reflect.DeepEqual(o.limits, want) {
		t.Fatalf("limits:\n%+v\nwant\n%+v", o.limits, want)
	}

	for _, args := range [][]string{{"--limits=off"}, {"--limits", "off"}, {"--config", writeConfig(t, "limits = off\n")}} {
		o, err = parseServe(args, io.Discard)
		if err != nil || !o.limits.Off {
			t.Fatalf("%v: off %v, %v", args, o != nil && o.limits.Off, err)
		}
	}
	if o, err = parseServe([]string{"--config", writeConfig(t, "limits = off\n"), "--limits=on"}, io.Discard); err != nil || o.limits.Off {
		t.Fatalf("--limits=on after a file's off: %v", err)
	}

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--limit", "nope=1"}, `no limit called "nope"`},
		{[]string{"--limit", "fragment-media-credits=-5"}, "not a whole number"},
		{[]string{"--limits=maybe"}, "on or off"},
		{[]string{"--config", writeConfig(t, "nope = 1\n")}, `line 1: no setting called "nope"`},
		{[]string{"--config", writeConfig(t, "\n\nlimit = x=1\n")}, "line 3: limit"},
		{[]string{"--config", writeConfig(t, "config = /etc/other\n")}, "cannot name another"},
		{[]string{"--config", writeConfig(t, "demo = maybe\n")}, "line 1: demo"},
		{[]string{"--config", "/nonexistent/kvsgate.conf"}, "no such file"},
		{[]string{"--clip-max-fragments", "0"}, "at least 1"},
		{[]string{"extra"}, "no arguments"},
	} {
		if _, err := parseServe(c.args, io.Discard); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.msg)
		}
	}
}

// FuzzParseConfig: any bytes are settings or an error, never a panic, and
// the settings are well formed.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("listen = 127.0.0.1:8080\n# c\nlimit = fragment-media-credits=5\n"))
	f.Add([]byte("a=b=c\r\n\n=\n"))
	f.Add([]byte("\xff\xfe = \x00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := parseConfig(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		for _, s := range ss {
			if !reSettingName.MatchString(s.Name) || s.Line < 1 || strings.ContainsAny(s.Value, "\n") || s.Value != strings.TrimSpace(s.Value) {
				t.Fatalf("bad setting %+v", s)
			}
			// A limit line either sets a figure or is an error.
			if s.Name == "limit" {
				var c limits.Config
				_ = c.SetPair(s.Value)
			}
		}
	})
}
