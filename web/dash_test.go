package web

import (
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/dash"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/zencoder/go-dash/v3/mpd"
)

type dashClient struct{ hlsClient }

func (d dashClient) sessionURL(body map[string]any) (int, string, string) {
	resp, b := gmPost(d.t, d.ts.URL, "/getDASHStreamingSessionURL", body)
	var out struct{ DASHStreamingSessionURL string }
	json.Unmarshal(b, &out)
	return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), out.DASHStreamingSessionURL
}

// mustSessionURL gets a session URL or fails.
func (d dashClient) mustSessionURL(body map[string]any) string {
	d.t.Helper()
	status, typ, u := d.sessionURL(body)
	if status != 200 || !strings.HasPrefix(u, d.ts.URL+"/dash/v1/getDASHManifest.mpd?SessionToken=") {
		d.t.Fatalf("session URL: %d %s %q", status, typ, u)
	}
	return u
}

// manifest GETs an MPD, checks its headers and that go-dash reads it.
func (d dashClient) manifest(u string) (string, *mpd.MPD) {
	d.t.Helper()
	resp, b := d.get(u)
	if resp.StatusCode != 200 {
		d.t.Fatalf("manifest: %d %s", resp.StatusCode, b)
	}
	if ct, cl := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Length"); ct != dashMIME || cl != strconv.Itoa(len(b)) {
		d.t.Fatalf("manifest Content-Type %q, Content-Length %q for %d bytes", ct, cl, len(b))
	}
	m, err := mpd.ReadFromString(string(b))
	if err != nil {
		d.t.Fatalf("go-dash cannot read the MPD: %v\n%s", err, b)
	}
	var any struct{}
	if err := xml.Unmarshal(b, &any); err != nil {
		d.t.Fatalf("not XML: %v", err)
	}
	return string(b), m
}

var (
	reKVSFn     = regexp.MustCompile(`kvs:fn="(\d+)"`)
	rePublish   = regexp.MustCompile(`publishTime="[^"]*"`)
	reAvailable = regexp.MustCompile(`availabilityStartTime="[^"]*"`)
)

// normalizeMPD replaces what changes from run to run: the session token,
// fragment numbers (F<index> in ingest order), the server's address, and
// the wall-clock attributes named in clock (publishTime always).
func normalizeMPD(text, server string, numbers []string, creation bool) string {
	text = reToken.ReplaceAllString(text, "SessionToken=TOKEN")
	text = strings.ReplaceAll(text, server, "http://SERVER")
	text = rePublish.ReplaceAllString(text, `publishTime="NOW"`)
	if creation {
		text = reAvailable.ReplaceAllString(text, `availabilityStartTime="SESSION-CREATION"`)
	}
	return reKVSFn.ReplaceAllStringFunc(text, func(m string) string {
		n := reKVSFn.FindStringSubmatch(m)[1]
		for i, x := range numbers {
			if x == n {
				return `kvs:fn="F` + strconv.Itoa(i) + `"`
			}
		}
		return `kvs:fn="UNKNOWN"`
	})
}

func dashGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "dash", name)
	if *updateGolden {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// freezeServerTimes sets a stream's server timestamps to its producer
// timestamps plus offset, as if the server's clock had been frozen to the
// producer's: SERVER_TIMESTAMP manifests become reproducible. (Test only:
// a second connection to the index's SQLite file.)
func freezeServerTimes(t testing.TB, ts *testServer, stream string, offset time.Duration) {
	t.Helper()
	st, err := ts.Store.Stream(stream, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.Dir, "index.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE fragments SET server_ns = producer_ns + ? WHERE stream_id = ?`, int64(offset), st.ID); err != nil {
		t.Fatal(err)
	}
}

// dashGoldenStream ingests the HLS golden test's eight fragments (a 3 s gap
// after the 3rd, a 200 ms overlap before the 6th, new codec private data
// from the 7th) and freezes their server times 1 h 0.123 s after their
// producer times. It returns the fragment numbers in ingest order.
func dashGoldenStream(t *testing.T, ts *testServer, name string, base int64, audio bool) []string {
	frags := []hlsFragment{{base, 1000}, {base + 1000, 1000}, {base + 2000, 1000}, {base + 6000, 1000}, {base + 7000, 1000},
		{base + 7800, 1000}, {base + 8800, 1000}, {base + 9800, 1200}}
	gmIngestBytes(t, ts, name, hlsStreamBytes(frags[:5], audio, -1), false, 87600)
	numbers := gmIngestBytes(t, ts, name, hlsStreamBytes(frags[5:], audio, 1), false, -1)
	if len(numbers) != len(frags) {
		t.Fatalf("%d fragments ingested", len(numbers))
	}
	freezeServerTimes(t, ts, name, time.Hour+123*time.Millisecond)
	return numbers
}

func TestDashGoldenManifests(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	d := dashClient{hlsClient{t, ts}}
	// The fixed producer time of the HLS golden test (2026-09-21).
	base := int64(1790000000000)
	// LIVE sessions need a fragment of the last 30 s: the frozen clock is
	// two months behind.
	defer func(w time.Duration) { liveWindow = w }(liveWindow)
	liveWindow = 100 * 365 * 24 * time.Hour
	for _, audio := range []bool{false, true} {
		name := fmt.Sprintf("golden-audio-%v", audio)
		numbers := dashGoldenStream(t, ts, name, base, audio)
		rng := func(from, to int64) map[string]any {
			return map[string]any{"StartTimestamp": float64(from) / 1000, "EndTimestamp": float64(to) / 1000}
		}
		producer := map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": rng(base, base+20000)}
		server := map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng(base+3600000, base+3620000)}
		for _, c := range []struct {
			file string
			body map[string]any
		}{
			{"ondemand-producer", map[string]any{"PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": producer}},
			{"ondemand-producer-fn-ts", map[string]any{"PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": producer,
				"DisplayFragmentNumber": "ALWAYS", "DisplayFragmentTimestamp": "ALWAYS"}},
			{"ondemand-producer-fn", map[string]any{"PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": producer,
				"DisplayFragmentNumber": "ALWAYS", "DisplayFragmentTimestamp": "NEVER"}},
			{"ondemand-server-ts", map[string]any{"PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": server, "DisplayFragmentTimestamp": "ALWAYS"}},
			{"ondemand-producer-max3", map[string]any{"PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": producer, "MaxManifestFragmentResults": 3}},
			{"livereplay-producer", map[string]any{"PlaybackMode": "LIVE_REPLAY", "DASHFragmentSelector": producer, "DisplayFragmentTimestamp": "ALWAYS"}},
			{"livereplay-server-ended", map[string]any{"PlaybackMode": "LIVE_REPLAY", "MaxManifestFragmentResults": 2,
				"DASHFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng(base+3600000, base+3601000)}}},
			{"live-server", map[string]any{"DisplayFragmentNumber": "ALWAYS"}},
			{"live-producer-fn-ts", map[string]any{"DASHFragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP"},
				"DisplayFragmentNumber": "ALWAYS", "DisplayFragmentTimestamp": "ALWAYS", "MaxManifestFragmentResults": 3}},
		} {
			t.Run(fmt.Sprintf("%s/audio=%v", c.file, audio), func(t *testing.T) {
				body := map[string]any{"StreamName": name}
				for k, v := range c.body {
					body[k] = v
				}
				u := d.mustSessionURL(body)
				text, m := d.manifest(u)
				if strings.HasPrefix(c.file, "livereplay-server-ended") {
					// The range holds one fragment: the replay ends once it has played.
					time.Sleep(1100 * time.Millisecond)
					text, m = d.manifest(u)
				}
				wantType := "static"
				if !strings.HasPrefix(c.file, "ondemand") {
					wantType = "dynamic"
				}
				if m.Type == nil || *m.Type != wantType {
					t.Fatalf("MPD type %v, want %s", m.Type, wantType)
				}
				if tracks := len(m.Periods[0].AdaptationSets); tracks != 1+boolCount(audio) {
					t.Fatalf("%d AdaptationSets", tracks)
				}
				dashGolden(t, fmt.Sprintf("%s-audio-%v.mpd", c.file, audio),
					normalizeMPD(text, ts.URL, numbers, strings.HasPrefix(c.file, "livereplay")))
			})
		}
	}
}

func boolCount(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDashWriteErrors: what dash.Write refuses.
func TestDashWriteErrors(t *testing.T) {
	var sb strings.Builder
	if err := dash.Write(&sb, &dash.Manifest{}); err != dash.ErrNoSegments {
		t.Errorf("no segments: %v", err)
	}
	_ = http.MethodGet
}
