package web

import (
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/dash"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/session"
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
	goldenAt(t, "dash", name, got)
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
	// The index keeps a copy of the rows in memory (sqlindex.Index.Reload).
	if r, ok := ts.Store.Index.(interface{ Reload(int64) }); ok {
		r.Reload(st.ID)
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
				// HEAD: the same headers, no body; live MPDs are not cached.
				req, _ := http.NewRequest(http.MethodHead, u, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				cache := resp.Header.Get("Cache-Control")
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != dashMIME || resp.ContentLength <= int64(len(text))-300 {
					t.Errorf("HEAD: %d %v", resp.StatusCode, resp.Header)
				}
				if live := wantType == "dynamic" && !strings.Contains(c.file, "ended"); live != (cache == "no-cache, no-store") || (!live && !strings.HasPrefix(cache, "max-age=")) {
					t.Errorf("Cache-Control %q for a %s MPD", cache, c.file)
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
}

func TestDashSessionErrors(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	d := dashClient{hlsClient{t, ts}}
	base := time.Now().Add(-time.Hour).UnixMilli()
	frags := []hlsFragment{{base, 1000}, {base + 1000, 1000}}
	gmIngestBytes(t, ts, "s", hlsStreamBytes(frags, true, -1), false, 24)
	gmIngestBytes(t, ts, "other", hlsStreamBytes(frags, false, -1), false, 24)
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "norec"})
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "empty", "DataRetentionInHours": 1})
	// A stream whose tracks DASH cannot carry (video only, VP8).
	vp8 := hlsStreamBytes(frags, false, -1)
	vp8 = []byte(strings.Replace(string(vp8), "V_MPEG4/ISO/AVC", "V_VP8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 1))
	gmIngestBytes(t, ts, "vp8", vp8, false, 24)
	sec := func(ms int64) float64 { return float64(ms) / 1000 }
	rng := func(a, b int64) map[string]any {
		return map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": map[string]any{"StartTimestamp": sec(a), "EndTimestamp": sec(b)}}
	}
	od := func(extra map[string]any) map[string]any {
		b := map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": rng(base, base+5000)}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	for _, c := range []struct {
		name   string
		body   map[string]any
		status int
		typ    string
	}{
		{"bad mode", map[string]any{"StreamName": "s", "PlaybackMode": "VOD"}, 400, "InvalidArgumentException"},
		{"on demand without selector", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND"}, 400, "InvalidArgumentException"},
		{"on demand without end", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": map[string]any{"TimestampRange": map[string]any{"StartTimestamp": sec(base)}}}, 400, "InvalidArgumentException"},
		{"live replay without range", map[string]any{"StreamName": "s", "PlaybackMode": "LIVE_REPLAY", "DASHFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP"}}, 400, "InvalidArgumentException"},
		{"live with range", map[string]any{"StreamName": "s", "DASHFragmentSelector": rng(base, base+1000)}, 400, "InvalidArgumentException"},
		{"range over 24 h", od(map[string]any{"DASHFragmentSelector": rng(base, base+25*3600*1000)}), 400, "InvalidArgumentException"},
		{"end before start", od(map[string]any{"DASHFragmentSelector": rng(base, base-1)}), 400, "InvalidArgumentException"},
		{"expires too short", od(map[string]any{"Expires": 299}), 400, "InvalidArgumentException"},
		{"expires too long", od(map[string]any{"Expires": 43201}), 400, "InvalidArgumentException"},
		{"max results 0", od(map[string]any{"MaxManifestFragmentResults": 0}), 400, "InvalidArgumentException"},
		{"max results 5001", od(map[string]any{"MaxManifestFragmentResults": 5001}), 400, "InvalidArgumentException"},
		{"max results not a number", od(map[string]any{"MaxManifestFragmentResults": "5"}), 400, "InvalidArgumentException"},
		{"bad display fragment number", od(map[string]any{"DisplayFragmentNumber": "SOMETIMES"}), 400, "InvalidArgumentException"},
		{"bad display fragment timestamp", od(map[string]any{"DisplayFragmentTimestamp": "always"}), 400, "InvalidArgumentException"},
		{"bad selector type", od(map[string]any{"DASHFragmentSelector": map[string]any{"FragmentSelectorType": "NOW"}}), 400, "InvalidArgumentException"},
		{"HLS selector name is not DASH's", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000)}, 400, "InvalidArgumentException"},
		{"no stream", map[string]any{"PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": rng(base, base+5000)}, 400, "InvalidArgumentException"},
		{"unknown stream", map[string]any{"StreamName": "nope"}, 404, "ResourceNotFoundException"},
		{"unknown ARN", map[string]any{"StreamARN": "arn:aws:kinesisvideo:us-west-2:000000000000:stream/nope/1"}, 404, "ResourceNotFoundException"},
		{"no retention", map[string]any{"StreamName": "norec"}, 400, "NoDataRetentionException"},
		{"nothing in range", od(map[string]any{"DASHFragmentSelector": rng(base+100000, base+200000)}), 404, "ResourceNotFoundException"},
		{"live on an empty stream", map[string]any{"StreamName": "empty"}, 404, "ResourceNotFoundException"},
		{"tracks DASH cannot carry", map[string]any{"StreamName": "vp8", "PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": rng(base, base+5000)}, 400, "UnsupportedStreamMediaTypeException"},
	} {
		status, typ, _ := d.sessionURL(c.body)
		if status != c.status || typ != c.typ {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, typ, c.status, c.typ)
		}
	}
	if status, typ, u := d.sessionURL(od(map[string]any{"StreamName": "", "StreamARN": hlsStreamARN(t, ts, "s")})); status != 200 {
		t.Errorf("by ARN: %d %s %s", status, typ, u)
	}
	// LIVE needs a fragment that arrived in the last 30 s (here: 1 ms).
	liveWindow = time.Millisecond
	time.Sleep(2 * time.Millisecond)
	status, typ, _ := d.sessionURL(map[string]any{"StreamName": "s"})
	liveWindow = 30 * time.Second
	if status != 404 || typ != "ResourceNotFoundException" {
		t.Errorf("live without recent fragments: %d %s", status, typ)
	}
	if status, typ, _ := d.sessionURL(map[string]any{"StreamName": "s"}); status != 200 {
		t.Errorf("live: %d %s", status, typ)
	}

	// Session resources.
	manifest := d.mustSessionURL(od(map[string]any{"DASHFragmentSelector": rng(base, base+500)}))
	other := d.mustSessionURL(map[string]any{"StreamName": "other", "PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": rng(base, base+5000)})
	_, _, hlsMaster := hlsClient{t, ts}.sessionURL(map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000)})
	tokenOf := func(u string) string { return u[strings.Index(u, "SessionToken=")+len("SessionToken="):] }
	token, otherToken, hlsToken := tokenOf(manifest), tokenOf(other), tokenOf(hlsMaster)
	// Tokens the server did not seal, or sealed long ago.
	st, _ := ts.Store.Stream("s", "")
	foreignKeys, _ := session.NewKeyring(make([]byte, 32))
	foreign := foreignKeys.Seal(session.New(session.Session{Protocol: session.DASH, StreamID: st.ID, Mode: session.OnDemand,
		StartNS: base * 1e6, EndNS: (base + 5000) * 1e6, HasEnd: true, MaxResults: 1000}, time.Now(), time.Hour))
	expired := ts.Server.sessions.Seal(session.New(session.Session{Protocol: session.DASH, StreamID: st.ID, Mode: session.OnDemand,
		StartNS: base * 1e6, EndNS: (base + 5000) * 1e6, HasEnd: true, MaxResults: 1000}, time.Now().Add(-2*time.Hour), time.Hour))
	tampered := token[:len(token)-2] + "AA"
	if token[len(token)-2:] == "AA" {
		tampered = token[:len(token)-2] + "BB"
	}
	_, lb := gmPost(t, ts.URL, "/listFragments", map[string]any{"StreamName": "s"})
	_, ob := gmPost(t, ts.URL, "/listFragments", map[string]any{"StreamName": "other"})
	var lf, olf struct {
		Fragments []struct {
			FragmentNumber         string
			ProducerTimestamp      float64
			ServerTimestamp        float64
			FragmentLengthInMillis int64
		}
	}
	json.Unmarshal(lb, &lf)
	json.Unmarshal(ob, &olf)
	in, outOfRange, ofOther := lf.Fragments[0].FragmentNumber, lf.Fragments[1].FragmentNumber, olf.Fragments[0].FragmentNumber
	inTime := strconv.FormatInt(base, 10)
	outTime := strconv.FormatInt(base+1000, 10)
	media := func(q, tok string) string {
		return "/dash/v1/getMP4MediaFragment.mp4?TrackNumber=1&" + q + "&SessionToken=" + tok
	}
	for _, c := range []struct {
		name, path string
		status     int
		typ        string
	}{
		{"manifest works", "/dash/v1/getDASHManifest.mpd?SessionToken=" + token, 200, ""},
		{"segment by time works", media("Time="+inTime, token), 200, ""},
		{"segment by number works", media("FragmentNumber="+in, token), 200, ""},
		{"init works", "/dash/v1/getMP4InitFragment.mp4?TrackNumber=2&SessionToken=" + token, 200, ""},
		{"no token", "/dash/v1/getDASHManifest.mpd", 401, "NotAuthorizedException"},
		{"tampered token", "/dash/v1/getDASHManifest.mpd?SessionToken=" + tampered, 401, "NotAuthorizedException"},
		{"garbage token", "/dash/v1/getDASHManifest.mpd?SessionToken=%00%ff", 401, "NotAuthorizedException"},
		{"foreign token", "/dash/v1/getDASHManifest.mpd?SessionToken=" + foreign, 401, "NotAuthorizedException"},
		{"expired token", "/dash/v1/getDASHManifest.mpd?SessionToken=" + expired, 401, "NotAuthorizedException"},
		{"expired token, segment", media("Time="+inTime, expired), 401, "NotAuthorizedException"},
		{"HLS token for a DASH manifest", "/dash/v1/getDASHManifest.mpd?SessionToken=" + hlsToken, 401, "NotAuthorizedException"},
		{"HLS token for a DASH segment", media("Time="+inTime, hlsToken), 401, "NotAuthorizedException"},
		{"HLS token for a DASH init", "/dash/v1/getMP4InitFragment.mp4?TrackNumber=1&SessionToken=" + hlsToken, 401, "NotAuthorizedException"},
		{"DASH token for an HLS playlist", "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=" + token, 401, "NotAuthorizedException"},
		{"DASH token for an HLS segment", "/hls/v1/getMP4MediaFragment.mp4?TrackNumber=1&FragmentNumber=" + in + "&SessionToken=" + token, 401, "NotAuthorizedException"},
		{"DASH token for an HLS init", "/hls/v1/getMP4InitFragment.mp4?TrackNumber=1&SessionToken=" + token, 401, "NotAuthorizedException"},
		{"time outside the range", media("Time="+outTime, token), 404, "ResourceNotFoundException"},
		{"time a millisecond off", media("Time="+strconv.FormatInt(base+1, 10), token), 404, "ResourceNotFoundException"},
		{"time of nothing", media("Time=1", token), 404, "ResourceNotFoundException"},
		{"time not a number", media("Time=12x", token), 400, "InvalidArgumentException"},
		{"time negative", media("Time=-1", token), 400, "InvalidArgumentException"},
		{"time too large", media("Time=99999999999999", token), 400, "InvalidArgumentException"},
		{"number outside the range", media("FragmentNumber="+outOfRange, token), 404, "ResourceNotFoundException"},
		{"number of another stream", media("FragmentNumber="+ofOther, token), 404, "ResourceNotFoundException"},
		{"number malformed", media("FragmentNumber=12x", token), 400, "InvalidArgumentException"},
		{"neither time nor number", "/dash/v1/getMP4MediaFragment.mp4?TrackNumber=1&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"track 3 media", "/dash/v1/getMP4MediaFragment.mp4?TrackNumber=3&Time=" + inTime + "&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"track 0 media", "/dash/v1/getMP4MediaFragment.mp4?TrackNumber=0&Time=" + inTime + "&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"no track media", "/dash/v1/getMP4MediaFragment.mp4?Time=" + inTime + "&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"track 3 init", "/dash/v1/getMP4InitFragment.mp4?TrackNumber=3&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"track x init", "/dash/v1/getMP4InitFragment.mp4?TrackNumber=x&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"no track init", "/dash/v1/getMP4InitFragment.mp4?SessionToken=" + token, 400, "InvalidArgumentException"},
		{"track 2 of a one-track stream", "/dash/v1/getMP4InitFragment.mp4?TrackNumber=2&SessionToken=" + otherToken, 400, "InvalidArgumentException"},
		{"unknown resource", "/dash/v1/getHLSMasterPlaylist.m3u8?SessionToken=" + token, 404, "UnknownOperationException"},
	} {
		resp, b := d.get(ts.URL + c.path)
		if resp.StatusCode != c.status || resp.Header.Get("x-amzn-ErrorType") != c.typ {
			t.Errorf("%s: %d %s %.200s, want %d %s", c.name, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b, c.status, c.typ)
		}
	}
	// The clock players synchronize with.
	resp, b := d.get(ts.URL + dashTimePath)
	if at, err := time.Parse(time.RFC3339Nano, string(b)); resp.StatusCode != 200 || err != nil || time.Since(at).Abs() > 5*time.Second {
		t.Errorf("time: %d %q %v", resp.StatusCode, b, err)
	}
	// The stream being deleted ends the session.
	gmPost(t, ts.URL, "/deleteStream", map[string]any{"StreamARN": hlsStreamARN(t, ts, "s")})
	if resp, _ := d.get(manifest); resp.StatusCode != 404 || resp.Header.Get("x-amzn-ErrorType") != "ResourceNotFoundException" {
		t.Errorf("session of a deleted stream: %d, want 404", resp.StatusCode)
	}
}

