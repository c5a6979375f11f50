package limits

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a fake clock: tests move it by hand, so every figure is exact.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func sid(i int) SessionID { return SessionID{byte(i), byte(i >> 8), byte(i >> 16), 1} }

// refusedBy returns the limit an error names, "" for nil; it fails on
// other errors.
func refusedBy(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var le *Error
	if !errors.As(err, &le) {
		t.Fatalf("not a limits.Error: %v", err)
	}
	return le.Limit
}

// TestBurstEachTPS: a burst admits exactly each operation's figure (one
// second of rate) and refuses the rest, naming the limit and when to retry.
func TestBurstEachTPS(t *testing.T) {
	def := Default()
	for op := range NumOps {
		rate := def.TPS[op]
		if rate == 0 {
			continue
		}
		t.Run(op.String(), func(t *testing.T) {
			c := newClock()
			l := New(def, c.Now)
			r := Request{Op: op, Stream: 7, Session: sid(1)}
			for i := range rate + 3 {
				err := l.Admit(r)
				switch {
				case i < rate && err != nil:
					t.Fatalf("request %d refused: %v", i+1, err)
				case i >= rate:
					if got := refusedBy(t, err); got != ops[op].name+"-tps" {
						t.Fatalf("request %d: refused by %q", i+1, got)
					}
					var le *Error
					errors.As(err, &le)
					if want := time.Second / time.Duration(rate); le.RetryAfter != want || le.Connection {
						t.Fatalf("RetryAfter %v (connection %v), want %v", le.RetryAfter, le.Connection, want)
					}
				}
			}
			if l.Refused() != 3 {
				t.Fatalf("Refused() = %d, want 3", l.Refused())
			}
			// Exactly one token a 1/rate of a second later.
			c.Advance(time.Second/time.Duration(rate) - 1)
			if l.Admit(r) == nil {
				t.Fatal("admitted before a token was back")
			}
			c.Advance(1)
			if err := l.Admit(r); err != nil {
				t.Fatalf("not admitted once a token was back: %v", err)
			}
			if l.Admit(r) == nil {
				t.Fatal("two admitted for one token")
			}
		})
	}
}

