package session_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/sqlindex"
	"github.com/kvsgate/kvsgate/session"
)

func keyring(t testing.TB, b byte) *session.Keyring {
	key := make([]byte, 32)
	for i := range key {
		key[i] = b
	}
	k, err := session.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTokenRoundTripTamperExpiry(t *testing.T) {
	k := keyring(t, 1)
	now := time.Unix(1795289339, 0)
	s := session.New(session.Session{Protocol: session.HLS, StreamID: 42, Mode: session.LiveReplay, Producer: true,
		StartNS: 1795289000e9, EndNS: 1795289100e9, HasEnd: true, Container: 1, Discontinuity: session.DiscontinuityOnGap,
		DisplayTimestamp: true, MaxResults: 5000, BaseOrdinal: 7}, now, 300*time.Second)
	tok := k.Seal(s)
	got, err := k.Open(tok, now.Add(299*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if *got != *s {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	if _, err := k.Open(tok, now.Add(300*time.Second)); err != session.ErrExpired {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
	if _, err := keyring(t, 2).Open(tok, now); err != session.ErrInvalid {
		t.Fatalf("another key: %v, want ErrInvalid", err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x20
		if _, err := k.Open(base64.RawURLEncoding.EncodeToString(b), now); err != session.ErrInvalid {
			t.Fatalf("byte %d flipped: %v, want ErrInvalid", i, err)
		}
	}
	for _, bad := range []string{"", "x", strings.Repeat("A", 5000), tok[:len(tok)-1], tok + "A", "!!!!"} {
		if _, err := k.Open(bad, now); err != session.ErrInvalid {
			t.Fatalf("token %.20q: %v, want ErrInvalid", bad, err)
		}
	}
	// Two sessions never share a token.
	if k.Seal(s) == tok {
		t.Fatal("sealing twice gave the same token")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "session.key")
	a, err := session.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := session.LoadOrCreateKey(path)
	if err != nil || string(a) != string(b) || len(a) != 32 {
		t.Fatalf("second load: %x %v, first %x", b, err, a)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	os.WriteFile(path, []byte("zz"), 0o600)
	if _, err := session.LoadOrCreateKey(path); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

func FuzzOpen(f *testing.F) {
	k := keyring(f, 3)
	now := time.Unix(1795289339, 0)
	f.Add(k.Seal(session.New(session.Session{Protocol: session.DASH, StreamID: 1, MaxResults: 5}, now, time.Hour)))
	f.Add("AQ")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		s, err := k.Open(tok, now)
		if err == nil && (s.MaxResults < 1 || s.MaxResults > 5000) {
			t.Fatalf("opened a session with MaxResults %d", s.MaxResults)
		}
	})
}

// windowIndex is a real index holding synthetic fragments.
type windowIndex struct {
	idx *sqlindex.Index
	st  *fragments.Stream
}

// frag describes a synthetic fragment: start (server = producer unless
// producer is set), duration, header.
type frag struct {
	startMS, durMS, producerMS int64
	header                     int64
}

func newWindowIndex(t *testing.T, frags []frag) *windowIndex {
	idx, err := sqlindex.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	st := &fragments.Stream{Name: "w", ARN: "arn:aws:kinesisvideo:us-west-2:0:stream/w/1", Version: "v", Status: "ACTIVE", CreationTime: time.Now(), RetentionHours: 24 * 365 * 50}
	if err := idx.CreateStream(st); err != nil {
		t.Fatal(err)
	}
	var ps []*fragments.Pending
	for i, f := range frags {
		p := f.producerMS
		if p == 0 {
			p = f.startMS
		}
		ps = append(ps, &fragments.Pending{Fragment: &fragments.Fragment{StreamID: st.ID, Number: uint64(1000 + i), ServerNS: f.startMS * 1e6,
			ProducerNS: p * 1e6, DurationNS: f.durMS * 1e6, Size: 1000, HeaderID: f.header}, Meta: []byte{1, 0, 0}})
	}
	if err := idx.Commit(ps); err != nil {
		t.Fatal(err)
	}
	return &windowIndex{idx: idx, st: st}
}

// describe renders a window as "seq/dseq [ordinal(flags) ...] ended".
func describe(w *session.Window) string {
	var parts []string
	for _, e := range w.Entries {
		f := ""
		if e.Discontinuity {
			f += "D"
		}
		if e.HeaderChange {
			f += "H"
		}
		parts = append(parts, fmt.Sprintf("%d%s", e.Ordinal, f))
	}
	return fmt.Sprintf("%d/%d %v ended=%v", w.MediaSequence, w.DiscontinuitySequence, parts, w.Ended)
}

func TestWindows(t *testing.T) {
	base := int64(1795289339000)
	// Ten 1 s fragments, a 5 s gap after the 4th, a 100 ms overlap before
	// the 8th, a new header from the 9th.
	var frags []frag
	at := base
	for i := 0; i < 10; i++ {
		h := int64(1)
		if i >= 8 {
			h = 2
		}
		frags = append(frags, frag{startMS: at, durMS: 1000, header: h})
		at += 1000
		if i == 3 {
			at += 5000
		}
		if i == 6 {
			at -= 100
		}
	}
	wi := newWindowIndex(t, frags)
	now := time.UnixMilli(at + 1000)
	cases := []struct {
		name string
		s    session.Session
		now  time.Time
		want string
	}{
		{"on demand, always", session.Session{Mode: session.OnDemand, StartNS: base * 1e6, EndNS: at * 1e6, HasEnd: true, MaxResults: 1000},
			now, "1/0 [1 2D 3D 4D 5D 6D 7D 8D 9DH 10D] ended=true"},
		{"on demand, on discontinuity", session.Session{Mode: session.OnDemand, Discontinuity: session.DiscontinuityOnGap, StartNS: base * 1e6, EndNS: at * 1e6, HasEnd: true, MaxResults: 1000},
			now, "1/0 [1 2 3 4 5D 6 7 8D 9DH 10] ended=true"},
		{"on demand, never, max 3, inclusive start", session.Session{Mode: session.OnDemand, Discontinuity: session.DiscontinuityNever, StartNS: (base + 1000) * 1e6, EndNS: at * 1e6, HasEnd: true, MaxResults: 3},
			now, "2/0 [2 3 4] ended=true"},
		{"on demand, never, header change", session.Session{Mode: session.OnDemand, Discontinuity: session.DiscontinuityNever, StartNS: (base + 10000) * 1e6, EndNS: at * 1e6, HasEnd: true, MaxResults: 10},
			now, "6/0 [6 7 8 9DH 10] ended=true"},
		{"live, newest 3, always", session.Session{Mode: session.Live, MaxResults: 3, BaseOrdinal: 1},
			now, "8/8 [8 9DH 10D] ended=false"},
		{"live, newest 3, on discontinuity", session.Session{Mode: session.Live, Discontinuity: session.DiscontinuityOnGap, MaxResults: 3, BaseOrdinal: 1},
			now, "8/2 [8 9DH 10] ended=false"},
		{"live replay, 2.5 s in", session.Session{Mode: session.LiveReplay, Discontinuity: session.DiscontinuityOnGap, StartNS: base * 1e6, MaxResults: 5, CreatedNS: now.UnixNano()},
			now.Add(2500 * time.Millisecond), "0/0 [1 2 3] ended=false"},
		{"live replay, 6.5 s in, window 2", session.Session{Mode: session.LiveReplay, Discontinuity: session.DiscontinuityOnGap, StartNS: base * 1e6, EndNS: at * 1e6, HasEnd: true, MaxResults: 2, CreatedNS: now.UnixNano()},
			now.Add(6500 * time.Millisecond), "5/1 [6 7] ended=false"},
		{"live replay, past the end", session.Session{Mode: session.LiveReplay, StartNS: base * 1e6, EndNS: at * 1e6, HasEnd: true, MaxResults: 3, CreatedNS: now.UnixNano()},
			now.Add(time.Minute), "7/7 [8 9DH 10D] ended=true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := c.s.Compute(wi.idx, wi.st, c.now)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(w); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestLiveWindowSlides checks that a LIVE window's sequence numbers stay
// consistent as fragments arrive: a fragment keeps its media sequence
// number, and the discontinuity sequence grows by the discontinuities that
// slid out.
func TestLiveWindowSlides(t *testing.T) {
	base := int64(1795289339000)
	var frags []frag
	at := base
	for i := 0; i < 12; i++ {
		frags = append(frags, frag{startMS: at, durMS: 1000, header: 1})
		at += 1000
		if i%3 == 0 {
			at += 2000 // a gap after every third
		}
	}
	wi := newWindowIndex(t, frags)
	s := session.Session{Mode: session.Live, Discontinuity: session.DiscontinuityOnGap, MaxResults: 4, BaseOrdinal: 1}
	full, err := (&session.Session{Mode: session.OnDemand, Discontinuity: session.DiscontinuityOnGap, StartNS: 0, EndNS: 1 << 62, HasEnd: true, MaxResults: 100}).Compute(wi.idx, wi.st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Compute(wi.idx, wi.st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first := w.Entries[0].Ordinal
	var want int64
	for _, e := range full.Entries {
		if e.Ordinal <= first && e.Discontinuity {
			want++
		}
	}
	if w.MediaSequence != first || w.DiscontinuitySequence != want {
		t.Fatalf("live window %s: want media sequence %d, discontinuity sequence %d", describe(w), first, want)
	}
}
