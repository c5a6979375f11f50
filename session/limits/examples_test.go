package limits

import (
	"testing"
	"time"
)

// The guide's two worked examples of how many playback sessions a stream's
// fragment credits support, run through the limiter on a fake clock with
// each session's requests spread evenly over the second.

// simulate runs n sessions for d; each session makes, every second, the
// given requests at its own phase of the second. It returns the requests
// refused and the credits consumed per second on average.
func simulate(t *testing.T, n int, d time.Duration, per []Request) (refused int, meta, media float64) {
	t.Helper()
	c := newClock()
	l := New(Default(), c.Now)
	start := c.ns.Load()
	var metaSum, mediaSum int
	seconds := int(d / time.Second)
	step := int64(time.Second) / int64(n)
	for s := range seconds {
		for i := range n {
			c.ns.Store(start + int64(s)*int64(time.Second) + int64(i)*step)
			for _, r := range per {
				r.Session = sid(i)
				if err := l.Admit(r); err != nil {
					refused++
					continue
				}
				metaSum += r.Metadata
				mediaSum += r.Media
			}
		}
	}
	return refused, float64(metaSum) / float64(seconds), float64(mediaSum) / float64(seconds)
}

// TestGuideExampleLiveHLS: LIVE HLS, 1 s fragments, audio and video,
// MaxMediaPlaylistFragmentResults 5: each session loads two media playlists
// (5 metadata credits each) and two media fragments (1 media credit each) a
// second. The guide: at most 250 sessions, which consume 2,500 metadata and
// 500 media credits a second.
func TestGuideExampleLiveHLS(t *testing.T) {
	per := []Request{
		{Op: GetHLSMediaPlaylist, Stream: 1, Metadata: 5},
		{Op: GetHLSMediaPlaylist, Stream: 1, Metadata: 5},
		{Op: GetMP4MediaFragment, Stream: 1, Media: 1},
		{Op: GetMP4MediaFragment, Stream: 1, Media: 1},
	}
	// 600 s: one session too many drains the 500-credit burst in 250 s.
	refused, meta, media := simulate(t, 250, 600*time.Second, per)
	if refused != 0 || meta != 2500 || media != 500 {
		t.Fatalf("250 sessions: %d refused, %.0f metadata and %.0f media credits a second; the guide: 0, 2500, 500", refused, meta, media)
	}
	// Over the run, at most the rate plus the first second's burst.
	refused, _, media = simulate(t, 251, 600*time.Second, per)
	if refused == 0 || media > 500+500.0/600 {
		t.Fatalf("251 sessions: %d refused, %.1f media credits a second; want refusals and at most 500 (+ the burst)", refused, media)
	}
	t.Logf("251 sessions: %d of %d requests refused over 600 s; %.1f media credits a second", refused, 251*4*600, media)
}

// TestGuideExampleDASHOnDemand: ON_DEMAND DASH, MaxManifestFragmentResults
// 1000. A session starts with one GetDASHManifest (1000 metadata credits)
// and then loads 5 GetMP4MediaFragment a second (5 media credits). The
// guide: at most 10 new sessions a second, and at most 100 sessions loading
// media at once.
func TestGuideExampleDASHOnDemand(t *testing.T) {
	manifest := []Request{{Op: GetDASHManifest, Stream: 1, Metadata: 1000}}
	// n sessions started each second (each a new session: sid(i) per phase).
	if refused, meta, _ := simulate(t, 10, 120*time.Second, manifest); refused != 0 || meta != 10000 {
		t.Fatalf("10 new sessions a second: %d refused, %.0f metadata credits a second", refused, meta)
	}
	if refused, meta, _ := simulate(t, 11, 120*time.Second, manifest); refused == 0 || meta > 10000+10000.0/120 {
		t.Fatalf("11 new sessions a second: %d refused, %.0f metadata credits a second", refused, meta)
	}
	fragments := make([]Request, 5)
	for i := range fragments {
		fragments[i] = Request{Op: GetMP4MediaFragment, Stream: 1, Media: 1}
	}
	if refused, _, media := simulate(t, 100, 600*time.Second, fragments); refused != 0 || media != 500 {
		t.Fatalf("100 sessions loading: %d refused, %.0f media credits a second", refused, media)
	}
	if refused, _, _ := simulate(t, 101, 600*time.Second, fragments); refused == 0 {
		t.Fatal("101 sessions loading: none refused")
	}
}
