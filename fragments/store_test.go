package fragments_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/fragtest"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

func openStore(t *testing.T, dir string) *fragments.Store {
	t.Helper()
	return fragtest.OpenStore(t, dir)
}

// put ingests a file and returns the acks.
func put(t *testing.T, s *fragments.Store, st *fragments.Stream, file string, opts fragments.PutOptions) []fragments.Ack {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var acks []fragments.Ack
	var mu sync.Mutex
	opts.Abort = func() {}
	err = s.Put(context.Background(), st, opts, bytes.NewReader(data), func(a fragments.Ack) error {
		mu.Lock()
		defer mu.Unlock()
		acks = append(acks, a)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return acks
}

func all(t *testing.T, s *fragments.Store, st *fragments.Stream, minServer int64) []fragments.Fragment {
	t.Helper()
	f, err := s.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, To: 1 << 62, AfterTS: -1, MinServerNS: minServer, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

const absCapture = "../testdata/producer/producer-c-video-absolute-tags.mkv"

func TestRetentionExpiresFragmentsAndPayloads(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	st, err := s.CreateStream(fragments.NewStream{Name: "r", RetentionHours: 1})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, st, absCapture, fragments.PutOptions{})
	put(t, s, st, absCapture, fragments.PutOptions{}) // a second connection: a second segment
	// Timecode order is judged per connection, so the repeat is stored too.
	frags := all(t, s, st, 0)
	if len(frags) != 12 {
		t.Fatalf("%d fragments, want 12", len(frags))
	}
	segDir := filepath.Join(dir, "payload", "1")
	if files, _ := os.ReadDir(segDir); len(files) != 2 {
		t.Fatalf("%d segment files, want 2", len(files))
	}

	// Reads never return what is past retention, even before it is deleted.
	last := frags[len(frags)-1].ServerNS
	if got := all(t, s, st, last); len(got) != 1 {
		t.Fatalf("with cutoff at the newest fragment, %d fragments visible, want 1", len(got))
	}

	// Just inside retention: nothing goes.
	if err := s.ExpireNow(time.Unix(0, frags[0].ServerNS).Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := all(t, s, st, 0); len(got) != 12 {
		t.Fatalf("%d fragments after a no-op expiry, want 12", len(got))
	}
	// Past the first connection's fragments: they go, and its segment file.
	if err := s.ExpireNow(time.Unix(0, frags[5].ServerNS).Add(time.Hour + 1)); err != nil {
		t.Fatal(err)
	}
	got := all(t, s, st, 0)
	if len(got) != 6 || got[0].Ordinal != frags[6].Ordinal {
		t.Fatalf("after expiry: %d fragments starting at ordinal %d, want 6 from %d", len(got), got[0].Ordinal, frags[6].Ordinal)
	}
	if files, _ := os.ReadDir(segDir); len(files) != 1 {
		t.Fatalf("%d segment files after expiry, want 1", len(files))
	}
	// Everything.
	if err := s.ExpireNow(time.Unix(0, last).Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := all(t, s, st, 0); len(got) != 0 {
		t.Fatalf("%d fragments left", len(got))
	}
	if files, _ := os.ReadDir(segDir); len(files) != 0 {
		t.Fatalf("%d segment files left", len(files))
	}
	// Ordinals continue after expiry (they are never reused).
	put(t, s, st, absCapture, fragments.PutOptions{})
	if got := all(t, s, st, 0); len(got) != 6 || got[0].Ordinal != frags[11].Ordinal+1 {
		t.Fatalf("after re-ingest: %+v", got)
	}
}

func TestNoRetentionStoresNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	st, err := s.CreateStream(fragments.NewStream{Name: "live"})
	if err != nil {
		t.Fatal(err)
	}
	acks := put(t, s, st, absCapture, fragments.PutOptions{})
	count := map[string]int{}
	for _, a := range acks {
		count[a.EventType]++
	}
	if count[fragments.AckBuffering] != 6 || count[fragments.AckReceived] != 6 || count[fragments.AckPersisted] != 0 {
		t.Fatalf("acks %v: want 6 BUFFERING and RECEIVED, no PERSISTED", count)
	}
	if got := all(t, s, st, 0); len(got) != 0 {
		t.Fatalf("%d fragments stored for a stream without retention", len(got))
	}
	if _, err := os.Stat(filepath.Join(dir, "payload", "1")); !os.IsNotExist(err) {
		t.Fatalf("payload directory exists for a stream without retention: %v", err)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := &fragments.Meta{
		Samples: []fragments.Sample{
			{Track: 0, Key: true, PTS: 80e6, DTS: 0, Dur: 40e6, Offset: 20, Size: 9000},
			{Track: 1, PTS: -21e6, DTS: -21e6, Dur: 21e6, Offset: 9030, Size: 200},
			{Track: 0, PTS: 40e6, DTS: 40e6, Dur: 40e6, Offset: 9240, Size: 1 << 40},
		},
		Tags: []mkv.SimpleTag{{Name: "K", Value: "V"}, {Name: "B", Value: "\x00\x01", Binary: true}},
	}
	enc := fragments.AppendMeta(nil, m)
	got, err := fragments.DecodeMeta(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Samples) != 3 || got.Samples[0] != m.Samples[0] || got.Samples[1] != m.Samples[1] || got.Samples[2] != m.Samples[2] ||
		len(got.Tags) != 2 || got.Tags[1] != m.Tags[1] {
		t.Fatalf("round trip: %+v", got)
	}
	for i := 0; i < len(enc); i++ {
		if _, err := fragments.DecodeMeta(enc[:i]); err == nil {
			t.Fatalf("truncated meta (%d of %d bytes) decoded without error", i, len(enc))
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(fragments.AppendMeta(nil, &fragments.Meta{Samples: []fragments.Sample{{Key: true, Size: 3}}, Tags: []mkv.SimpleTag{{Name: "a", Value: "b"}}}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := fragments.DecodeMeta(p)
		if err == nil {
			if again, err := fragments.DecodeMeta(fragments.AppendMeta(nil, m)); err != nil || len(again.Samples) != len(m.Samples) {
				t.Fatalf("re-encoding a decoded meta failed: %v", err)
			}
		}
	})
}

// TestSampleTimesWithBFrames checks decode times of the demo clip (x264 with
// B-frames): DTS strictly increases in storage order per track, never after
// PTS, and the fragment starts at its earliest presentation time.
func TestSampleTimesWithBFrames(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	st, err := s.CreateStream(fragments.NewStream{Name: "b", RetentionHours: 1})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, st, "../cmd/kvsgate/demo/sample.mkv", fragments.PutOptions{})
	frags := all(t, s, st, 0)
	if len(frags) != 10 {
		t.Fatalf("%d fragments, want 10", len(frags))
	}
	reordered := false
	for _, f := range frags {
		m, err := s.Index.Meta(st.ID, f.Ordinal)
		if err != nil {
			t.Fatal(err)
		}
		minPTS := int64(1 << 62)
		lastDTS := map[uint8]int64{}
		for i, smp := range m.Samples {
			minPTS = min(minPTS, smp.PTS)
			if smp.DTS > smp.PTS {
				t.Fatalf("fragment %d sample %d: DTS %d after PTS %d", f.Ordinal, i, smp.DTS, smp.PTS)
			}
			if d, ok := lastDTS[smp.Track]; ok && smp.DTS <= d {
				t.Fatalf("fragment %d sample %d: DTS %d not after %d", f.Ordinal, i, smp.DTS, d)
			}
			lastDTS[smp.Track] = smp.DTS
			if smp.DTS != smp.PTS {
				reordered = true
			}
			if smp.Dur <= 0 {
				t.Fatalf("fragment %d sample %d: duration %d", f.Ordinal, i, smp.Dur)
			}
		}
		if minPTS != 0 {
			t.Fatalf("fragment %d: earliest PTS is %d ns after the fragment start, want 0", f.Ordinal, minPTS)
		}
		if f.DurationNS < 900e6 || f.DurationNS > 1200e6 {
			t.Fatalf("fragment %d lasts %d ns, want about 1 s", f.Ordinal, f.DurationNS)
		}
	}
	if !reordered {
		t.Fatal("no sample has DTS != PTS: the clip has B-frames, so some must")
	}
}
