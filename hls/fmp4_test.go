package hls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/fragtest"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// fmNeedTool returns the path of a command line tool, skipping the test if it
// is missing (failing it if KVSGATE_REQUIRE_TOOLS=1).
func fmNeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("KVSGATE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is required (make test installs it): %v", name, err)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// The producer start of the RELATIVE ingests, as in the captures.
const fmStart = 1795289339636e6

// fmIngest ingests a Matroska file into a new store, as one PutMedia body
// (RELATIVE to fmStart, or ABSOLUTE), and returns its fragments as segments
// whose payloads read from the store's files.
func fmIngest(t testing.TB, file string, relative bool) []*Segment {
	t.Helper()
	s, st := fmStore(t)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := fragments.PutOptions{Relative: relative, ProducerStart: fmStart, HasProducerStart: relative, Abort: func() {}}
	if err := s.Put(context.Background(), st, opts, bytes.NewReader(data), func(fragments.Ack) error { return nil }); err != nil {
		t.Fatal(err)
	}
	frags, err := s.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) == 0 {
		t.Fatalf("%s: no fragments", file)
	}
	var segs []*Segment
	for i := range frags {
		f := &frags[i]
		m, err := s.Index.Meta(st.ID, f.Ordinal)
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.Index.Header(f.HeaderID)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.OpenFragment(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		segs = append(segs, &Segment{Header: h, Meta: m, Payload: r, Size: f.Size, BaseNS: f.ProducerNS, Sequence: f.Ordinal})
	}
	return segs
}

// fmStore opens a new store (closed when the test ends) with one stream.
func fmStore(t testing.TB) (*fragments.Store, *fragments.Stream) {
	t.Helper()
	return fragtest.NewStore(t, "hls", 1)
}

// fmWrite writes the init segment of a track and the media segments of
// every fragment, concatenated.
func fmWrite(t testing.TB, segs []*Segment, track int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteMP4Init(&b, segs[0].Header, track); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if err := WriteMP4Media(&b, s, track); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// fmUnits is the reference conversion of ns to timescale units (exact
// rational arithmetic, rounding half up).
func fmUnits(ns int64, ts uint32) int64 {
	r := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(ns), big.NewInt(int64(ts))), big.NewInt(1e9))
	r.Add(r, big.NewRat(1, 2))
	q := new(big.Int).Div(r.Num(), r.Denom()) // Euclidean: floor for a positive denominator
	return q.Int64()
}

