package session_test

import (
	"testing"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/session"
)

func TestFirstTrackLead(t *testing.T) {
	samples := []fragments.Sample{{Track: 1, PTS: 0}, {Track: 0, PTS: 83e6}, {Track: 1, PTS: 21e6}, {Track: 0, PTS: 163e6}}
	if got := session.FirstTrackLead(samples); got != 83e6 {
		t.Errorf("lead %d, want 83 ms", got)
	}
	if got := session.FirstTrackLead(nil); got != 0 {
		t.Errorf("lead of nothing %d, want 0", got)
	}
}

// TestJoined: continuity measured on the first track, and for server
// timestamps also on the producer's clock. Times in ms; fragments of 1 s.
func TestJoined(t *testing.T) {
	const ms = int64(1e6)
	entry := func(server, producer int64) *session.Entry {
		return &session.Entry{Fragment: fragments.Fragment{ServerNS: server * ms, ProducerNS: producer * ms, DurationNS: 1000 * ms}}
	}
	cases := []struct {
		name              string
		producer          bool
		prev, cur         *session.Entry
		prevLead, curLead int64
		want              bool
	}{
		// The demo clip at its loop: timestamps 88 ms apart, the video 26 ms.
		{"lead", true, entry(0, 8939), entry(0, 10027), 82, 0, true},
		{"lead, 80 ms of video", true, entry(0, 8939), entry(0, 10027), 82, 54, false},
		{"a 3 s pause", true, entry(0, 0), entry(0, 4000), 0, 0, false},
		{"server jitter", false, entry(0, 0), entry(1120, 1000), 0, 0, true},
		{"server gap, producer gap", false, entry(0, 0), entry(1120, 1120), 0, 0, false},
		{"server gap, producer jumps back (a new producer clock)", false, entry(0, 5000), entry(1120, 0), 0, 0, false},
	}
	for _, c := range cases {
		s := &session.Session{Producer: c.producer}
		for _, e := range []*session.Entry{c.prev, c.cur} {
			e.StartNS = e.ServerNS
			if c.producer {
				e.StartNS = e.ProducerNS
			}
		}
		if got := s.Joined(c.prev, c.cur, c.prevLead*ms, c.curLead*ms); got != c.want {
			t.Errorf("%s: joined %v, want %v", c.name, got, c.want)
		}
	}
}
