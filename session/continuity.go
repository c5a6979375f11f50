package session

import "github.com/kvsgate/kvsgate/fragments"

// FirstTrackLead is how far after a fragment's timestamp its first track
// (the video, when there is video) begins: the earliest presentation time
// of that track's samples, which are relative to the fragment's earliest
// frame of any track. A muxer that puts the audio of the next key frame's
// time in its cluster makes it vary from fragment to fragment (the demo
// clip: 21 to 101 ms).
func FirstTrackLead(samples []fragments.Sample) int64 {
	lead, found := int64(0), false
	for i := range samples {
		if samples[i].Track == 0 && (!found || samples[i].PTS < lead) {
			lead, found = samples[i].PTS, true
		}
	}
	return lead
}

// Joined reports whether cur continues prev in the presentation, with no
// gap of more than GapTolerance in their first track, given each one's
// FirstTrackLead. A fragment's timestamp is its earliest frame of any
// track but its duration is its first track's span (fragments.Fragment),
// so timestamp + duration is not where the next fragment's first track
// should begin: it is off by the difference of the two leads. Measured on
// the first track, the gap is the one a player sees.
//
// With server timestamps (arrival times, with the jitter of the network
// and of the server) fragments whose producer timestamps are continuous
// are continuous too: the producer says its media has no gap, whatever
// the arrival times say. (A producer that reconnects continues its clock,
// so a pause is still a gap in producer time.)
func (s *Session) Joined(prev, cur *Entry, prevLead, curLead int64) bool {
	tol := int64(GapTolerance)
	gap := func(p, c int64) int64 { return c + curLead - (p + prevLead + prev.DurationNS) }
	if gap(prev.StartNS, cur.StartNS) <= tol {
		return true
	}
	if g := gap(prev.ProducerNS, cur.ProducerNS); !s.Producer && g <= tol && g >= -tol {
		return true
	}
	return false
}
