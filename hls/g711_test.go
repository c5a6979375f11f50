package hls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// g7ALawClip is H.264 with G.711 A-law in the form ffmpeg's Matroska muxer
// writes it, which is the KVS one (A_MS/ACM, an 18-byte WAVEFORMATEX;
// 1024-sample blocks), made with
//
//	ffmpeg -f lavfi -i testsrc2=size=160x120:rate=25 -f lavfi -i sine=f=440:sample_rate=8000 -t 3 \
//	  -c:v libx264 -preset veryfast -crf 35 -g 25 -pix_fmt yuv420p -c:a pcm_alaw -ac 1 -fflags +bitexact g711a.mkv
const g7ALawClip = "testdata/g711a.mkv"

// cdWaveFormat builds an 18-byte WAVEFORMATEX (little-endian). cbSize is
// written as given and no extra bytes follow it.
func cdWaveFormat(tag, channels uint16, rate, byteRate uint32, blockAlign, bits, cbSize uint16) []byte {
	b := binary.LittleEndian.AppendUint16(nil, tag)
	b = binary.LittleEndian.AppendUint16(b, channels)
	b = binary.LittleEndian.AppendUint32(b, rate)
	b = binary.LittleEndian.AppendUint32(b, byteRate)
	b = binary.LittleEndian.AppendUint16(b, blockAlign)
	b = binary.LittleEndian.AppendUint16(b, bits)
	return binary.LittleEndian.AppendUint16(b, cbSize)
}

func TestDescribeG711(t *testing.T) {
	avcC := cdHeader(t, cdDemoClip).Tracks[0].CodecPrivate
	for _, tc := range []struct {
		name  string
		cpd   []byte
		codec string
		rate  int
		ch    int
		freq  float64 // the Matroska SamplingFrequency: the WAVEFORMATEX's counts
	}{
		{"alaw", cdWaveFormat(6, 1, 8000, 8000, 1, 8, 0), "alaw", 8000, 1, 8000},
		{"ulaw stereo", cdWaveFormat(7, 2, 16000, 32000, 2, 8, 0), "ulaw", 16000, 2, 44100},
		{"alaw KVS SDK", cdWaveFormat(6, 1, 8000, 1000, 1, 0, 0), "alaw", 8000, 1, 0},
	} {
		h := &fragments.Header{Tracks: []mkv.Track{
			{Number: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: avcC},
			{Number: 2, CodecID: "A_MS/ACM", CodecPrivate: tc.cpd, SamplingFreq: tc.freq},
		}}
		si, err := Describe(h, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(si.Codecs, []string{"avc1.4d401e", tc.codec}) || si.AudioSampleRate != tc.rate || si.AudioChannels != tc.ch || si.Width != 640 {
			t.Errorf("%s: %+v, want codecs avc1.4d401e,%s, %d Hz, %d channels", tc.name, si, tc.codec, tc.rate, tc.ch)
		}
	}
	// AAC: the same rate and channels as its sample entry; no audio: 0.
	for _, tc := range []struct {
		file     string
		rate, ch int
	}{{cdDemoClip, 48000, 2}, {cdCapAV, 48000, 2}, {cdCapVideo, 0, 0}, {g7ALawClip, 8000, 1}} {
		si, err := Describe(cdHeader(t, tc.file), nil)
		if err != nil || si.AudioSampleRate != tc.rate || si.AudioChannels != tc.ch {
			t.Errorf("%s: %+v %v, want %d Hz, %d channels", tc.file, si, err, tc.rate, tc.ch)
		}
	}
	// Describe does not judge layouts: G.711 alone is described.
	h := &fragments.Header{Tracks: []mkv.Track{{Number: 1, CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(7, 1, 8000, 8000, 1, 8, 0)}}}
	if si, err := Describe(h, nil); err != nil || !slices.Equal(si.Codecs, []string{"ulaw"}) || si.Width != 0 || si.FrameRate != 0 {
		t.Errorf("ulaw alone: %+v %v", si, err)
	}
	// The real clip passes DASH, and only DASH.
	ha := cdHeader(t, g7ALawClip)
	for c, want := range map[Container]error{FMP4: ErrUnsupportedMedia, MPEGTS: ErrUnsupportedMedia, DASHFMP4: nil} {
		if err := CheckTracks(ha, c); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("%s, %s: %v, want %v", g7ALawClip, containerName(c), err, want)
		}
	}
	if err := CheckTracks(ha, Container(99)); !errors.Is(err, ErrUnsupportedMedia) {
		t.Errorf("unknown container: %v", err)
	}
}

