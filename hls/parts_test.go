package hls

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

const partTarget = int64(250 * time.Millisecond)

// demoClip is the demo stream's clip: H.264 with B-frames (reordered by
// up to two frames), AAC, 1 s clusters.
var demoClip = filepath.Join("..", "cmd", "kvsgate", "demo", "sample.mkv")

// trackSamples returns the indices of track's samples.
func trackSamples(samples []fragments.Sample, track int) []int {
	var idx []int
	for i := range samples {
		if int(samples[i].Track) == track {
			idx = append(idx, i)
		}
	}
	return idx
}

// TestPartsCutting checks the parts of every fragment of the demo clip
// (video with B-frames, AAC) and a synthetic track: contiguous decode-order
// ranges covering every sample once, at most the target (a part of one
// long frame excepted), at least the target less a frame interval but the
// last, INDEPENDENT on key frames and on every audio part.
func TestPartsCutting(t *testing.T) {
	segs := fmIngest(t, demoClip, true)
	for _, s := range segs {
		for track := range s.Header.Tracks {
			idx := trackSamples(s.Meta.Samples, track)
			parts := Parts(s.Header, s.Meta.Samples, track, partTarget, 0, true)
			if len(parts) < 4 {
				t.Fatalf("fragment %d track %d: %d parts of a 1 s fragment", s.Sequence, track, len(parts))
			}
			var covered []int
			var gap int64 // the longest decode interval of the track
			for q := 1; q < len(idx); q++ {
				gap = max(gap, s.Meta.Samples[idx[q]].DTS-s.Meta.Samples[idx[q-1]].DTS)
			}
			for k, p := range parts {
				in := trackSamples(s.Meta.Samples[p.From:p.To], track)
				for _, i := range in {
					covered = append(covered, p.From+i)
				}
				first := &s.Meta.Samples[p.From]
				if int(first.Track) != track || p.StartNS != first.DTS {
					t.Fatalf("fragment %d track %d part %d starts at sample %d (track %d, dts %d), StartNS %d", s.Sequence, track, k, p.From, first.Track, first.DTS, p.StartNS)
				}
				if p.DurationNS > partTarget && len(in) > 1 {
					t.Errorf("fragment %d track %d part %d lasts %d ns, over the target", s.Sequence, track, k, p.DurationNS)
				}
				if k < len(parts)-1 && p.DurationNS < partTarget-gap {
					t.Errorf("fragment %d track %d part %d lasts %d ns: not full", s.Sequence, track, k, p.DurationNS)
				}
				if k > 0 && p.StartNS != parts[k-1].StartNS+parts[k-1].DurationNS {
					t.Errorf("fragment %d track %d part %d starts at %d, the previous ends at %d", s.Sequence, track, k, p.StartNS, parts[k-1].StartNS+parts[k-1].DurationNS)
				}
				if want := first.Key || track == 1; p.Independent != want {
					t.Errorf("fragment %d track %d part %d: INDEPENDENT %v, want %v", s.Sequence, track, k, p.Independent, want)
				}
			}
			if !slices.Equal(covered, idx) {
				t.Fatalf("fragment %d track %d: parts cover samples %v, the track has %v", s.Sequence, track, covered, idx)
			}
		}
	}

	// A part of a fragment still arriving is returned only when the
	// sample after it and the one after that are settled.
	var samples []fragments.Sample
	for k := range 12 {
		samples = append(samples, fragments.Sample{Track: 0, Key: k == 0, PTS: int64(k) * 40e6, DTS: int64(k) * 40e6, Dur: 40e6, Size: 1})
	}
	h := &fragments.Header{Tracks: slices.Clone(hlsTestTracks)}
	for _, c := range []struct {
		settled, parts int
	}{{6, 0}, {7, 0}, {8, 1}, {12, 1}} {
		if got := Parts(h, samples, 0, partTarget, c.settled, false); len(got) != c.parts {
			t.Errorf("%d settled of 12: %d parts, want %d", c.settled, len(got), c.parts)
		}
	}
	if got := Parts(h, samples, 0, partTarget, 0, true); len(got) != 2 || got[0].To != 6 || got[1].DurationNS != 240e6 {
		t.Errorf("complete: %+v", got)
	}
}

// hlsTestTracks: an H.264 track (its parts are INDEPENDENT on key frames only).
var hlsTestTracks = []mkv.Track{{Number: 1, Type: 1, CodecID: "V_MPEG4/ISO/AVC"}}

// TestPartsConcatenate: the parts of a fragment, written one after the
// other, are its whole segment: mp4ff reads the same samples (decode
// time, duration, composition offset, flags, bytes) from both.
func TestPartsConcatenate(t *testing.T) {
	segs := fmIngest(t, demoClip, true)
	for _, s := range segs[:4] {
		for track := range s.Header.Tracks {
			var whole bytes.Buffer
			if err := WriteMP4Media(&whole, s, track); err != nil {
				t.Fatal(err)
			}
			want := fmSamples(t, s.Header, track, whole.Bytes())
			var got []mp4.FullSample
			for _, p := range Parts(s.Header, s.Meta.Samples, track, partTarget, 0, true) {
				ps := *s
				ps.Part = &p
				var b bytes.Buffer
				if err := WriteMP4Media(&b, &ps, track); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmSamples(t, s.Header, track, b.Bytes())...)
			}
			if len(got) != len(want) {
				t.Fatalf("fragment %d track %d: parts hold %d samples, the segment %d", s.Sequence, track, len(got), len(want))
			}
			for i := range want {
				w, g := want[i], got[i]
				if w.DecodeTime != g.DecodeTime || w.Dur != g.Dur || w.CompositionTimeOffset != g.CompositionTimeOffset ||
					w.Flags != g.Flags || !bytes.Equal(w.Data, g.Data) {
					t.Fatalf("fragment %d track %d sample %d: parts have dts %d dur %d cto %d flags %x (%d bytes), the segment dts %d dur %d cto %d flags %x (%d bytes)",
						s.Sequence, track, i, g.DecodeTime, g.Dur, g.CompositionTimeOffset, g.Flags, len(g.Data), w.DecodeTime, w.Dur, w.CompositionTimeOffset, w.Flags, len(w.Data))
				}
			}
		}
	}
}