// TestPerSessionAndPerStream: session limits are per session, stream limits
// per stream; one's traffic never throttles another's.
func TestPerSessionAndPerStream(t *testing.T) {
	l := New(Default(), newClock().Now)
	for i := range 20 {
		if err := l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(1), Media: 1}); err != nil {
			t.Fatal(i, err)
		}
	}
	if refusedBy(t, l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(1), Media: 1})) != "get-mp4-media-fragment-tps" {
		t.Fatal("21st fragment of a session admitted")
	}
	// Another session of the same stream still has its 20.
	if err := l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(2), Media: 1}); err != nil {
		t.Fatal(err)
	}
	// Exhaust stream 1's media credits through many sessions.
	n := 21
	for s := 3; n < 500; s++ {
		for range 20 {
			if n == 500 {
				break
			}
			if err := l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(s), Media: 1}); err != nil {
				t.Fatal(n, err)
			}
			n++
		}
	}
	if got := refusedBy(t, l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(999), Media: 1})); got != "fragment-media-credits" {
		t.Fatalf("501st media credit: refused by %q", got)
	}
	// Stream 2 is untouched: its credits, its session URL rate.
	for i := range 500 {
		if err := l.Admit(Request{Op: GetTSFragment, Stream: 2, Session: sid(10000 + i), Media: 1}); err != nil {
			t.Fatal(i, err)
		}
	}
	for range 25 {
		if err := l.Admit(Request{Op: GetHLSStreamingSessionURL, Stream: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if l.Admit(Request{Op: GetHLSStreamingSessionURL, Stream: 1}) == nil {
		t.Fatal("26th session URL admitted")
	}
	if err := l.Admit(Request{Op: GetHLSStreamingSessionURL, Stream: 2}); err != nil {
		t.Fatal(err)
	}
}

// TestAccountTPS: account-level limits count across streams, stream-level
// ones per stream; a request refused by one takes nothing from the other.
func TestAccountTPS(t *testing.T) {
	c := newClock()
	l := New(Default(), c.Now)
	for s := range 60 {
		for range 5 {
			if err := l.Admit(Request{Op: DescribeStream, Stream: int64(s + 1)}); err != nil {
				t.Fatal(s, err)
			}
		}
		if refusedBy(t, l.Admit(Request{Op: DescribeStream, Stream: int64(s + 1)})) != "describe-stream-tps" {
			t.Fatal("6th DescribeStream of a stream admitted")
		}
	}
	if got := refusedBy(t, l.Admit(Request{Op: DescribeStream, Stream: 100})); got != "describe-stream-account-tps" {
		t.Fatalf("301st DescribeStream: %q", got)
	}
	// Stream 100's own bucket was not touched by that refusal: 5 once the
	// account has room again.
	c.Advance(time.Second)
	for range 5 {
		if err := l.Admit(Request{Op: DescribeStream, Stream: 100}); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		if err := l.Admit(Request{Op: ListStreams}); err != nil {
			t.Fatal(err)
		}
	}
	if refusedBy(t, l.Admit(Request{Op: ListStreams})) != "list-streams-account-tps" {
		t.Fatal("51st ListStreams admitted")
	}
}

// TestRefusedTakesNothing: a request that needs metadata and media credits
// and lacks one of them takes neither.
func TestRefusedTakesNothing(t *testing.T) {
	l := New(Default(), newClock().Now)
	if err := l.Admit(Request{Op: NoOp, Stream: 1, Media: 498}); err != nil {
		t.Fatal(err)
	}
	// A GetClip of 5 fragments: 5 metadata (plenty) and 5 media (2 left).
	if got := refusedBy(t, l.Admit(Request{Op: NoOp, Stream: 1, Metadata: 5, Media: 5})); got != "fragment-media-credits" {
		t.Fatalf("refused by %q", got)
	}
	// All 10000 metadata credits are still there, and the 2 media.
	if err := l.Admit(Request{Op: NoOp, Stream: 1, Metadata: 10000, Media: 2}); err != nil {
		t.Fatal(err)
	}
	if l.Admit(Request{Op: NoOp, Stream: 1, Metadata: 1}) == nil || l.Admit(Request{Op: NoOp, Stream: 1, Media: 1}) == nil {
		t.Fatal("credits left after taking them all")
	}
	// A session request refused by the stream's credits takes no session token.
	l2 := New(Default(), newClock().Now)
	l2.Admit(Request{Op: NoOp, Stream: 1, Media: 500})
	for range 30 {
		l2.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(1), Media: 1})
	}
	for i := range 20 {
		if err := l2.Admit(Request{Op: GetMP4MediaFragment, Stream: 2, Session: sid(1)}); err != nil {
			t.Fatal(i, err)
		}
	}
}

// TestCreditsRefill: credits come back continuously at their rate, up to one
// second of it; a request bigger than a second's worth is admitted from a
// full bucket and leaves it in debt.
func TestCreditsRefill(t *testing.T) {
	c := newClock()
	l := New(Default(), c.Now)
	media := func(n int) error { return l.Admit(Request{Op: NoOp, Stream: 1, Media: n}) }
	if err := media(500); err != nil {
		t.Fatal(err)
	}
	if media(1) == nil {
		t.Fatal("501st credit admitted")
	}
	c.Advance(100 * time.Millisecond) // 50 credits
	if media(51) == nil {
		t.Fatal("51 credits after 100 ms")
	}
	if err := media(50); err != nil {
		t.Fatal(err)
	}
	c.Advance(10 * time.Second) // full, not more
	if err := media(500); err != nil {
		t.Fatal(err)
	}
	if media(1) == nil {
		t.Fatal("bucket held more than a second of credits")
	}
	// Debt: 1000 fragments from a full bucket leave it at -500: the next
	// credit is back after 1 s + 2 ms.
	c.Advance(time.Second)
	if err := media(1000); err != nil {
		t.Fatalf("1000 fragments from a full bucket: %v", err)
	}
	c.Advance(time.Second + 2*time.Millisecond - 1)
	if media(1) == nil {
		t.Fatal("admitted while in debt")
	}
	c.Advance(1)
	if err := media(1); err != nil {
		t.Fatal(err)
	}
	// Metadata: 10000 a second.
	if err := l.Admit(Request{Op: NoOp, Stream: 1, Metadata: 10000}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Millisecond)
	if err := l.Admit(Request{Op: NoOp, Stream: 1, Metadata: 10}); err != nil {
		t.Fatal(err)
	}
	if l.Admit(Request{Op: NoOp, Stream: 1, Metadata: 1}) == nil {
		t.Fatal("metadata credit over the refill")
	}
}