// fmCheck decodes an init+media file with mp4ff and checks it against the
// segments: track ID, timescale, sample entry, sequence numbers, tfdt
// contiguity, every sample's bytes, decode and presentation time and sync
// flag.
func fmCheck(t *testing.T, file []byte, segs []*Segment, track int) {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("mp4ff cannot decode the output: %v", err)
	}
	if f.Init == nil || f.Moov == nil || len(f.Moov.Traks) != 1 {
		t.Fatal("no init segment with one track")
	}
	if f.Ftyp.MajorBrand() != "iso6" {
		t.Errorf("major brand %q", f.Ftyp.MajorBrand())
	}
	trak, h := f.Moov.Trak, segs[0].Header
	tr := &h.Tracks[track]
	id := uint32(track + 1)
	if trak.Tkhd.TrackID != id || f.Moov.Mvex == nil || f.Moov.Mvex.Trex == nil || f.Moov.Mvex.Trex.TrackID != id || f.Moov.Mvhd.NextTrackID != id+1 {
		t.Fatalf("track IDs: tkhd %d, trex %+v, next %d; want %d", trak.Tkhd.TrackID, f.Moov.Mvex.Trex, f.Moov.Mvhd.NextTrackID, id)
	}
	ts := trak.Mdia.Mdhd.Timescale
	stsd := trak.Mdia.Minf.Stbl.Stsd
	switch tr.CodecID {
	case "A_AAC":
		if ts != uint32(tr.SamplingFreq) || stsd.Mp4a == nil || stsd.Mp4a.Esds == nil ||
			!bytes.Equal(stsd.Mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig, tr.CodecPrivate) {
			t.Fatalf("audio: timescale %d (want %v), entry %+v", ts, tr.SamplingFreq, stsd.Mp4a)
		}
		if stsd.Mp4a.ChannelCount != 2 || stsd.Mp4a.SampleRate != 48000 {
			t.Fatalf("audio: %d channels at %d Hz, want stereo at 48 kHz", stsd.Mp4a.ChannelCount, stsd.Mp4a.SampleRate)
		}
	default:
		var cfg []byte
		var buf bytes.Buffer
		switch {
		case stsd.AvcX != nil && stsd.AvcX.Type() == "avc1" && stsd.AvcX.AvcC != nil:
			stsd.AvcX.AvcC.Encode(&buf)
		case stsd.HvcX != nil && stsd.HvcX.Type() == "hvc1" && stsd.HvcX.HvcC != nil:
			stsd.HvcX.HvcC.Encode(&buf)
		default:
			t.Fatalf("no avc1/hvc1 sample entry: %+v", stsd.Children)
		}
		cfg = buf.Bytes()[8:]
		want := tr.CodecPrivate
		if stsd.HvcX != nil {
			// The parameter set arrays are marked complete, and only they.
			want = slices.Clone(want)
			pos := 23
			for _, a := range stsd.HvcX.HvcC.NaluArrays {
				ps := a.NaluType() == hevc.NALU_VPS || a.NaluType() == hevc.NALU_SPS || a.NaluType() == hevc.NALU_PPS
				if (a.Complete() == 1) != ps {
					t.Errorf("hvcC array of %s: complete %d", a.NaluType(), a.Complete())
				}
				if want[pos]&0x80 != 0 {
					t.Errorf("the source's hvcC array of %s is complete already: nothing is tested", a.NaluType())
				}
				if ps {
					want[pos] |= 0x80
				}
				pos += 3
				for _, n := range a.Nalus {
					pos += 2 + len(n)
				}
			}
		}
		if ts != 90000 || !bytes.Equal(cfg, want) {
			t.Fatalf("video: timescale %d, config % x, want % x", ts, cfg, want)
		}
	}

	var frags []*mp4.Fragment
	for _, s := range f.Segments {
		frags = append(frags, s.Fragments...)
	}
	if len(frags) != len(segs) {
		t.Fatalf("%d fragments, want %d", len(frags), len(segs))
	}
	var next uint64
	var srcEnd int64
	contiguous := 0
	for k, fr := range frags {
		seg := segs[k]
		if fr.Moof.Mfhd.SequenceNumber != uint32(seg.Sequence) || fr.Moof.Traf.Tfhd.TrackID != id {
			t.Fatalf("fragment %d: sequence %d track %d", k, fr.Moof.Mfhd.SequenceNumber, fr.Moof.Traf.Tfhd.TrackID)
		}
		tfdt := fr.Moof.Traf.Tfdt.BaseMediaDecodeTime()
		if k > 0 {
			// Where the source is contiguous (the previous fragment's last
			// DTS + Dur is this one's first DTS) so is the output. Audio
			// with timecodes in whole ms is not quite, nor is the output:
			// its gap is the source's.
			start := seg.BaseNS + firstDTS(seg, track)
			switch {
			case start == srcEnd && tfdt != next:
				t.Fatalf("fragment %d: tfdt %d, the previous one ends at %d", k, tfdt, next)
			case start == srcEnd:
				contiguous++
			case tr.CodecID != "A_AAC":
				t.Fatalf("fragment %d: the source video is not contiguous: starts at %d ns, the previous one ends at %d", k, start, srcEnd)
			case int64(tfdt)-int64(next) != fmUnits(start, ts)-fmUnits(srcEnd, ts):
				t.Fatalf("fragment %d: tfdt %d, the previous one ends at %d: not the source's gap of %d ns", k, tfdt, next, start-srcEnd)
			}
		}
		got, err := fr.GetFullSamples(f.Moov.Mvex.Trex)
		if err != nil {
			t.Fatal(err)
		}
		var want []fragments.Sample
		for _, sm := range seg.Meta.Samples {
			if int(sm.Track) == track {
				want = append(want, sm)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("fragment %d: %d samples, want %d", k, len(got), len(want))
		}
		next = tfdt
		for i, g := range got {
			w := want[i]
			data := make([]byte, w.Size)
			if _, err := seg.Payload.ReadAt(data, w.Offset); err != nil {
				t.Fatal(err)
			}
			dt, pt := fmUnits(seg.BaseNS+w.DTS, ts), fmUnits(seg.BaseNS+w.PTS, ts)
			if !bytes.Equal(g.Data, data) || int64(g.DecodeTime) != dt || g.PresentationTime() != pt ||
				g.IsSync() != (w.Key || tr.CodecID == "A_AAC") {
				t.Fatalf("fragment %d sample %d: %d bytes, decode %d, presentation %d, sync %v; want %d bytes, %d, %d, key %v",
					k, i, len(g.Data), g.DecodeTime, g.PresentationTime(), g.IsSync(), len(data), dt, pt, w.Key)
			}
			next += uint64(g.Dur)
		}
		last := want[len(want)-1]
		srcEnd = seg.BaseNS + last.DTS + last.Dur
		if next != uint64(fmUnits(srcEnd, ts)) {
			t.Fatalf("fragment %d ends at %d, want %d", k, next, fmUnits(srcEnd, ts))
		}
	}
	if tr.CodecID != "A_AAC" && contiguous != len(frags)-1 {
		t.Fatalf("%d of %d fragment boundaries contiguous", contiguous, len(frags)-1)
	}
}