// g7Entry returns the raw sample entry box of an init segment's stsd.
func g7Entry(t *testing.T, init []byte, entry string) []byte {
	t.Helper()
	i := bytes.Index(init, []byte("stsd"))
	if i < 0 {
		t.Fatal("no stsd")
	}
	// stsd: size, type, version/flags, entry_count, then the entry.
	if n := binary.BigEndian.Uint32(init[i+8:]); n != 1 {
		t.Fatalf("%d sample entries", n)
	}
	e := init[i+12:]
	size := binary.BigEndian.Uint32(e)
	if string(e[4:8]) != entry || int(size) > len(e) {
		t.Fatalf("sample entry %q of %d bytes, want %s", e[4:8], size, entry)
	}
	return e[:size]
}

// TestWriteMP4InitG711 checks the init segment of a G.711 track: an
// ISO/IEC 14496-12 AudioSampleEntry alaw or ulaw with the WAVEFORMATEX's
// channels and rate, which is also the timescale, and no CMAF brand.
func TestWriteMP4InitG711(t *testing.T) {
	for _, tc := range []struct {
		cpd      []byte
		freq     float64 // Matroska SamplingFrequency: not what counts
		entry    string
		rate     uint32
		channels uint16
	}{
		{cdWaveFormat(6, 1, 8000, 8000, 1, 8, 0), 8000, "alaw", 8000, 1},
		{cdWaveFormat(7, 1, 8000, 8000, 1, 8, 0), 0, "ulaw", 8000, 1},
		{cdWaveFormat(7, 2, 16000, 4000, 2, 0, 0), 8000, "ulaw", 16000, 2}, // KVS producer SDK form
		{cdWaveFormat(6, 2, 44100, 88200, 2, 8, 0)[:16], 0, "alaw", 44100, 2},
		{cdWaveFormat(6, 1, 96000, 96000, 1, 8, 0), 96000, "alaw", 96000, 1}, // too fast for the entry's 16.16 rate
	} {
		name := fmt.Sprintf("%s %d Hz %d ch", tc.entry, tc.rate, tc.channels)
		h := &fragments.Header{Tracks: []mkv.Track{
			{Number: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: cdHeader(t, cdDemoClip).Tracks[0].CodecPrivate},
			{Number: 2, CodecID: "A_MS/ACM", CodecPrivate: tc.cpd, SamplingFreq: tc.freq},
		}}
		var b bytes.Buffer
		if err := WriteMP4Init(&b, h, 1); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := mp4.DecodeFile(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if slices.Contains(f.Ftyp.CompatibleBrands(), "cmfc") || f.Ftyp.MajorBrand() != "iso6" {
			t.Errorf("%s: brands %s %v", name, f.Ftyp.MajorBrand(), f.Ftyp.CompatibleBrands())
		}
		trak := f.Moov.Trak
		if trak.Tkhd.TrackID != 2 || trak.Mdia.Mdhd.Timescale != tc.rate || trak.Mdia.Hdlr.HandlerType != "soun" || trak.Mdia.Minf.Smhd == nil {
			t.Errorf("%s: track %d, timescale %d, handler %s", name, trak.Tkhd.TrackID, trak.Mdia.Mdhd.Timescale, trak.Mdia.Hdlr.HandlerType)
		}
		// SampleEntry: 6 reserved bytes, data_reference_index 1;
		// AudioSampleEntry: 8 reserved bytes, channelcount, samplesize 16,
		// pre_defined, reserved, samplerate 16.16; no child box.
		want := []byte{0, 0, 0, 36}
		want = append(want, tc.entry...)
		want = append(want, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
		want = binary.BigEndian.AppendUint16(want, tc.channels)
		want = append(want, 0, 16, 0, 0, 0, 0)
		rate := tc.rate
		if rate > 0xffff {
			rate = 0
		}
		want = binary.BigEndian.AppendUint32(want, rate<<16)
		if got := g7Entry(t, b.Bytes(), tc.entry); !bytes.Equal(got, want) {
			t.Errorf("%s: sample entry\n% x, want\n% x", name, got, want)
		}
	}
	// What CheckTracks refuses, WriteMP4Init refuses the same way.
	for _, tc := range []struct {
		cpd  []byte
		want error
	}{
		{nil, ErrMissingCodecPrivate},
		{cdWaveFormat(6, 1, 8000, 8000, 1, 8, 0)[:12], ErrInvalidCodecPrivate},
		{cdWaveFormat(0x55, 2, 44100, 16000, 1, 0, 0), ErrUnsupportedMedia},
	} {
		h := &fragments.Header{Tracks: []mkv.Track{{Number: 1, CodecID: "A_MS/ACM", CodecPrivate: tc.cpd}}}
		if err := WriteMP4Init(io.Discard, h, 0); !errors.Is(err, tc.want) {
			t.Errorf("% x: %v, want %v", tc.cpd, err, tc.want)
		}
	}
}

// g7Synth writes a KVS-style PutMedia body (ABSOLUTE timecodes in ms) of
// one G.711 µ-law stereo 16 kHz track with the KVS producer SDK's
// WAVEFORMATEX: three 1 s clusters of 20 ms blocks (some of 7.5 ms), whose
// timecodes are the rounded time of their first sample plus a few ms of
// jitter, as a producer stamping blocks with a capture clock does. It
// returns the file and the number of audio samples (per channel).
func g7Synth(t *testing.T) (string, int) {
	t.Helper()
	const rate, ch = 16000, 2
	tr := mkv.Track{Number: 1, UID: 1, Type: 2, CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(7, ch, rate, ch*rate/8, ch, 0, 0), SamplingFreq: rate, Channels: ch}
	b := mkv.EBMLHeader()
	b = mkv.AppendUnknownSizeHeader(b, mkv.IDSegment)
	b = append(b, mkv.Info(1000000)...)
	b = append(b, mkv.Tracks([]mkv.Track{tr})...)
	const startMS = fmStart / 1e6
	jitter := []int64{0, 2, -1, 3, 0, -2, 1}
	pos, k := 0, 0 // samples so far, blocks so far
	for cluster := range 3 {
		clusterMS := int64(cluster) * 1000
		b = append(b, mkv.ClusterStart(uint64(startMS+clusterMS))...)
		for int64(pos)*1000/rate < clusterMS+1000 {
			n := 320
			if k%13 == 5 {
				n = 120
			}
			tc := (int64(pos)*1000+rate/2)/rate + jitter[k%len(jitter)]
			if k == 0 {
				tc = 0
			}
			frame := make([]byte, n*ch)
			for i := range frame {
				frame[i] = byte(k*31 + i*7)
			}
			b = append(b, mkv.SimpleBlock(1, int16(tc-clusterMS), true, frame)...)
			pos += n
			k++
		}
		b = append(b, mkv.Tags([]mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})...)
	}
	file := filepath.Join(t.TempDir(), "ulaw.mkv")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, pos
}

// g7Check decodes init + media segments of a G.711 track with mp4ff and
// checks them against the fragments: entry, timescale, one sync sample per
// Matroska block with its bytes, a duration of its size over the channel
// count, no composition offset, and each fragment's tfdt its first block's
// time. It returns the number of samples per channel.
func g7Check(t *testing.T, file []byte, segs []*Segment, track int, entry string, rate uint32, ch int) int {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	trak := f.Moov.Trak
	if trak.Mdia.Mdhd.Timescale != rate || len(trak.Mdia.Minf.Stbl.Stsd.Children) != 1 || trak.Mdia.Minf.Stbl.Stsd.Children[0].Type() != entry {
		t.Fatalf("timescale %d, entries %v; want %s at %d", trak.Mdia.Mdhd.Timescale, trak.Mdia.Minf.Stbl.Stsd.Children, entry, rate)
	}
	var frags []*mp4.Fragment
	for _, s := range f.Segments {
		frags = append(frags, s.Fragments...)
	}
	if len(frags) != len(segs) || len(segs) < 2 {
		t.Fatalf("%d fragments, want %d (at least 2)", len(frags), len(segs))
	}
	total := 0
	for k, fr := range frags {
		seg := segs[k]
		var want []fragments.Sample
		for _, sm := range seg.Meta.Samples {
			if int(sm.Track) == track {
				want = append(want, sm)
			}
		}
		if tfdt, w := fr.Moof.Traf.Tfdt.BaseMediaDecodeTime(), fmUnits(seg.BaseNS+want[0].DTS, rate); int64(tfdt) != w {
			t.Fatalf("fragment %d: tfdt %d, want %d", k, tfdt, w)
		}
		got, err := fr.GetFullSamples(f.Moov.Mvex.Trex)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("fragment %d: %d samples, want %d", k, len(got), len(want))
		}
		for i, g := range got {
			w := want[i]
			data := make([]byte, w.Size)
			if _, err := seg.Payload.ReadAt(data, w.Offset); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(g.Data, data) || int64(g.Dur) != w.Size/int64(ch) || g.CompositionTimeOffset != 0 || !g.IsSync() {
				t.Fatalf("fragment %d sample %d: %d bytes, duration %d, cto %d, sync %v; want %d bytes, duration %d",
					k, i, len(g.Data), g.Dur, g.CompositionTimeOffset, g.IsSync(), w.Size, w.Size/int64(ch))
			}
			total += int(g.Dur)
		}
	}
	return total
}