// TestConnections: GetMedia allows 3 connections and 5 TPS per stream,
// GetMediaForFragmentList 5 at once; a refused connect counts nothing.
func TestConnections(t *testing.T) {
	c := newClock()
	l := New(Default(), c.Now)
	var releases []func()
	for i := range 3 {
		rel, err := l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 1})
		if err != nil {
			t.Fatal(i, err)
		}
		releases = append(releases, rel)
	}
	_, err := l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 1})
	var le *Error
	if !errors.As(err, &le) || !le.Connection || le.Limit != "get-media-connections" {
		t.Fatalf("4th GetMedia: %v", err)
	}
	// Another stream is not affected.
	if _, err := l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 2}); err != nil {
		t.Fatal(err)
	}
	releases[0]()
	releases[0]() // idempotent
	rel, err := l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 1})
	if err != nil {
		t.Fatal(err)
	}
	rel()
	// 4 GetMedia taken on stream 1 (the refusal took none): one more is the 5th.
	releases[1]()
	if rel, err = l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 1}); err != nil {
		t.Fatal(err)
	}
	rel()
	// The 6th in the second is over the rate, and counts no connection.
	if got := refusedBy(t, errOnly(l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 1}))); got != "get-media-tps" {
		t.Fatalf("6th GetMedia in a second: %q", got)
	}
	c.Advance(time.Second)
	if _, err := l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 1}); err != nil {
		t.Fatalf("with one connection open and the rate back: %v", err)
	}

	for i := range 5 {
		if _, err := l.Connect(FragmentListConns, Request{Op: NoOp, Stream: 1, Media: 1}); err != nil {
			t.Fatal(i, err)
		}
	}
	if got := refusedBy(t, errOnly(l.Connect(FragmentListConns, Request{Op: NoOp, Stream: 1, Media: 1}))); got != "get-media-for-fragment-list-connections" {
		t.Fatalf("6th GetMediaForFragmentList: %q", got)
	}
}

func errOnly(_ func(), err error) error { return err }

