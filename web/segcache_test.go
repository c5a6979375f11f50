package web

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
)

// Concurrent requests for one segment build it once; a failed build is not
// kept.
func TestSegmentCacheBuildsOnce(t *testing.T) {
	c := newSegmentCache(1<<20, 100)
	f := &fragments.Fragment{StreamID: 1, Number: 7}
	var builds atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := c.body(f, segVariant{track: 1}, func() ([]byte, error) {
				builds.Add(1)
				<-release
				return []byte("segment"), nil
			})
			if err != nil || string(b) != "segment" {
				t.Errorf("%q, %v", b, err)
			}
		}()
	}
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}
	boom := errors.New("boom")
	for i := 0; i < 2; i++ {
		if _, err := c.body(f, segVariant{track: 2}, func() ([]byte, error) { return nil, boom }); err != boom {
			t.Fatalf("error %v, want boom", err)
		}
	}
	b, err := c.body(f, segVariant{track: 2}, func() ([]byte, error) { return []byte("ok"), nil })
	if err != nil || string(b) != "ok" {
		t.Fatalf("after a failed build: %q, %v", b, err)
	}
	if c.bytes != int64(len("segment")+len("ok")) {
		t.Errorf("bytes %d", c.bytes)
	}
}

// The least recently used fragments go beyond the byte and count limits.
func TestSegmentCacheEvicts(t *testing.T) {
	c := newSegmentCache(250, 3)
	body := func(n uint64) {
		t.Helper()
		f := &fragments.Fragment{StreamID: 1, Number: n}
		if _, err := c.body(f, segVariant{}, func() ([]byte, error) { return make([]byte, 100), nil }); err != nil {
			t.Fatal(err)
		}
	}
	loads := 0
	frag := func(n uint64) {
		t.Helper()
		c.fragment(1, n, func() (*fragments.Fragment, error) { loads++; return &fragments.Fragment{StreamID: 1, Number: n}, nil })
	}
	body(1)
	body(2)
	frag(1) // 1 is now the most recent
	body(3) // 300 bytes: 2 goes
	if _, ok := c.frags[fragKey{1, 2}]; ok || len(c.frags) != 2 || c.bytes != 200 || loads != 0 {
		t.Fatalf("after 3: %d fragments, %d bytes, %d loads", len(c.frags), c.bytes, loads)
	}
	frag(4)
	frag(5) // 4 rows: the least recent (1) goes
	if _, ok := c.frags[fragKey{1, 1}]; ok || len(c.frags) != 3 || c.bytes != 100 || loads != 2 {
		t.Fatalf("after 5: %d fragments, %d bytes, %d loads", len(c.frags), c.bytes, loads)
	}
	// An entry evicted while its segment is built does not count its bytes.
	f := &fragments.Fragment{StreamID: 1, Number: 9}
	c.body(f, segVariant{}, func() ([]byte, error) {
		frag(10)
		frag(11)
		frag(12) // 9 goes
		return make([]byte, 100), nil
	})
	if _, ok := c.frags[fragKey{1, 9}]; ok || c.bytes != 0 {
		t.Fatalf("evicted during its build: %v fragments, %d bytes", len(c.frags), c.bytes)
	}
}

// Every variant of a fragment's segment is its own entry, and what the
// cache serves is what a server without it builds.
func TestHLSSegmentCacheVariants(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, dir, nil, fragments.Config{})
	base := int64(1790000000000)
	numbers := gmIngestBytes(t, ts, "cached", hlsStreamBytes([]hlsFragment{{base, 1000}, {base + 1000, 1000}, {base + 2000, 1000}}, true, -1), false, 87600)
	rng := map[string]any{"StartTimestamp": float64(base) / 1000, "EndTimestamp": float64(base+20000) / 1000}
	fetchAll := func(ts *testServer) map[string][]byte {
		h := hlsClient{t, ts}
		out := map[string][]byte{}
		for _, sel := range []string{"PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"} {
			for _, container := range []string{"FRAGMENTED_MP4", "MPEG_TS"} {
				r := rng
				if sel == "SERVER_TIMESTAMP" {
					now := float64(time.Now().Unix())
					r = map[string]any{"StartTimestamp": now - 3600, "EndTimestamp": now + 60}
				}
				status, typ, master := h.sessionURL(map[string]any{"StreamName": "cached", "PlaybackMode": "ON_DEMAND", "ContainerFormat": container,
					"HLSFragmentSelector": map[string]any{"FragmentSelectorType": sel, "TimestampRange": r}})
				if status != 200 {
					t.Fatalf("session: %d %s", status, typ)
				}
				segs := []string{"getTSFragment.ts?FragmentNumber=" + numbers[1]}
				if container == "FRAGMENTED_MP4" {
					segs = []string{"getMP4MediaFragment.mp4?TrackNumber=1&FragmentNumber=" + numbers[1], "getMP4MediaFragment.mp4?TrackNumber=2&FragmentNumber=" + numbers[1]}
				}
				for _, seg := range segs {
					u := strings.Replace(master, "getHLSMasterPlaylist.m3u8?", seg+"&", 1)
					resp, b := h.get(u)
					resp2, b2 := h.get(u) // from the cache
					if resp.StatusCode != 200 || resp2.StatusCode != 200 || !bytes.Equal(b, b2) {
						t.Fatalf("%s %s: %d, %d, equal %v", sel, seg, resp.StatusCode, resp2.StatusCode, bytes.Equal(b, b2))
					}
					out[fmt.Sprintf("%s %s", sel, seg)] = b
				}
			}
		}
		return out
	}
	cached := fetchAll(ts)
	if len(cached) != 6 {
		t.Fatalf("%d variants", len(cached))
	}
	seen := map[string]string{}
	for k, b := range cached {
		if other, ok := seen[string(b)]; ok {
			t.Errorf("%s and %s got the same bytes", k, other)
		}
		seen[string(b)] = k
	}
	ts.Close()
	fresh := fetchAll(startTestServer(t, dir, nil, fragments.Config{}))
	for k, b := range fresh {
		if !bytes.Equal(b, cached[k]) {
			t.Errorf("%s: the restarted server built different bytes", k)
		}
	}
}

// Session requests reuse their stream's lookup for a second, but deleting
// the stream ends its sessions at once.
func TestHLSSessionStreamDeleted(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	h := hlsClient{t, ts}
	base := int64(1790000000000)
	gmIngestBytes(t, ts, "gone", hlsStreamBytes([]hlsFragment{{base, 1000}, {base + 1000, 1000}}, false, -1), false, 87600)
	status, typ, master := h.sessionURL(onDemandBody("gone", "FRAGMENTED_MP4", base, base+10000))
	if status != 200 {
		t.Fatalf("session: %d %s", status, typ)
	}
	media := strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?TrackNumber=1&", 1)
	if resp, b := h.get(media); resp.StatusCode != 200 {
		t.Fatalf("media playlist: %d %s", resp.StatusCode, b)
	}
	gmPost(t, ts.URL, "/deleteStream", map[string]any{"StreamARN": hlsStreamARN(t, ts, "gone")})
	if resp, b := h.get(media); resp.StatusCode != 404 || !strings.Contains(string(b), "no longer exists") {
		t.Errorf("media playlist of a deleted stream: %d %s, want 404: the session's stream no longer exists", resp.StatusCode, b)
	}
}
