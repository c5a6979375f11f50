package web

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/sqlindex"
	"github.com/kvsgate/kvsgate/session/limits"
)

// testServer is a real kvsgate (SQLite index, payload files in a temp dir)
// on a loopback listener, for tests that drive it through real clients.
type testServer struct {
	URL    string
	Dir    string
	Store  *fragments.Store
	Server *Server
	http   *httptest.Server
}

// testRepo is the repository root, for testdata.
const testRepo = ".."

// newTestServer starts a server; creds nil means no SigV4 check. The server
// and store are closed when the test ends.
func newTestServer(t testing.TB, creds []Credentials, cfg fragments.Config) *testServer {
	t.Helper()
	dir := t.TempDir()
	return startTestServer(t, dir, creds, cfg)
}

// startTestServer starts a server on an existing data dir (restart tests).
// Its request limits are off (tests of other things make requests faster
// than a player would); newLimitedTestServer turns them on.
func startTestServer(t testing.TB, dir string, creds []Credentials, cfg fragments.Config) *testServer {
	t.Helper()
	return startTestServerWith(t, dir, creds, cfg, limits.Config{Off: true}, nil)
}

// newLimitedTestServer starts a server with the limits lc, on the clock now
// (nil: the real one), without SigV4.
func newLimitedTestServer(t testing.TB, lc limits.Config, now func() time.Time) *testServer {
	t.Helper()
	return startTestServerWith(t, t.TempDir(), nil, fragments.Config{}, lc, now)
}

func startTestServerWith(t testing.TB, dir string, creds []Credentials, cfg fragments.Config, lc limits.Config, now func() time.Time) *testServer {
	t.Helper()
	idx, err := sqlindex.Open(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	store, err := fragments.NewStore(idx, fragments.DiskPayloads{Dir: filepath.Join(dir, "payload")}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Dir: dir, Store: store}
	hs := httptest.NewUnstartedServer(nil)
	ts.http = hs
	ts.URL = "http://" + hs.Listener.Addr().String()
	ts.Server = New(Config{PublicURL: ts.URL, Store: store, Verifier: NewVerifier(creds), Logger: cfg.Logger, Limits: &lc})
	ts.Server.limiter = limits.New(lc, now)
	hs.Config.Handler = ts.Server.Handler()
	ts.Server.SetReady()
	hs.Start()
	t.Cleanup(ts.Close)
	return ts
}

// Close stops the server (draining PutMedia) and closes the store.
func (ts *testServer) Close() {
	if ts.http == nil {
		return
	}
	ts.Store.Drain()
	ts.http.CloseClientConnections()
	ts.http.Close()
	ts.Server.Close()
	ts.Store.Close()
	ts.http = nil
}

// requireTool returns the path of an external tool the test drives (ffmpeg,
// gst-launch-1.0, /usr/bin/aws). Missing, the test is skipped, unless
// KVSGATE_REQUIRE_TOOLS=1 (set by `make test`, which installs them): then it fails.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("KVSGATE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is required (make test installs it): %v", name, err)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// awsCLIEnv is the environment the tests run /usr/bin/aws in: test keys,
// us-west-2, and no config, credentials file, instance metadata or pager of
// the machine's.
func awsCLIEnv() []string {
	return append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=us-west-2",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
}