// TestSweep: idle streams and sessions are dropped, so memory stays bounded;
// a stream with an open connection stays, and a dropped entry comes back
// fresh.
func TestSweep(t *testing.T) {
	c := newClock()
	l := New(Default(), c.Now)
	for i := range 1000 {
		l.Admit(Request{Op: GetHLSMediaPlaylist, Stream: int64(i%10 + 1), Session: sid(i), Metadata: 5})
	}
	rel, _ := l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 1})
	if n := l.Sweep(c.Now()); n != 1010 {
		t.Fatalf("%d entries right away, want 1010", n)
	}
	c.Advance(time.Minute)
	if n := l.Sweep(c.Now()); n != 1 {
		t.Fatalf("%d entries after a minute idle, want 1 (the stream with a GetMedia open)", n)
	}
	rel()
	if n := l.Sweep(c.Now()); n != 0 {
		t.Fatalf("%d entries left", n)
	}
	for range 5 {
		if err := l.Admit(Request{Op: GetHLSMediaPlaylist, Stream: 1, Session: sid(0), Metadata: 5}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOff: a lab limiter admits everything.
func TestOff(t *testing.T) {
	cfg := Default()
	cfg.Off = true
	l := New(cfg, newClock().Now)
	for range 1000 {
		if err := l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(1), Media: 1000, Metadata: 100000}); err != nil {
			t.Fatal(err)
		}
		rel, err := l.Connect(GetMediaConns, Request{Op: GetMedia, Stream: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer rel()
	}
}

// TestZeroIsUnlimited: a figure set to 0 is no limit.
func TestZeroIsUnlimited(t *testing.T) {
	cfg := Default()
	for _, p := range []string{"fragment-media-credits=0", "get-mp4-media-fragment-tps=0", "get-media-connections=0"} {
		if err := cfg.SetPair(p); err != nil {
			t.Fatal(err)
		}
	}
	l := New(cfg, newClock().Now)
	for range 10000 {
		if err := l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(1), Media: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Connect(GetMediaConns, Request{Op: NoOp, Stream: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentExact: many goroutines on one stream at one instant get
// exactly the bucket's worth between them.
func TestConcurrentExact(t *testing.T) {
	l := New(Default(), newClock().Now)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(g*1000 + i), Media: 1}) == nil {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 500 {
		t.Fatalf("%d admitted, want 500", ok.Load())
	}
}

// TestConfigFigures: the defaults are the guide's, every figure is settable
// by name, bad names and values are errors.
func TestConfigFigures(t *testing.T) {
	want := map[string]int{
		"fragment-metadata-credits": 10000, "fragment-media-credits": 500,
		"get-media-connections": 3, "get-media-for-fragment-list-connections": 5,
		"put-media-tps": 5, "get-media-tps": 5,
		"get-hls-streaming-session-url-tps": 25, "get-dash-streaming-session-url-tps": 25,
		"get-hls-master-playlist-tps": 5, "get-hls-media-playlist-tps": 5, "get-dash-manifest-tps": 5,
		"get-mp4-init-fragment-tps": 5, "get-mp4-media-fragment-tps": 20, "get-ts-fragment-tps": 20,
		"get-hls-media-playlist-ll-tps": 20, "get-mp4-media-part-tps": 80, // LL-HLS: kvsgate's own
		"create-stream-account-tps": 50, "list-streams-account-tps": 50,
		"describe-stream-tps": 5, "describe-stream-account-tps": 300,
		"get-data-endpoint-tps": 5, "get-data-endpoint-account-tps": 300,
		"delete-stream-tps": 5, "delete-stream-account-tps": 50,
		"list-tags-for-stream-tps": 5, "list-tags-for-stream-account-tps": 50,
		"tag-stream-tps": 5, "tag-stream-account-tps": 50, "untag-stream-tps": 5, "untag-stream-account-tps": 50,
		"update-data-retention-tps": 5, "update-data-retention-account-tps": 50,
		"update-stream-tps": 5, "update-stream-account-tps": 50,
	}
	figs := Figures()
	if len(figs) != len(want) {
		t.Errorf("%d figures, want %d", len(figs), len(want))
	}
	for _, f := range figs {
		if w, ok := want[f.Name]; !ok || w != f.Default {
			t.Errorf("%s: default %d, want %d (listed %v)", f.Name, f.Default, w, ok)
		}
		var c Config
		if err := c.SetPair(f.Name + " = 77"); err != nil {
			t.Fatal(err)
		}
		if *f.field(&c) != 77 {
			t.Errorf("%s not set", f.Name)
		}
	}
	var c Config
	for _, bad := range []string{"nope=1", "fragment-media-credits", "fragment-media-credits=-1", "fragment-media-credits=1.5", "fragment-media-credits=x", "fragment-media-credits=2000000000"} {
		if err := c.SetPair(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if op, ok := OpOf("TagResource"); !ok || op != TagStream {
		t.Error("TagResource is not limited as TagStream")
	}
	if _, ok := OpOf("ListFragments"); ok {
		t.Error("ListFragments has a TPS limit")
	}
}