// mpdSegments expands an AdaptationSet's SegmentTimeline: S@t of every
// segment, with the Period's presentationTimeOffset and start.
type mpdSegment struct {
	t, d  int64
	start time.Duration // the Period's
	pto   int64
}

func mpdTimeline(m *mpd.MPD, track int) []mpdSegment {
	var out []mpdSegment
	for _, p := range m.Periods {
		st := p.AdaptationSets[track].SegmentTemplate
		var pto int64
		if st.PresentationTimeOffset != nil {
			pto = int64(*st.PresentationTimeOffset)
		}
		var start time.Duration
		if p.Start != nil {
			start = time.Duration(*p.Start)
		}
		next := int64(0)
		for _, s := range st.SegmentTimeline.Segments {
			if s.StartTime != nil {
				next = int64(*s.StartTime)
			}
			n := 1
			if s.RepeatCount != nil {
				n += *s.RepeatCount
			}
			for k := 0; k < n; k++ {
				out = append(out, mpdSegment{t: next, d: int64(s.Duration), start: start, pto: pto})
				next += int64(s.Duration)
			}
		}
	}
	return out
}

// boxPayload returns the payload of the first box of type typ, searching
// the children of the boxes on path (a flat scan for our own segments).
func boxPayload(b []byte, typ string) []byte {
	i := strings.Index(string(b), typ)
	if i < 4 {
		return nil
	}
	size := int(b[i-4])<<24 | int(b[i-3])<<16 | int(b[i-2])<<8 | int(b[i-1])
	if i-4+size > len(b) || size < 8 {
		return nil
	}
	return b[i+4 : i-4+size]
}