// fmSamples decodes a media segment (after the track's init segment) with
// mp4ff and returns its samples.
func fmSamples(t *testing.T, h *fragments.Header, track int, media []byte) []mp4.FullSample {
	t.Helper()
	var b bytes.Buffer
	if err := WriteMP4Init(&b, h, track); err != nil {
		t.Fatal(err)
	}
	b.Write(media)
	f, err := mp4.DecodeFile(&b)
	if err != nil {
		t.Fatalf("mp4ff: %v", err)
	}
	var out []mp4.FullSample
	for _, seg := range f.Segments {
		for _, fr := range seg.Fragments {
			s, err := fr.GetFullSamples(f.Moov.Mvex.Trex)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s...)
		}
	}
	return out
}

// TestPartsInProgressAreFinal ingests the demo clip through a pipe, a few
// hundred bytes at a time, while a reader (from the middle of the first
// fragment on) takes snapshots of the fragment
// being received from the partial feed and cuts them into parts. Every
// part it sees complete must be, sample for sample and byte for byte, the
// part of the stored fragment: B-frames make decode times depend on later
// frames, and Settled must hold parts back until they cannot change.
func TestPartsInProgressAreFinal(t *testing.T) {
	s, st := fmStore(t)
	data, err := os.ReadFile(demoClip)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		opts := fragments.PutOptions{Relative: true, ProducerStart: fmStart, HasProducerStart: true, Abort: func() { pr.CloseWithError(io.ErrClosedPipe) }}
		done <- s.Put(context.Background(), st, opts, pr, func(fragments.Ack) error { return nil })
	}()

	type seen struct {
		number  uint64
		track   int
		k       int
		part    Part
		samples []fragments.Sample
		bytes   [][]byte
	}
	var all []seen
	look := func() {
		frags, _ := s.Partial(st.ID)
		for _, pf := range frags {
			snap, ok := pf.Snapshot()
			if !ok || snap.Complete {
				continue
			}
			for track := range snap.Header.Tracks {
				for k, p := range Parts(snap.Header, snap.Meta.Samples, track, partTarget, snap.Settled[track], false) {
					sv := seen{number: snap.Fragment.Number, track: track, k: k, part: p}
					for _, i := range trackSamples(snap.Meta.Samples[p.From:p.To], track) {
						sm := snap.Meta.Samples[p.From+i]
						sv.samples = append(sv.samples, sm)
						sv.bytes = append(sv.bytes, snap.Payload[sm.Offset:sm.Offset+sm.Size])
					}
					all = append(all, sv)
				}
			}
		}
	}
	for off := 0; off < len(data); off += 300 {
		if off == 30000 {
			// A reader comes in the middle of the first fragment: it is
			// published from there on, with the bytes so far read back.
			s.WantPartial(st.ID, time.Now())
		}
		if _, err := pw.Write(data[off:min(off+300, len(data))]); err != nil {
			t.Fatal(err)
		}
		look()
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(all) < 50 {
		t.Fatalf("only %d parts seen in progress", len(all))
	}
	checked := map[[3]uint64]bool{}
	for _, sv := range all {
		f, err := s.Index.FragmentByNumber(st.ID, sv.number)
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Index.Meta(st.ID, f.Ordinal)
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.Index.Header(f.HeaderID)
		if err != nil {
			t.Fatal(err)
		}
		final := Parts(h, m.Samples, sv.track, partTarget, 0, true)
		if sv.k >= len(final) || final[sv.k] != sv.part {
			t.Errorf("fragment %d track %d part %d in progress %+v, stored %+v", f.Ordinal, sv.track, sv.k, sv.part, final[min(sv.k, len(final)-1)])
			continue
		}
		r, err := s.OpenFragment(f)
		if err != nil {
			t.Fatal(err)
		}
		for q, i := range trackSamples(m.Samples[sv.part.From:sv.part.To], sv.track) {
			sm := m.Samples[sv.part.From+i]
			if sm != sv.samples[q] {
				r.Close()
				t.Fatalf("fragment %d track %d part %d sample %d in progress %+v, stored %+v", f.Ordinal, sv.track, sv.k, q, sv.samples[q], sm)
			}
			b := make([]byte, sm.Size)
			r.ReadAt(b, sm.Offset)
			if !bytes.Equal(b, sv.bytes[q]) {
				r.Close()
				t.Fatalf("fragment %d track %d part %d sample %d: bytes differ", f.Ordinal, sv.track, sv.k, q)
			}
		}
		r.Close()
		checked[[3]uint64{sv.number, uint64(sv.track), uint64(sv.k)}] = true
	}
	t.Logf("%d snapshots' parts checked, %d distinct parts", len(all), len(checked))
	first, err := s.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, Limit: 1})
	if err != nil || len(first) == 0 || !checked[[3]uint64{first[0].Number, 0, 2}] {
		t.Fatalf("no part of the first fragment (published mid-way) seen in progress: %v", err)
	}
	if frags, _ := s.Partial(st.ID); len(frags) != 0 {
		t.Fatalf("%d fragments left in the partial feed after the ingest", len(frags))
	}
}
