package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/session"
)

// FuzzSessionQuery sends arbitrary query strings (TrackNumber,
// FragmentNumber, Time, SessionToken, LL-HLS's _HLS_msn, _HLS_part, Part,
// AfterFragmentNumber, anything) to every HLS and DASH session resource:
// never a 5xx. (Requests that block for a part still to come end after
// 50 ms, as a client that gives up: that answers nothing.)
func FuzzSessionQuery(f *testing.F) {
	ts := newTestServer(f, nil, fragments.Config{})
	base := time.Now().Add(-time.Hour).UnixMilli()
	gmIngestBytes(f, ts, "q", hlsStreamBytes([]hlsFragment{{base, 1000}, {base + 1000, 1000}}, true, -1), false, 24)
	st, err := ts.Store.Stream("q", "")
	if err != nil {
		f.Fatal(err)
	}
	var tokens []string
	for _, p := range []session.Protocol{session.HLS, session.DASH} {
		for _, c := range []uint8{0, 1} {
			s := session.New(session.Session{Protocol: p, StreamID: st.ID, Mode: session.OnDemand, Producer: true, StartNS: (base - 1000) * 1e6,
				EndNS: (base + 5000) * 1e6, HasEnd: true, MaxResults: 10, Container: c}, time.Now(), time.Hour)
			tokens = append(tokens, ts.Server.sessions.Seal(s))
		}
	}
	live := session.New(session.Session{Protocol: session.HLS, StreamID: st.ID, Mode: session.Live, MaxResults: 5, BaseOrdinal: 1}, time.Now(), time.Hour)
	tokens = append(tokens, ts.Server.sessions.Seal(live))
	paths := []string{"/hls/v1/getHLSMasterPlaylist.m3u8", "/hls/v1/getHLSMediaPlaylist.m3u8", "/hls/v1/getMP4InitFragment.mp4",
		"/hls/v1/getMP4MediaFragment.mp4", "/hls/v1/getTSFragment.ts", "/dash/v1/getDASHManifest.mpd",
		"/dash/v1/getMP4InitFragment.mp4", "/dash/v1/getMP4MediaFragment.mp4"}
	f.Add(uint8(0), uint8(0), "TrackNumber=1")
	f.Add(uint8(3), uint8(1), "TrackNumber=2&FragmentNumber=18446744073709551615")
	f.Add(uint8(7), uint8(2), "TrackNumber=1&Time=-9223372036854775808")
	f.Add(uint8(4), uint8(1), "FragmentNumber=%00&TrackNumber=%ff")
	f.Add(uint8(1), uint8(9), "TrackNumber=1&TrackNumber=2")
	f.Add(uint8(1), uint8(4), "TrackNumber=1&_HLS_msn=2&_HLS_part=0")
	f.Add(uint8(1), uint8(4), "TrackNumber=2&_HLS_part=99999999999999999999")
	f.Add(uint8(3), uint8(4), "TrackNumber=1&FragmentNumber=1&Part=0")
	f.Add(uint8(3), uint8(0), "TrackNumber=1&AfterFragmentNumber=1&Part=0")
	f.Add(uint8(3), uint8(4), "TrackNumber=2&AfterFragmentNumber=18446744073709551615&Part=-1")
	handler := ts.Server.Handler()
	f.Fuzz(func(t *testing.T, pathIdx, tokenIdx uint8, query string) {
		q := query
		if int(tokenIdx) < len(tokens) {
			q += "&SessionToken=" + tokens[tokenIdx]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://x"+paths[int(pathIdx)%len(paths)]+"?"+strings.ReplaceAll(q, "#", ""), nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s: %d %s", req.URL, rec.Code, rec.Body.String())
		}
	})
}