// tfdtOf reads a media segment's base media decode time.
func tfdtOf(b []byte) int64 {
	p := boxPayload(b, "tfdt")
	if len(p) != 12 {
		return -1
	}
	var v int64
	for _, c := range p[4:] {
		v = v<<8 | int64(c)
	}
	return v
}

// TestDashSegmentAddressing: every segment a manifest lists is served by
// its $Time$ URL, and that segment's decode time is the S@t; a fragment
// whose tracks are not the session's is not served; the init segment is
// the session's first fragment's.
func TestDashSegmentAddressing(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	d := dashClient{hlsClient{t, ts}}
	base := int64(1790000000000)
	numbers := dashGoldenStream(t, ts, "s", base, true)
	defer func(w time.Duration) { liveWindow = w }(liveWindow)
	liveWindow = 100 * 365 * 24 * time.Hour
	rng := func(from, to int64) map[string]any {
		return map[string]any{"StartTimestamp": float64(from) / 1000, "EndTimestamp": float64(to) / 1000}
	}
	for _, c := range []struct {
		name   string
		body   map[string]any
		listed int // fragments listed
		codecs string
	}{
		{"producer", map[string]any{"PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": rng(base, base+20000)}}, 6, "avc1.64001e"},
		{"server", map[string]any{"PlaybackMode": "ON_DEMAND", "DASHFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng(base+3600000, base+3620000)}}, 6, "avc1.64001e"},
		{"live", map[string]any{}, 2, "avc1.4d001f"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := map[string]any{"StreamName": "s", "DisplayFragmentNumber": "ALWAYS"}
			for k, v := range c.body {
				body[k] = v
			}
			u := d.mustSessionURL(body)
			text, m := d.manifest(u)
			// kvs:fn per track, Period by Period (AdaptationSets alternate tracks).
			fns := make([][]string, 2)
			for k, chunk := range strings.Split(text, "<AdaptationSet")[1:] {
				for _, fn := range reKVSFn.FindAllStringSubmatch(chunk, -1) {
					fns[k%2] = append(fns[k%2], fn[1])
				}
			}
			for track := range 2 {
				as := m.Periods[0].AdaptationSets[track]
				if got := *as.Representations[0].Codecs; track == 0 && got != c.codecs {
					t.Fatalf("codecs %s, want %s", got, c.codecs)
				}
				_, init := d.get(resolveRef(u, *as.SegmentTemplate.Initialization))
				if codec := "avcC"; track == 0 && !strings.Contains(string(init), codec) {
					t.Fatalf("init segment without %s", codec)
				}
				timescale := int64(90000)
				if track == 1 {
					timescale = 48000
				}
				segs := mpdTimeline(m, track)
				if len(segs) != c.listed {
					t.Fatalf("%d segments listed, want %d\n%s", len(segs), c.listed, text)
				}
				for i, s := range segs {
					media := strings.ReplaceAll(*m.Periods[0].AdaptationSets[track].SegmentTemplate.Media, "$Time$", strconv.FormatInt(s.t, 10))
					resp, b := d.get(resolveRef(u, media))
					if resp.StatusCode != 200 {
						t.Fatalf("segment %d (t=%d): %d %s", i, s.t, resp.StatusCode, b)
					}
					if got := tfdtOf(b); got != s.t*timescale/1000 {
						t.Errorf("track %d segment %d: tfdt %d, want S@t %d in %d Hz = %d", track+1, i, got, s.t, timescale, s.t*timescale/1000)
					}
					// The same segment by its kvs:fn.
					byNumber := strings.Replace(media, "Time="+strconv.FormatInt(s.t, 10), "FragmentNumber="+fns[track][i], 1)
					if _, b2 := d.get(resolveRef(u, byNumber)); string(b2) != string(b) {
						t.Errorf("segment %d by number differs from by time", i)
					}
				}
			}
			// The fragments with other codec private data are not the session's.
			if c.name != "live" {
				tok := u[strings.Index(u, "SessionToken="):]
				for _, q := range []string{"FragmentNumber=" + numbers[6], "Time=" + strconv.FormatInt(base+8800, 10)} {
					resp, b := d.get(ts.URL + "/dash/v1/getMP4MediaFragment.mp4?TrackNumber=1&" + q + "&" + tok)
					if c.name == "producer" && (resp.StatusCode != 404 || resp.Header.Get("x-amzn-ErrorType") != "ResourceNotFoundException") {
						t.Errorf("%s (new header): %d %s", q, resp.StatusCode, b)
					}
				}
			}
		})
	}
}
