package web

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafov/m3u8"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

var (
	hlsVideo = mkv.Track{Number: 1, UID: 1, Type: 1, CodecID: "V_MPEG4/ISO/AVC", Width: 640, Height: 480,
		CodecPrivate: []byte{1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 0x1d, 0x67, 0x64, 0, 0x1e, 0xac, 0xb2, 1, 0x40, 0x7b, 0x60, 0x2d, 0x41, 0x80, 0x41, 0x50, 0, 0, 3, 0, 0x10, 0, 0, 3, 3, 0x28, 0xf1, 0x62, 0xe4, 0x80, 1, 0, 5, 0x68, 0xeb, 0xcc, 0xb2, 0x2c}}
	hlsAudio = mkv.Track{Number: 2, UID: 2, Type: 2, CodecID: "A_AAC", SamplingFreq: 48000, Channels: 2, CodecPrivate: []byte{0x11, 0x90}}
)

// hlsFragment is one synthetic fragment: producer start (ms), length (ms).
type hlsFragment struct{ startMS, lenMS int64 }

// hlsStreamBytes builds a PutMedia body (ABSOLUTE timecodes): 25 fps video
// (and 48 kHz AAC with 1024-sample frames when audio), one fragment per
// entry, ending with the end-of-fragment tag. newHeaderAt starts a new
// stream header (different codec private data) before that fragment.
func hlsStreamBytes(frags []hlsFragment, audio bool, newHeaderAt int) []byte {
	header := func(v mkv.Track) []byte {
		tracks := []mkv.Track{v}
		if audio {
			tracks = append(tracks, hlsAudio)
		}
		b := mkv.EBMLHeader()
		b = mkv.AppendUnknownSizeHeader(b, mkv.IDSegment)
		b = append(b, mkv.Info(1000000)...)
		return append(b, mkv.Tracks(tracks)...)
	}
	body := header(hlsVideo)
	for i, f := range frags {
		if i == newHeaderAt {
			v := hlsVideo
			v.CodecPrivate = append([]byte{1, 0x4d, 0, 0x1f}, hlsVideo.CodecPrivate[4:]...)
			body = append(body, header(v)...)
		}
		body = append(body, mkv.ClusterStart(uint64(f.startMS))...)
		n := int(f.lenMS / 40)
		for k := 0; k < n; k++ {
			body = append(body, mkv.SimpleBlock(1, int16(k*40), k == 0, bytes.Repeat([]byte{byte(k)}, 500))...)
			if audio {
				for a := int64(k) * 40 * 48 / 1024; a < int64(k+1)*40*48/1024; a++ {
					body = append(body, mkv.SimpleBlock(2, int16(a*1024/48), true, []byte{0x21, byte(a)})...)
				}
			}
		}
		body = append(body, mkv.Tags([]mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})...)
	}
	return body
}

type hlsClient struct {
	t  testing.TB
	ts *testServer
}

func (h hlsClient) sessionURL(body map[string]any) (int, string, string) {
	resp, b := gmPost(h.t, h.ts.URL, "/getHLSStreamingSessionURL", body)
	var out struct{ HLSStreamingSessionURL string }
	json.Unmarshal(b, &out)
	return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), out.HLSStreamingSessionURL
}