// fmMedia are the test files: which to ingest RELATIVE, and their tracks.
var fmMedia = []struct {
	file     string
	relative bool
	tracks   int
}{
	{cdDemoClip, true, 2},
	{cdCapAV, true, 2},
	{cdCapVideo, false, 1},
	{cdHEVCClip, true, 1},
}

func TestFMP4Structure(t *testing.T) {
	for _, m := range fmMedia {
		segs := fmIngest(t, m.file, m.relative)
		for track := range m.tracks {
			t.Run(fmt.Sprintf("%s/%d", filepath.Base(m.file), track), func(t *testing.T) {
				fmCheck(t, fmWrite(t, segs, track), segs, track)
			})
		}
	}
}

// fmProbe is what ffprobe says of one frame or packet.
type fmProbe struct {
	pts, dts int64 // ns
	key      bool
}

// fmSeconds parses ffprobe's decimal seconds exactly.
func fmSeconds(t testing.TB, s string) int64 {
	t.Helper()
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(s, ".")
	fp = (fp + "000000000")[:9]
	i, err1 := strconv.ParseInt(ip, 10, 64)
	f, err2 := strconv.ParseInt(fp, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("ffprobe time %q", s)
	}
	if neg {
		return -(i*1e9 + f)
	}
	return i*1e9 + f
}