// g7Run runs a command and returns its stdout, failing on an error or
// anything on stderr.
func g7Run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(fmNeedTool(t, name), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("%s %s: %v %s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// g7Probe is what ffprobe says of an audio stream.
type g7Probe struct {
	codec          string
	rate, channels int
	packets        int
	samples        int // sum of the decoded frames' nb_samples
	firstPTS       int64
}

func g7FFprobe(t *testing.T, file string, stream int) g7Probe {
	t.Helper()
	sel := []string{"-v", "error", "-select_streams", strconv.Itoa(stream), "-of", "compact=p=0:nk=1"}
	var p g7Probe
	out := strings.TrimSpace(string(g7Run(t, "ffprobe", append(sel, "-show_entries", "stream=codec_name,sample_rate,channels", file)...)))
	fs := strings.Split(out, "|")
	if len(fs) != 3 {
		t.Fatalf("ffprobe -show_streams: %q", out)
	}
	p.codec = fs[0]
	p.rate, _ = strconv.Atoi(fs[1])
	p.channels, _ = strconv.Atoi(fs[2])
	for i, line := range strings.Fields(string(g7Run(t, "ffprobe", append(sel, "-show_frames", "-show_entries", "frame=pts_time,nb_samples", file)...))) {
		pts, n, _ := strings.Cut(line, "|")
		if i == 0 {
			p.firstPTS = fmSeconds(t, pts)
		}
		k, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("ffprobe frame %q", line)
		}
		p.samples += k
	}
	p.packets = len(strings.Fields(string(g7Run(t, "ffprobe", append(sel, "-show_packets", "-show_entries", "packet=size", file)...))))
	return p
}

// g7PCM decodes a file's audio stream to 16-bit PCM.
func g7PCM(t *testing.T, file string, stream int) []byte {
	t.Helper()
	return g7Run(t, "ffmpeg", "-v", "error", "-i", file, "-map", "0:"+strconv.Itoa(stream), "-f", "s16le", "-")
}

// TestG711RoundTrip packages the G.711 track of an ffmpeg-made A-law clip
// and of a synthetic µ-law stereo stream with jittered timecodes as init +
// media segments, checks the structure, and with ffprobe and ffmpeg (when
// installed) that the result is pcm_alaw / pcm_mulaw with the source's rate,
// channels, packets, sample count and decoded PCM, starting at the first
// block's time, and decodes without an error.
func TestG711RoundTrip(t *testing.T) {
	synth, synthSamples := g7Synth(t)
	for _, tc := range []struct {
		name     string
		file     string
		relative bool
		track    int
		entry    string
		codec    string
		rate     uint32
		ch       int
		samples  int
		dash     error // CheckTracks(DASHFMP4): G.711 alone is not for DASH
	}{
		{"ffmpeg alaw", g7ALawClip, true, 1, "alaw", "pcm_alaw", 8000, 1, 3 * 8000, nil},
		{"synthetic ulaw stereo", synth, false, 0, "ulaw", "pcm_mulaw", 16000, 2, synthSamples, ErrUnsupportedMedia},
	} {
		t.Run(tc.name, func(t *testing.T) {
			segs := fmIngest(t, tc.file, tc.relative)
			if err := CheckTracks(segs[0].Header, DASHFMP4); (err == nil) != (tc.dash == nil) || !errors.Is(err, tc.dash) {
				t.Fatalf("CheckTracks: %v, want %v", err, tc.dash)
			}
			data := fmWrite(t, segs, tc.track)
			if n := g7Check(t, data, segs, tc.track, tc.entry, tc.rate, tc.ch); n != tc.samples {
				t.Fatalf("%d samples, want %d", n, tc.samples)
			}
			fmNeedTool(t, "ffmpeg")
			fmNeedTool(t, "ffprobe")
			out := filepath.Join(t.TempDir(), "out.mp4")
			if err := os.WriteFile(out, data, 0o644); err != nil {
				t.Fatal(err)
			}
			src, got := g7FFprobe(t, tc.file, tc.track), g7FFprobe(t, out, 0)
			want := g7Probe{codec: tc.codec, rate: int(tc.rate), channels: tc.ch, packets: src.packets, samples: tc.samples, firstPTS: segs[0].BaseNS + firstDTS(segs[0], tc.track)}
			if got != want || src.samples != tc.samples || src.codec != tc.codec {
				t.Fatalf("ffprobe: %+v, want %+v (the source: %+v)", got, want, src)
			}
			if a, b := g7PCM(t, tc.file, tc.track), g7PCM(t, out, 0); !bytes.Equal(a, b) || len(a) != 2*tc.ch*tc.samples {
				t.Fatalf("decoded PCM: %d bytes, the source's %d (equal: %v), want %d", len(b), len(a), bytes.Equal(a, b), 2*tc.ch*tc.samples)
			}
			g7Run(t, "ffmpeg", "-v", "error", "-i", out, "-f", "null", "-")
		})
	}
}

// TestWriteMP4MediaG711Durations checks that G.711 sample durations come
// from the byte count, whatever the index says, and that a block that is
// not a whole number of samples is refused.
func TestWriteMP4MediaG711Durations(t *testing.T) {
	h := &fragments.Header{Tracks: []mkv.Track{{Number: 1, CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(6, 2, 8000, 16000, 2, 8, 0)}}}
	// 20, 20, 7.5 and 20 ms blocks, stamped in whole ms with jitter, and
	// the index's durations off too.
	sizes := []int64{320, 320, 120, 320}
	payload := make([]byte, 2000)
	s := &Segment{Header: h, Payload: bytes.NewReader(payload), Size: int64(len(payload)), BaseNS: fmStart + 3e6, Sequence: 4, Meta: &fragments.Meta{}}
	var off int64
	for i, dts := range []int64{0, 21e6, 39e6, 48e6} {
		s.Meta.Samples = append(s.Meta.Samples, fragments.Sample{Track: 0, PTS: dts, DTS: dts, Dur: 19e6, Offset: off, Size: sizes[i]})
		off += sizes[i] + 3
	}
	var b bytes.Buffer
	if err := WriteMP4Media(&b, s, 0); err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(&b)
	if err != nil {
		t.Fatal(err)
	}
	fr := f.Segments[0].Fragments[0]
	if tfdt := fr.Moof.Traf.Tfdt.BaseMediaDecodeTime(); tfdt != uint64(fmUnits(fmStart+3e6, 8000)) {
		t.Errorf("tfdt %d", tfdt)
	}
	got, err := fr.GetFullSamples(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if int64(g.Dur) != sizes[i]/2 || !g.IsSync() || g.CompositionTimeOffset != 0 {
			t.Errorf("sample %d: duration %d, sync %v, cto %d; want %d, sync, 0", i, g.Dur, g.IsSync(), g.CompositionTimeOffset, sizes[i]/2)
		}
	}
	s.Meta.Samples[2].Size = 121
	b.Reset()
	if err := WriteMP4Media(&b, s, 0); err == nil || !strings.Contains(err.Error(), "whole number") || b.Len() != 0 {
		t.Errorf("a 121-byte stereo block: %v (%d bytes written)", err, b.Len())
	}
	s.Meta.Samples[2].Size = 120
	s.Header = &fragments.Header{Tracks: []mkv.Track{{Number: 1, CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(1, 2, 8000, 16000, 2, 8, 0)}}}
	if err := WriteMP4Media(io.Discard, s, 0); !errors.Is(err, ErrUnsupportedMedia) {
		t.Errorf("PCM: %v", err)
	}
}

// TestWaveFormatNeverPanics feeds truncations and bit flips of a
// WAVEFORMATEX to CheckTracks, Describe and WriteMP4Init.
func TestWaveFormatNeverPanics(t *testing.T) {
	avc := cdHeader(t, cdDemoClip).Tracks[0]
	cp := append(cdWaveFormat(6, 2, 8000, 16000, 2, 8, 2), 0, 0)
	try := func(b []byte) {
		t.Helper()
		h := &fragments.Header{Tracks: []mkv.Track{avc, {Number: 2, CodecID: "A_MS/ACM", CodecPrivate: b}}}
		err := CheckTracks(h, DASHFMP4)
		if err != nil && !errors.Is(err, ErrInvalidCodecPrivate) && !errors.Is(err, ErrMissingCodecPrivate) && !errors.Is(err, ErrUnsupportedMedia) {
			t.Fatalf("% x: %v", b, err)
		}
		_, derr := Describe(h, nil)
		ierr := WriteMP4Init(io.Discard, h, 1)
		if (err == nil) != (derr == nil) || (err == nil) != (ierr == nil) {
			t.Fatalf("% x: CheckTracks %v, Describe %v, WriteMP4Init %v", b, err, derr, ierr)
		}
	}
	for i := 0; i <= len(cp); i++ {
		try(cp[:i])
		if i < len(cp) {
			for bit := range 8 {
				b := slices.Clone(cp)
				b[i] ^= 1 << bit
				try(b)
			}
		}
	}
}
