package producer

import (
	"os"
	"testing"

	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// TestLoopPassContinuesEveryTrack loads the demo clip (video from 21 ms,
// 250 frames of 40 ms; audio from 0, 470 frames of about 21 ms) and checks
// that a loop pass starts every track after its last frame of the previous
// pass, and within 50 ms of where that frame ends: the audio's 21 ms lead
// is no gap.
func TestLoopPassContinuesEveryTrack(t *testing.T) {
	c, err := load(mustOpen(t, "../../cmd/kvsgate/demo/sample.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	type track struct{ first, last, n int64 }
	tracks := map[uint64]*track{}
	rd := mkv.NewReader(mustOpen(t, "../../cmd/kvsgate/demo/sample.mkv"))
	var tc int64
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		switch ev.Kind {
		case mkv.KindTimecode:
			tc = ev.Timecode
		case mkv.KindBlock:
			at := tc + int64(ev.Block.Timecode)
			if tr := tracks[ev.Block.Track]; tr == nil {
				tracks[ev.Block.Track] = &track{at, at, 1}
			} else {
				tr.first, tr.last, tr.n = min(tr.first, at), max(tr.last, at), tr.n+1
			}
		}
	}
	if len(tracks) != 2 {
		t.Fatalf("%d tracks", len(tracks))
	}
	for n, tr := range tracks {
		interval := (tr.last - tr.first) / (tr.n - 1)
		gap := tr.first + c.duration - (tr.last + interval)
		t.Logf("track %d: pass %d ms, gap at the loop %d ms", n, c.duration, gap)
		if gap < 0 || gap > 50 {
			t.Errorf("track %d: gap %d ms at the loop (pass %d ms), want 0 to 50", n, gap, c.duration)
		}
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestForwardTags(t *testing.T) {
	user := []mkv.SimpleTag{{Name: "TEST_KEY_1", Value: "a"}, {Name: endOfFragment}}
	raw := mkv.Tags(user)
	if got := forwardTags(raw, user); string(got) != string(raw) {
		t.Errorf("accepted tags not forwarded as they are")
	}
	mixed := append([]mkv.SimpleTag{{Name: fragmentNumberTag, Value: "1"}}, user...)
	if got := forwardTags(mkv.Tags(mixed), mixed); string(got) != string(raw) {
		t.Errorf("AWS_ tags not dropped: %x, want %x", got, raw)
	}
	only := []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", Value: "5"}}
	if got := forwardTags(mkv.Tags(only), only); got != nil {
		t.Errorf("a Tags element of refused tags only: %x, want none", got)
	}
}
