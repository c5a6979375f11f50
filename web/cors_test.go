package web

import (
	"net/http"
	"testing"

	"github.com/kvsgate/kvsgate/fragments"
)

// TestCORS: browsers on other origins may call the APIs (preflight with
// SigV4 headers) and fetch playback resources.
func TestCORS(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/listFragments", nil)
	req.Header.Set("Origin", "http://example.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-amz-date")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=x", nil)
	req.Header.Set("Origin", "http://example.test")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Fatalf("GET from another origin: %v", resp.Header)
	}
}