// fmFFprobe lists a stream's decoded frames (what) "frame" or its packets
// "packet", in output order.
func fmFFprobe(t *testing.T, file string, stream int, what string) []fmProbe {
	t.Helper()
	args := []string{"-v", "error", "-select_streams", strconv.Itoa(stream), "-of", "compact=p=0"}
	if what == "frame" {
		args = append(args, "-show_frames", "-show_entries", "frame=pts_time,pkt_dts_time,key_frame")
	} else {
		args = append(args, "-show_packets", "-show_entries", "packet=pts_time,dts_time,flags")
	}
	out, err := exec.Command(fmNeedTool(t, "ffprobe"), append(args, file)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var res []fmProbe
	for _, line := range strings.Split(string(out), "\n") {
		kv := map[string]string{}
		for _, f := range strings.Split(strings.TrimSpace(line), "|") {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		if kv["pts_time"] == "" {
			continue // a blank line after side data
		}
		p := fmProbe{pts: fmSeconds(t, kv["pts_time"]), key: kv["key_frame"] == "1" || strings.HasPrefix(kv["flags"], "K")}
		if d := kv["dts_time"]; what == "packet" && d != "N/A" { // N/A in Matroska sources
			p.dts = fmSeconds(t, d)
		}
		res = append(res, p)
	}
	return res
}

// TestFMP4FFprobe writes every fragment of every track as init + media
// segments and checks with ffprobe that the frames and packets are the
// source's: as many, at the same presentation times (relative to the
// first), key where the source has key frames; and that ffmpeg decodes the
// file without an error.
func TestFMP4FFprobe(t *testing.T) {
	ffmpeg := fmNeedTool(t, "ffmpeg")
	fmNeedTool(t, "ffprobe")
	for _, m := range fmMedia {
		segs := fmIngest(t, m.file, m.relative)
		for track := range m.tracks {
			t.Run(fmt.Sprintf("%s/%d", filepath.Base(m.file), track), func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out.mp4")
				if err := os.WriteFile(out, fmWrite(t, segs, track), 0o644); err != nil {
					t.Fatal(err)
				}
				for _, what := range []string{"frame", "packet"} {
					src, got := fmFFprobe(t, m.file, track, what), fmFFprobe(t, out, 0, what)
					if len(got) != len(src) || len(src) == 0 {
						t.Fatalf("%d %ss, the source has %d", len(got), what, len(src))
					}
					keys := 0
					for i := range src {
						s, g := src[i], got[i]
						dPTS := (g.pts - got[0].pts) - (s.pts - src[0].pts)
						if dPTS < -1000 || dPTS > 1000 || g.key != s.key {
							t.Fatalf("%s %d: pts %d key %v, the source's %d %v (relative to the first: %d vs %d)",
								what, i, g.pts, g.key, s.pts, s.key, g.pts-got[0].pts, s.pts-src[0].pts)
						}
						if what == "packet" && i > 0 && g.dts <= got[i-1].dts {
							t.Fatalf("packet %d: dts %d not after %d", i, g.dts, got[i-1].dts)
						}
						if s.key {
							keys++
						}
					}
					if what == "packet" && track == 0 && keys != len(segs) {
						t.Errorf("%d key packets, want one per fragment (%d)", keys, len(segs))
					}
				}
				// The file starts where the first fragment's first frame
				// is decoded.
				if got := fmFFprobe(t, out, 0, "packet"); got[0].dts != segs[0].BaseNS+firstDTS(segs[0], track) {
					t.Errorf("first dts %d, want %d", got[0].dts, segs[0].BaseNS+firstDTS(segs[0], track))
				}
				cmd := exec.Command(ffmpeg, "-v", "error", "-i", out, "-f", "null", "-")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Run(); err != nil || stderr.Len() > 0 {
					t.Fatalf("ffmpeg decoding: %v %s", err, stderr.Bytes())
				}
			})
		}
	}
}

func firstDTS(s *Segment, track int) int64 {
	for _, sm := range s.Meta.Samples {
		if int(sm.Track) == track {
			return sm.DTS
		}
	}
	return 0
}

// fmSynth is a fragment of synthetic samples in a payload held in memory.
func fmSynth(base int64, seq int64, dts []int64, dur int64, track uint8) *Segment {
	var payload []byte
	m := &fragments.Meta{}
	for i, d := range dts {
		payload = append(payload, 0xAA, 0xBB) // bytes between samples, as Matroska block headers
		data := bytes.Repeat([]byte{byte(seq), byte(i)}, 10+i)
		m.Samples = append(m.Samples, fragments.Sample{Track: track, Key: i == 0, PTS: d, DTS: d, Dur: dur, Offset: int64(len(payload)), Size: int64(len(data))})
		payload = append(payload, data...)
	}
	return &Segment{Meta: m, Payload: bytes.NewReader(payload), Size: int64(len(payload)), BaseNS: base, Sequence: seq}
}

// TestFMP4NoDrift writes an hour of 29.97 fps video and 44.1 kHz AAC in
// fragments of odd lengths at an odd base time: every fragment starts
// exactly where the previous one ended, at the exact conversion of its
// absolute decode time.
func TestFMP4NoDrift(t *testing.T) {
	h := cdHeader(t, cdDemoClip)
	h.Tracks[1].SamplingFreq = 44100
	h.Tracks[1].CodecPrivate = []byte{0x12, 0x10}
	const base = 1795289339636123457
	for track, frameNS := range []float64{1001e6 / 30, 1024e9 / 44100} {
		var segs []*Segment
		n := 0 // frames so far
		for k := 0; n < int(3600e9/frameNS); k++ {
			count := 20 + k%17
			start := int64(float64(n) * frameNS)
			var dts []int64
			for i := range count {
				dts = append(dts, int64(float64(n+i)*frameNS)-start)
			}
			s := fmSynth(base+start, int64(k+1), dts, int64(float64(n+count)*frameNS)-start-dts[count-1], uint8(track))
			s.Header = h
			segs = append(segs, s)
			n += count
		}
		ts := []uint32{90000, 44100}[track]
		var next uint64
		for k, s := range segs {
			var b bytes.Buffer
			if err := WriteMP4Media(&b, s, track); err != nil {
				t.Fatal(err)
			}
			f, err := mp4.DecodeFile(&b)
			if err != nil {
				t.Fatal(err)
			}
			traf := f.Segments[0].Fragments[0].Moof.Traf
			tfdt := traf.Tfdt.BaseMediaDecodeTime()
			if want := uint64(fmUnits(s.BaseNS+s.Meta.Samples[0].DTS, ts)); tfdt != want || (k > 0 && tfdt != next) {
				t.Fatalf("track %d fragment %d: tfdt %d, want %d (previous ends at %d)", track, k, tfdt, want, next)
			}
			next = tfdt + traf.Trun.Duration(0)
		}
		if len(segs) < 1000 {
			t.Fatalf("only %d fragments", len(segs))
		}
	}
}

func TestTimescaleConversion(t *testing.T) {
	for _, ns := range []int64{0, 1, 499999, 500000, 11111, 1e9 - 1, 1795289339636123457, 1<<63 - 1, -1, -11111, -1e9 - 1, -1 << 63} {
		for _, ts := range []uint32{1, 1000, 44100, 48000, 90000, 1<<32 - 1} {
			if ns == -1<<63 || ns == 1<<63-1 {
				if ts > 1 { // out of int64 range
					continue
				}
			}
			if got, want := nsToTimescale(ns, ts), fmUnits(ns, ts); got != want {
				t.Errorf("%d ns at %d/s: %d, want %d", ns, ts, got, want)
			}
		}
	}
}

// fmErrReader fails every read.
type fmErrReader struct{}

func (fmErrReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestWriteMP4MediaRefuses(t *testing.T) {
	h := cdHeader(t, cdDemoClip)
	good := func() *Segment {
		s := fmSynth(fmStart, 7, []int64{-80e6, -40e6, 0, 40e6}, 40e6, 0)
		s.Header = h
		return s
	}
	var b bytes.Buffer
	if err := WriteMP4Media(&b, good(), 0); err != nil || b.Len() == 0 {
		t.Fatalf("the good segment: %v", err)
	}
	for _, tc := range []struct {
		name  string
		track int
		edit  func(s *Segment)
		want  string
	}{
		{"track out of range", 2, nil, "out of range"},
		{"negative track", -1, nil, "out of range"},
		{"no samples of the track", 1, nil, "no samples"},
		{"no meta", 0, func(s *Segment) { s.Meta = nil }, "without samples"},
		{"nil header", 0, func(s *Segment) { s.Header = nil }, "out of range"},
		{"unsupported codec", 0, func(s *Segment) {
			s.Header = &fragments.Header{Tracks: []mkv.Track{{CodecID: "V_VP8"}}}
		}, "unsupported"},
		{"sample past the payload", 0, func(s *Segment) { s.Meta.Samples[3].Offset = s.Size - 1 }, "outside"},
		{"payload shorter than said", 0, func(s *Segment) { s.Size += 100; s.Meta.Samples[3].Offset = s.Size - 50 }, "unexpected EOF"},
		{"negative offset", 0, func(s *Segment) { s.Meta.Samples[0].Offset = -1 }, "outside"},
		{"decode times not increasing", 0, func(s *Segment) { s.Meta.Samples[2].DTS = s.Meta.Samples[1].DTS }, "not after"},
		{"decode time before 0", 0, func(s *Segment) { s.BaseNS = 50e6 }, "before 0"},
		{"composition offset too large", 0, func(s *Segment) { s.Meta.Samples[1].PTS = 1e15 }, "out of range"},
		{"read error", 0, func(s *Segment) { s.Payload = fmErrReader{} }, "disk on fire"},
	} {
		s := good()
		if tc.edit != nil {
			tc.edit(s)
		}
		var b bytes.Buffer
		err := WriteMP4Media(&b, s, tc.track)
		if err == nil || !strings.Contains(err.Error(), tc.want) || b.Len() != 0 {
			t.Errorf("%s: %v (%d bytes written), want an error about %q and nothing written", tc.name, err, b.Len(), tc.want)
		}
	}
	if err := WriteMP4Init(io.Discard, h, 2); err == nil {
		t.Error("WriteMP4Init of track 2 of 2: no error")
	}
	if err := WriteMP4Init(io.Discard, &fragments.Header{Tracks: []mkv.Track{{CodecID: "A_AAC"}}}, 0); !errors.Is(err, ErrMissingCodecPrivate) {
		t.Errorf("WriteMP4Init without ASC: %v", err)
	}
}

// TestWriteMP4MediaSampleOrder checks that samples adjacent in the
// payload (written in one piece) and in an order other than the payload's
// come out right.
func TestWriteMP4MediaSampleOrder(t *testing.T) {
	h := cdHeader(t, cdDemoClip)
	payload := []byte("0123456789abcdefghij")
	s := &Segment{Header: h, Payload: bytes.NewReader(payload), Size: int64(len(payload)), BaseNS: fmStart, Sequence: 3, Meta: &fragments.Meta{Samples: []fragments.Sample{
		{Track: 0, Key: true, DTS: 0, PTS: 0, Dur: 40e6, Offset: 10, Size: 3}, // abc
		{Track: 0, DTS: 40e6, PTS: 40e6, Dur: 40e6, Offset: 13, Size: 2},      // de, adjacent
		{Track: 1, DTS: 40e6, PTS: 40e6, Dur: 20e6, Offset: 15, Size: 1},      // f, other track
		{Track: 0, DTS: 80e6, PTS: 80e6, Dur: 40e6, Offset: 2, Size: 4},       // 2345, before
		{Track: 0, DTS: 120e6, PTS: 120e6, Dur: 40e6, Offset: 6, Size: 4},     // 6789, adjacent
		{Track: 0, DTS: 160e6, PTS: 160e6, Dur: 40e6, Offset: 16, Size: 4},    // ghij, after f
		{Track: 0, DTS: 200e6, PTS: 200e6, Dur: 40e6, Offset: 16, Size: 0},    // empty
		{Track: 0, DTS: 240e6, PTS: 240e6, Dur: 40e6, Offset: 19, Size: 1},    // j again
	}}}
	var b bytes.Buffer
	if err := WriteMP4Media(&b, s, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("mdat"+"abcde23456789ghijj")) {
		t.Fatalf("mdat: %q", b.Bytes()[bytes.LastIndex(b.Bytes(), []byte("mdat")):])
	}
}

// fmBenchSegment writes a 1 s 1080p-sized fragment to a file: 25 frames
// (a 150 kB key frame, then 36 to 44 kB) with 8-byte block headers between
// them, in decode order with B-frame timing.
func fmBenchSegment(b *testing.B) (*Segment, int64) {
	b.Helper()
	h := cdHeader(b, cdDemoClip)
	f, err := os.Create(filepath.Join(b.TempDir(), "payload"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	var payload []byte
	m := &fragments.Meta{}
	for i := range 25 {
		payload = append(payload, 0xa3, 0x41, 0, 0, 0x81, 0, 0, 0x80) // a SimpleBlock header
		size := 36<<10 + (i*7919)%(8<<10)
		if i == 0 {
			size = 150 << 10
		}
		pts := int64(i) * 40e6
		if i%3 == 1 {
			pts += 80e6 // P before the two B-frames it anchors
		} else if i > 0 {
			pts -= 40e6
		}
		m.Samples = append(m.Samples, fragments.Sample{Key: i == 0, PTS: pts, DTS: int64(i-2) * 40e6, Dur: 40e6, Offset: int64(len(payload)), Size: int64(size)})
		payload = append(payload, bytes.Repeat([]byte{byte(i)}, size)...)
	}
	if _, err := f.Write(payload); err != nil {
		b.Fatal(err)
	}
	return &Segment{Header: h, Meta: m, Payload: f, Size: int64(len(payload)), BaseNS: fmStart, Sequence: 1}, int64(len(payload))
}

// BenchmarkWriteMP4Media packages a 1 s 1080p-sized fragment stored in a
// file; compare with BenchmarkPlainRead, which only copies its bytes.
func BenchmarkWriteMP4Media(b *testing.B) {
	s, n := fmBenchSegment(b)
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteMP4Media(io.Discard, s, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlainRead(b *testing.B) {
	s, n := fmBenchSegment(b)
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.Copy(io.Discard, io.NewSectionReader(s.Payload, 0, n)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWriteMP4InitAudio checks the audio timescale and sample entry of an
// AAC-only stream: the track's sampling rate, else the ASC's.
func TestWriteMP4InitAudio(t *testing.T) {
	for _, tc := range []struct {
		freq     float64
		asc      []byte
		channels uint64
		ts       uint32
		ch       uint16
	}{
		{48000, []byte{0x11, 0x90}, 2, 48000, 2},
		{0, []byte{0x12, 0x08}, 0, 44100, 1},             // mono 44.1 kHz, rate from the ASC
		{22050.5, []byte{0x13, 0x88}, 0, 22050, 1},       // a fractional rate is not a timescale
		{0, []byte{0x11, 0x80, 0x56, 0xe5}, 6, 48000, 6}, // channel configuration 0: the track's count
		{0, []byte{0x11, 0xb8}, 0, 48000, 8},             // configuration 7 is 7.1
	} {
		h := &fragments.Header{Tracks: []mkv.Track{{Number: 1, CodecID: "A_AAC", CodecPrivate: tc.asc, SamplingFreq: tc.freq, Channels: tc.channels}}}
		var b bytes.Buffer
		if err := WriteMP4Init(&b, h, 0); err != nil {
			t.Fatal(err)
		}
		f, err := mp4.DecodeFile(&b)
		if err != nil {
			t.Fatal(err)
		}
		trak := f.Moov.Trak
		mp4a := trak.Mdia.Minf.Stbl.Stsd.Mp4a
		if trak.Mdia.Mdhd.Timescale != tc.ts || trak.Mdia.Hdlr.HandlerType != "soun" || mp4a == nil || mp4a.ChannelCount != tc.ch ||
			!bytes.Equal(mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig, tc.asc) {
			t.Errorf("ASC % x at %v Hz: timescale %d, handler %s, entry %+v", tc.asc, tc.freq, trak.Mdia.Mdhd.Timescale, trak.Mdia.Hdlr.HandlerType, mp4a)
		}
	}
}
