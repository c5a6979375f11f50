package hls

import (
	"github.com/kvsgate/kvsgate/fragments"
)

// Part is a partial segment (LL-HLS): a run of one track's samples of a
// fragment, contiguous in decode order.
type Part struct {
	// From and To bound the part in the fragment's sample table: it holds
	// the track's samples with index in [From, To).
	From, To int
	// StartNS is the decode time of its first sample and DurationNS the
	// time to the next part's first sample (for the fragment's last part,
	// to the end of its last sample), relative to the fragment's start.
	StartNS, DurationNS int64
	// Independent: it starts with a key frame (every audio part does).
	Independent bool
}

// Parts cuts one track's samples of a fragment into parts of at most
// targetNS each, filled greedily in decode order: a part ends before the
// first sample that would take it past targetNS from its first decode time
// (so every part is at most the target, as RFC 8216bis asks of a Partial
// Segment, and at least the target less one frame interval, except the
// fragment's last). A part takes at least one sample.
//
// Only complete parts are returned: of a fragment still arriving, only the
// first settled samples of the track have final times, and a part is
// complete once the sample after it (which sets its end) and the one after
// that (which says whether the part ends there) are settled. complete
// means the fragment is: then every sample is settled and the last part
// ends with the last sample. Cutting the same samples gives the same parts
// however many more have arrived since.
func Parts(h *fragments.Header, samples []fragments.Sample, track int, targetNS int64, settled int, complete bool) []Part {
	audio := false
	if t, err := mp4Track(h, track); err == nil {
		audio = !trackCodecOf(t).video()
	}
	var idx []int
	for i := range samples {
		if int(samples[i].Track) == track {
			idx = append(idx, i)
		}
	}
	n := len(idx)
	if complete {
		settled = n
	}
	settled = min(settled, n)
	var parts []Part
	emit := func(a, q int, end int64) {
		s := &samples[idx[a]]
		parts = append(parts, Part{From: idx[a], To: idx[q-1] + 1, StartNS: s.DTS, DurationNS: end - s.DTS, Independent: s.Key || audio})
	}
	a := 0
	for q := 1; q <= n; q++ {
		if q == n {
			if complete {
				last := &samples[idx[n-1]]
				emit(a, n, last.DTS+last.Dur)
			}
			break
		}
		// Sample q is in the part unless the part would then end (at the
		// next sample's decode time, or the end of q) past the target.
		if q >= settled {
			break
		}
		var end int64
		switch {
		case q+1 < settled:
			end = samples[idx[q+1]].DTS
		case q+1 == n && complete:
			end = samples[idx[q]].DTS + samples[idx[q]].Dur
		default:
			return parts
		}
		if end-samples[idx[a]].DTS > targetNS {
			emit(a, q, samples[idx[q]].DTS)
			a = q
		}
	}
	return parts
}