func (h hlsClient) get(u string) (*http.Response, []byte) {
	h.t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// resolve makes a playlist line absolute against the playlist URL.
func resolveRef(base, ref string) string {
	b, _ := url.Parse(base)
	r, _ := url.Parse(ref)
	return b.ResolveReference(r).String()
}

var (
	reToken  = regexp.MustCompile(`SessionToken=[A-Za-z0-9_-]+`)
	reNumber = regexp.MustCompile(`FragmentNumber=(\d+)`)
)

// normalize replaces the session token and fragment numbers (which change
// from run to run) with stable names: fragment numbers become F<index> in
// ingest order.
func normalize(text string, numbers []string) string {
	text = reToken.ReplaceAllString(text, "SessionToken=TOKEN")
	return reNumber.ReplaceAllStringFunc(text, func(m string) string {
		n := reNumber.FindStringSubmatch(m)[1]
		for i, x := range numbers {
			if x == n {
				return "FragmentNumber=F" + strconv.Itoa(i)
			}
		}
		return "FragmentNumber=UNKNOWN"
	})
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenAt(t, "hls", name, got)
}

// goldenAt compares got with testdata/<dir>/<name>, or writes it there
// with -update.
func goldenAt(t *testing.T, dir, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", dir, name)
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

// checkM3U8 parses a playlist with grafov/m3u8 as a second opinion.
func checkM3U8(t *testing.T, text string) {
	t.Helper()
	if _, _, err := m3u8.DecodeFrom(strings.NewReader(text), true); err != nil {
		t.Fatalf("m3u8 cannot parse the playlist: %v\n%s", err, text)
	}
}

func TestHLSGoldenPlaylists(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	h := hlsClient{t, ts}
	// A fixed producer time (2026-09-21), so program date times are stable;
	// the streams keep data for ten years, so it is never expired.
	base := int64(1790000000000)
	// Eight fragments: 1 s each, a 3 s gap after the 3rd, a 200 ms overlap
	// before the 6th, a new header (codec private data) from the 7th.
	frags := []hlsFragment{{base, 1000}, {base + 1000, 1000}, {base + 2000, 1000}, {base + 6000, 1000}, {base + 7000, 1000},
		{base + 7800, 1000}, {base + 8800, 1000}, {base + 9800, 1200}}
	for _, audio := range []bool{false, true} {
		name := fmt.Sprintf("golden-audio-%v", audio)
		// The overlap needs a second PutMedia connection: within one, a
		// fragment must start after the previous one's last frame (4004).
		gmIngestBytes(t, ts, name, hlsStreamBytes(frags[:5], audio, -1), false, 87600)
		numbers := gmIngestBytes(t, ts, name, hlsStreamBytes(frags[5:], audio, 1), false, -1)
		if len(numbers) != len(frags) {
			t.Fatalf("%d fragments ingested", len(numbers))
		}
		rng := map[string]any{"StartTimestamp": float64(base) / 1000, "EndTimestamp": float64(base+20000) / 1000}
		for _, c := range []struct {
			file string
			body map[string]any
		}{
			{"ondemand-fmp4-always", map[string]any{"PlaybackMode": "ON_DEMAND", "DiscontinuityMode": "ALWAYS"}},
			{"ondemand-fmp4-never-pdt", map[string]any{"PlaybackMode": "ON_DEMAND", "DiscontinuityMode": "NEVER", "DisplayFragmentTimestamp": "ALWAYS"}},
			{"ondemand-fmp4-ondiscontinuity", map[string]any{"PlaybackMode": "ON_DEMAND", "DiscontinuityMode": "ON_DISCONTINUITY"}},
			{"ondemand-ts-ondiscontinuity", map[string]any{"PlaybackMode": "ON_DEMAND", "ContainerFormat": "MPEG_TS", "DiscontinuityMode": "ON_DISCONTINUITY"}},
			{"ondemand-fmp4-max3", map[string]any{"PlaybackMode": "ON_DEMAND", "MaxMediaPlaylistFragmentResults": 3}},
			{"livereplay-fmp4-default", map[string]any{"PlaybackMode": "LIVE_REPLAY"}},
		} {
			t.Run(fmt.Sprintf("%s/audio=%v", c.file, audio), func(t *testing.T) {
				body := map[string]any{"StreamName": name, "HLSFragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": rng}}
				for k, v := range c.body {
					body[k] = v
				}
				status, typ, master := h.sessionURL(body)
				if status != 200 {
					t.Fatalf("session URL: %d %s", status, typ)
				}
				if !strings.HasPrefix(master, ts.URL+"/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=") {
					t.Fatalf("session URL %s", master)
				}
				resp, mb := h.get(master)
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != mpegURL || resp.Header.Get("Content-Length") != strconv.Itoa(len(mb)) {
					t.Fatalf("master: %d %v", resp.StatusCode, resp.Header)
				}
				checkM3U8(t, string(mb))
				out := "## master\n" + normalize(string(mb), numbers)
				for _, line := range strings.Split(string(mb), "\n") {
					ref := line
					if m := regexp.MustCompile(`URI="([^"]+)"`).FindStringSubmatch(line); m != nil {
						ref = m[1]
					} else if strings.HasPrefix(line, "#") || line == "" {
						continue
					}
					resp, pb := h.get(resolveRef(master, ref))
					if resp.StatusCode != 200 {
						t.Fatalf("media playlist %s: %d %s", ref, resp.StatusCode, pb)
					}
					checkM3U8(t, string(pb))
					out += "## " + normalize(ref, numbers) + "\n" + normalize(string(pb), numbers)
				}
				golden(t, fmt.Sprintf("%s-audio-%v.m3u8", c.file, audio), out)
			})
		}
	}
}

func TestHLSSessionErrors(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	h := hlsClient{t, ts}
	base := time.Now().Add(-time.Hour).UnixMilli()
	frags := []hlsFragment{{base, 1000}, {base + 1000, 1000}}
	gmIngestBytes(t, ts, "s", hlsStreamBytes(frags, true, -1), false, 24)
	gmIngestBytes(t, ts, "other", hlsStreamBytes(frags, false, -1), false, 24)
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "norec"})
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "empty", "DataRetentionInHours": 1})
	sec := func(ms int64) float64 { return float64(ms) / 1000 }
	rng := func(a, b int64) map[string]any {
		return map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": map[string]any{"StartTimestamp": sec(a), "EndTimestamp": sec(b)}}
	}
	for _, c := range []struct {
		name   string
		body   map[string]any
		status int
		typ    string
	}{
		{"bad mode", map[string]any{"StreamName": "s", "PlaybackMode": "VOD"}, 400, "InvalidArgumentException"},
		{"on demand without selector", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND"}, 400, "InvalidArgumentException"},
		{"live replay without range", map[string]any{"StreamName": "s", "PlaybackMode": "LIVE_REPLAY", "HLSFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP"}}, 400, "InvalidArgumentException"},
		{"live with range", map[string]any{"StreamName": "s", "HLSFragmentSelector": rng(base, base+1000)}, 400, "InvalidArgumentException"},
		{"range over 24 h", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+25*3600*1000)}, 400, "InvalidArgumentException"},
		{"end before start", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base-1)}, 400, "InvalidArgumentException"},
		{"expires too short", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000), "Expires": 299}, 400, "InvalidArgumentException"},
		{"expires too long", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000), "Expires": 43201}, 400, "InvalidArgumentException"},
		{"max results 0", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000), "MaxMediaPlaylistFragmentResults": 0}, 400, "InvalidArgumentException"},
		{"max results 5001", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000), "MaxMediaPlaylistFragmentResults": 5001}, 400, "InvalidArgumentException"},
		{"bad container", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000), "ContainerFormat": "MKV"}, 400, "InvalidArgumentException"},
		{"bad discontinuity mode", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000), "DiscontinuityMode": "SOMETIMES"}, 400, "InvalidArgumentException"},
		{"bad selector type", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": map[string]any{"FragmentSelectorType": "NOW"}}, 400, "InvalidArgumentException"},
		{"unknown stream", map[string]any{"StreamName": "nope"}, 404, "ResourceNotFoundException"},
		{"no retention", map[string]any{"StreamName": "norec"}, 400, "NoDataRetentionException"},
		{"nothing in range", map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base+100000, base+200000)}, 404, "ResourceNotFoundException"},
		{"live on an empty stream", map[string]any{"StreamName": "empty"}, 404, "ResourceNotFoundException"},
	} {
		status, typ, _ := h.sessionURL(c.body)
		if status != c.status || typ != c.typ {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, typ, c.status, c.typ)
		}
	}

	// Session resources: tokens tampered with, for another stream, fragment
	// numbers outside the session, bad track numbers.
	// LIVE needs a fragment that arrived in the last 30 s (here: 1 ms).
	liveWindow = time.Millisecond
	time.Sleep(2 * time.Millisecond)
	if status, typ, _ := h.sessionURL(map[string]any{"StreamName": "s"}); status != 404 || typ != "ResourceNotFoundException" {
		t.Errorf("live without recent fragments: %d %s", status, typ)
	}
	liveWindow = 30 * time.Second

	_, _, master := h.sessionURL(map[string]any{"StreamName": "s", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+500)})
	_, _, other := h.sessionURL(map[string]any{"StreamName": "other", "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": rng(base, base+5000)})
	if master == "" || other == "" {
		t.Fatal("no session URL")
	}
	token := master[strings.Index(master, "SessionToken=")+len("SessionToken="):]
	otherToken := other[strings.Index(other, "SessionToken=")+len("SessionToken="):]
	_, lb := gmPost(t, ts.URL, "/listFragments", map[string]any{"StreamName": "s"})
	var lf struct {
		Fragments []struct{ FragmentNumber string }
	}
	json.Unmarshal(lb, &lf)
	_, ob := gmPost(t, ts.URL, "/listFragments", map[string]any{"StreamName": "other"})
	var olf struct {
		Fragments []struct{ FragmentNumber string }
	}
	json.Unmarshal(ob, &olf)
	in, outOfRange, ofOther := lf.Fragments[0].FragmentNumber, lf.Fragments[1].FragmentNumber, olf.Fragments[0].FragmentNumber
	tampered := token[:len(token)-2] + "AA"
	if token[len(token)-2:] == "AA" {
		tampered = token[:len(token)-2] + "BB"
	}
	otherSt, err := ts.Store.Stream("other", "")
	if err != nil {
		t.Fatal(err)
	}
	otherFrags, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: otherSt.ID, To: 1 << 62, AfterTS: -1, Limit: 1})
	if err != nil || len(otherFrags) == 0 {
		t.Fatalf("fragments of other: %v", err)
	}
	otherHeader := strconv.FormatInt(otherFrags[0].HeaderID, 10)
	for _, c := range []struct {
		name, path string
		status     int
		typ        string
	}{
		{"no token", "/hls/v1/getHLSMasterPlaylist.m3u8", 401, "NotAuthorizedException"},
		{"init of another stream's header", "/hls/v1/getMP4InitFragment.mp4?TrackNumber=1&HeaderId=" + otherHeader + "&SessionToken=" + token, 404, "ResourceNotFoundException"},
		{"init of its own header via the other stream's token works", "/hls/v1/getMP4InitFragment.mp4?TrackNumber=1&HeaderId=" + otherHeader + "&SessionToken=" + otherToken, 200, ""},
		{"init of a garbage header id", "/hls/v1/getMP4InitFragment.mp4?TrackNumber=1&HeaderId=-3x&SessionToken=" + token, 404, "ResourceNotFoundException"},
		{"init of an unknown header id", "/hls/v1/getMP4InitFragment.mp4?TrackNumber=1&HeaderId=999999&SessionToken=" + token, 404, "ResourceNotFoundException"},
		{"tampered token", "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=" + tampered, 401, "NotAuthorizedException"},
		{"garbage token", "/hls/v1/getHLSMediaPlaylist.m3u8?TrackNumber=1&SessionToken=%00%ff", 401, "NotAuthorizedException"},
		{"fragment of another stream", "/hls/v1/getMP4MediaFragment.mp4?TrackNumber=1&FragmentNumber=" + ofOther + "&SessionToken=" + token, 404, "ResourceNotFoundException"},
		{"fragment outside the range", "/hls/v1/getMP4MediaFragment.mp4?TrackNumber=1&FragmentNumber=" + outOfRange + "&SessionToken=" + token, 404, "ResourceNotFoundException"},
		{"other session's fragment via its own token works", "/hls/v1/getMP4MediaFragment.mp4?TrackNumber=1&FragmentNumber=" + ofOther + "&SessionToken=" + otherToken, 200, ""},
		{"malformed fragment number", "/hls/v1/getTSFragment.ts?FragmentNumber=12x&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"track 3", "/hls/v1/getMP4MediaFragment.mp4?TrackNumber=3&FragmentNumber=" + in + "&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"track 3 init", "/hls/v1/getMP4InitFragment.mp4?TrackNumber=3&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"media playlist track 3", "/hls/v1/getHLSMediaPlaylist.m3u8?TrackNumber=3&SessionToken=" + token, 400, "InvalidArgumentException"},
		{"unknown resource", "/hls/v1/getDASHManifest.mpd?SessionToken=" + token, 404, "UnknownOperationException"},
	} {
		resp, b := h.get(ts.URL + c.path)
		if resp.StatusCode != c.status || resp.Header.Get("x-amzn-ErrorType") != c.typ {
			t.Errorf("%s: %d %s %.200s, want %d %s", c.name, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b, c.status, c.typ)
		}
	}
	// A DASH token is not an HLS token, and the stream being deleted ends the session.
	gmPost(t, ts.URL, "/deleteStream", map[string]any{"StreamARN": hlsStreamARN(t, ts, "s")})
	if resp, _ := h.get(master); resp.StatusCode != 404 {
		t.Errorf("session of a deleted stream: %d, want 404", resp.StatusCode)
	}
}

func hlsStreamARN(t testing.TB, ts *testServer, name string) string {
	st, err := ts.Store.Stream(name, "")
	if err != nil {
		t.Fatal(err)
	}
	return st.ARN
}
