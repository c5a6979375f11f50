package web

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
	"github.com/labstack/echo/v4"
)

// TestRequestInfo: every request knows its API by its route, and the stream
// once its handler has resolved it (by name, ARN or session token), as the
// limits, metrics and request log need.
func TestRequestInfo(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	var mu sync.Mutex
	var seen []requestInfo
	ts.Server.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			mu.Lock()
			seen = append(seen, *infoOfC(c))
			mu.Unlock()
			return err
		}
	})
	clip, err := os.ReadFile(filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Put(context.Background(), bytes.NewReader(clip), producer.Options{Endpoint: ts.URL, Stream: "cam", Create: true}); err != nil {
		t.Fatal(err)
	}
	st, err := ts.Store.Stream("cam", "")
	if err != nil {
		t.Fatal(err)
	}
	gmPost(t, ts.URL, "/describeStream", map[string]any{"StreamARN": st.ARN})
	gmPost(t, ts.URL, "/listFragments", map[string]any{"StreamName": "nope"})
	gmPost(t, ts.URL, "/listStreams", map[string]any{})
	h := hlsClient{t, ts}
	now := time.Now().Unix()
	code, typ, u := h.sessionURL(map[string]any{"StreamName": "cam", "PlaybackMode": "ON_DEMAND",
		"HLSFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
			"TimestampRange": map[string]any{"StartTimestamp": now - 600, "EndTimestamp": now + 60}}})
	if code != 200 {
		t.Fatalf("GetHLSStreamingSessionURL: %d %s", code, typ)
	}
	h.get(u)
	h.get(strings.Replace(u, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?TrackNumber=1&", 1))

	mu.Lock()
	defer mu.Unlock()
	want := []struct{ api, stream string }{
		{"CreateStream", "cam"}, // producer.Put with Create
		{"PutMedia", "cam"},
		{"DescribeStream", "cam"},
		{"ListFragments", ""},
		{"ListStreams", ""},
		{"GetHLSStreamingSessionURL", "cam"},
		{"GetHLSMasterPlaylist", "cam"},
		{"GetHLSMediaPlaylist", "cam"},
	}
	var got []string
	for _, i := range seen {
		if i.API == "DescribeStream" && len(got) < 2 {
			continue // producer.Put may look the stream up first
		}
		got = append(got, i.API+"/"+i.Stream)
	}
	var exp []string
	for _, w := range want {
		exp = append(exp, w.api+"/"+w.stream)
	}
	if strings.Join(got, " ") != strings.Join(exp, " ") {
		t.Fatalf("request infos\n got %v\nwant %v", got, exp)
	}
	for _, i := range seen {
		if strings.HasPrefix(i.API, "GetHLS") && i.API != "GetHLSStreamingSessionURL" && (i.Session == nil || i.StreamID != st.ID) {
			t.Fatalf("%s: session %v, stream id %d, want a session of stream %d", i.API, i.Session, i.StreamID, st.ID)
		}
	}
}
