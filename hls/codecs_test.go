package hls

import (
	"errors"
	"io"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/Eyevinn/mp4ff/hevc"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// Test media: the KVS C producer captures, the demo clip (x264 with
// B-frames + AAC) and testdata/hevc.mkv, made with
//
//	ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -t 1 -c:v libx265 -g 25 hevc.mkv
const (
	cdCapAV    = "../testdata/producer/producer-c-av-relative.mkv"
	cdCapVideo = "../testdata/producer/producer-c-video-absolute-tags.mkv"
	cdDemoClip = "../cmd/kvsgate/demo/sample.mkv"
	cdHEVCClip = "testdata/hevc.mkv"
)

// cdHeader reads the track header of a Matroska file.
func cdHeader(t testing.TB, path string) *fragments.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := mkv.NewReader(f)
	for {
		ev, err := r.Next()
		if err == io.EOF {
			t.Fatalf("%s: no Tracks", path)
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if ev.Kind == mkv.KindTracks {
			return &fragments.Header{TimecodeScale: ev.Header.TimecodeScale, Tracks: slices.Clone(ev.Header.Tracks)}
		}
	}
}

func TestDescribeRealMedia(t *testing.T) {
	for _, tc := range []struct {
		file          string
		codecs        []string
		width, height int
	}{
		{cdCapAV, []string{"avc1.64001e", "mp4a.40.2"}, 640, 480},
		{cdCapVideo, []string{"avc1.64001e"}, 640, 480},
		{cdDemoClip, []string{"avc1.4d401e", "mp4a.40.2"}, 640, 360},
		{cdHEVCClip, []string{"hvc1.1.6.L60.90"}, 320, 240},
	} {
		h := cdHeader(t, tc.file)
		// The Matroska PixelWidth/Height must not be what is reported.
		h.Tracks[0].Width, h.Tracks[0].Height = 1, 1
		si, err := Describe(h, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if !slices.Equal(si.Codecs, tc.codecs) || si.Width != tc.width || si.Height != tc.height || si.FrameRate != 25 {
			t.Errorf("%s: %+v, want codecs %v, %dx%d at 25 fps (from the SPS)", tc.file, si, tc.codecs, tc.width, tc.height)
		}
	}
}

// TestHEVCCodecStringMatchesMP4ff checks the hvcC-derived string against
// mp4ff's, which derives it from the SPS profile_tier_level.
func TestHEVCCodecStringMatchesMP4ff(t *testing.T) {
	h := cdHeader(t, cdHEVCClip)
	c, err := parseHEVCDecConfig(h.Tracks[0].CodecPrivate)
	if err != nil {
		t.Fatal(err)
	}
	sps, err := hevc.ParseSPSNALUnit(c.sps[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.codecString("hvc1"), hevc.CodecString("hvc1", sps); got != want {
		t.Fatalf("codec string %q, mp4ff says %q", got, want)
	}
	// Annex E examples: profile space, compatibility flags reversed, high
	// tier, all six constraint bytes.
	for _, tc := range []struct {
		c    hevcDecConfig
		want string
	}{
		{hevcDecConfig{profileIDC: 1, compat: 0x60000000, constraints: 0x900000000000, level: 93}, "hvc1.1.6.L93.90"},
		{hevcDecConfig{profileSpace: 1, profileIDC: 4, compat: 0x10000000, tier: true, constraints: 0xb00000000001, level: 120}, "hvc1.A4.8.H120.B0.0.0.0.0.1"},
		{hevcDecConfig{profileIDC: 2, compat: 0x20000000, level: 153}, "hvc1.2.4.L153"},
	} {
		if got := tc.c.codecString("hvc1"); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}

// cdBitWriter writes an RBSP for synthetic SPSs.
type cdBitWriter struct {
	b []byte
	n int
}

func (w *cdBitWriter) u(v uint, bits int) {
	for i := bits - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte((v>>i)&1) << (7 - w.n%8)
		w.n++
	}
}

func (w *cdBitWriter) ue(v uint) {
	v++
	l := 0
	for x := v; x > 1; x >>= 1 {
		l++
	}
	w.u(0, l)
	w.u(v, l+1)
}

// cdAVCCWithoutTiming builds the avcC of a baseline 640x368 stream whose SPS
// has no VUI (so no timing information).
func cdAVCCWithoutTiming() []byte {
	w := &cdBitWriter{}
	w.u(0x67, 8) // NAL header: SPS
	w.u(66, 8)   // profile_idc
	w.u(0xc0, 8) // constraint flags
	w.u(30, 8)   // level_idc
	w.ue(0)      // seq_parameter_set_id
	w.ue(0)      // log2_max_frame_num_minus4
	w.ue(2)      // pic_order_cnt_type
	w.ue(1)      // max_num_ref_frames
	w.u(0, 1)    // gaps_in_frame_num_value_allowed_flag
	w.ue(39)     // pic_width_in_mbs_minus1
	w.ue(22)     // pic_height_in_map_units_minus1
	w.u(1, 1)    // frame_mbs_only_flag
	w.u(1, 1)    // direct_8x8_inference_flag
	w.u(0, 1)    // frame_cropping_flag
	w.u(0, 1)    // vui_parameters_present_flag
	w.u(1, 1)    // rbsp_stop_one_bit
	sps := w.b
	pps := []byte{0x68, 0xce, 0x38, 0x80}
	b := []byte{1, 66, 0xc0, 30, 0xff, 0xe1, 0, byte(len(sps))}
	b = append(b, sps...)
	b = append(b, 1, 0, byte(len(pps)))
	return append(b, pps...)
}

func TestDescribeFrameRateFallbacks(t *testing.T) {
	h := &fragments.Header{Tracks: []mkv.Track{
		{Number: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: cdAVCCWithoutTiming(), DefaultDuration: 1e9 / 50},
		{Number: 2, CodecID: "A_AAC", CodecPrivate: []byte{0x11, 0x90}},
	}}
	// No timing in the SPS: the median frame duration of track 0 (the odd
	// ones out and audio samples do not count).
	var samples []fragments.Sample
	for i := range 9 {
		d := int64(1001e6) / 30
		switch i {
		case 3:
			d = 1e9
		case 5, 7:
			d = 1
		}
		samples = append(samples, fragments.Sample{Track: 0, Dur: d}, fragments.Sample{Track: 1, Dur: 21e6})
	}
	si, err := Describe(h, samples)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(si.Codecs, []string{"avc1.42c01e", "mp4a.40.2"}) || si.Width != 640 || si.Height != 368 {
		t.Fatalf("%+v", si)
	}
	if math.Abs(si.FrameRate-30000.0/1001) > 1e-4 {
		t.Fatalf("frame rate from samples %v, want 29.97", si.FrameRate)
	}
	// No samples: DefaultDuration.
	if si, err = Describe(h, samples[1:2]); err != nil || si.FrameRate != 50 {
		t.Fatalf("frame rate from DefaultDuration: %v %v, want 50", si.FrameRate, err)
	}
	// Nothing at all: unknown.
	h.Tracks[0].DefaultDuration = 0
	if si, err = Describe(h, nil); err != nil || si.FrameRate != 0 {
		t.Fatalf("frame rate with nothing to go by: %v %v, want 0", si.FrameRate, err)
	}
	// Audio only: no picture.
	if si, err = Describe(&fragments.Header{Tracks: h.Tracks[1:]}, samples); err != nil || si.Width != 0 || si.FrameRate != 0 || !slices.Equal(si.Codecs, []string{"mp4a.40.2"}) {
		t.Fatalf("audio only: %+v %v", si, err)
	}
}

func TestAudioCodecStrings(t *testing.T) {
	for _, tc := range []struct {
		asc  []byte
		want string
	}{
		{[]byte{0x11, 0x90}, "mp4a.40.2"},
		{[]byte{0x12, 0x10}, "mp4a.40.2"},       // 44.1 kHz stereo
		{[]byte{0x2b, 0x11, 0x88}, "mp4a.40.5"}, // HE-AAC, explicit SBR
		{[]byte{0x0a, 0x10}, "mp4a.40.1"},       // AAC Main
	} {
		si, err := Describe(&fragments.Header{Tracks: []mkv.Track{{Number: 1, CodecID: "A_AAC", CodecPrivate: tc.asc}}}, nil)
		if err != nil || len(si.Codecs) != 1 || si.Codecs[0] != tc.want {
			t.Errorf("ASC % x: %v %v, want %s", tc.asc, si.Codecs, err, tc.want)
		}
	}
}

func TestCheckTracks(t *testing.T) {
	avcC := cdHeader(t, cdDemoClip).Tracks[0].CodecPrivate
	hvcC := cdHeader(t, cdHEVCClip).Tracks[0].CodecPrivate
	var (
		avc     = mkv.Track{CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: avcC}
		avcOld  = mkv.Track{CodecID: "V_MPEG/ISO/AVC", CodecPrivate: avcC}
		hevc    = mkv.Track{CodecID: "V_MPEGH/ISO/HEVC", CodecPrivate: hvcC}
		aacT    = mkv.Track{CodecID: "A_AAC", CodecPrivate: []byte{0x11, 0x90}}
		acm     = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: []byte{7, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0, 0, 0}}
		vp8     = mkv.Track{CodecID: "V_VP8"}
		noAVC   = mkv.Track{CodecID: "V_MPEG4/ISO/AVC"}
		noHEVC  = mkv.Track{CodecID: "V_MPEGH/ISO/HEVC"}
		noAAC   = mkv.Track{CodecID: "A_AAC"}
		badAVC  = mkv.Track{CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: avcC[:12]}                      // truncated SPS
		badAVC2 = mkv.Track{CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: append([]byte{2}, avcC[1:]...)} // version 2
		badAVC3 = mkv.Track{CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: []byte{1, 0x4d, 0x40, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0xff, 0xff, 0xff, 1, 0, 1, 0x68}}
		badHEVC = mkv.Track{CodecID: "V_MPEGH/ISO/HEVC", CodecPrivate: hvcC[:40]}
		annexB  = mkv.Track{CodecID: "V_MPEGH/ISO/HEVC", CodecPrivate: []byte{0, 0, 0, 1, 0x40, 1, 0xc, 1, 0xff, 0xff, 1, 0x60, 0, 0, 3, 0, 0x90, 0, 0, 3, 0, 0, 3, 0, 0x5d}}
		badAAC  = mkv.Track{CodecID: "A_AAC", CodecPrivate: []byte{0x16, 0x90}} // sampling frequency index 13
		badAAC2 = mkv.Track{CodecID: "A_AAC", CodecPrivate: []byte{0x17}}       // truncated
		// G.711 WAVEFORMATEXs: tag, channels, rate, bytes/s, block align, bits, cbSize.
		alaw      = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(6, 1, 8000, 8000, 1, 8, 0)}
		alaw2     = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(6, 2, 16000, 32000, 2, 8, 0)}
		alawSDK   = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(6, 1, 8000, 1000, 1, 0, 0)}
		alaw16    = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(6, 1, 8000, 8000, 1, 8, 0)[:16]}
		alawExtra = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: append(cdWaveFormat(6, 1, 8000, 8000, 1, 8, 2), 0, 0)}
		noACM     = mkv.Track{CodecID: "A_MS/ACM"}
		acmMP3    = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(0x55, 2, 44100, 16000, 1, 0, 0)}
		acmPCM    = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(1, 1, 8000, 16000, 2, 16, 0)}
		badACM    = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(6, 1, 8000, 8000, 1, 8, 0)[:15]}
		badACM2   = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(6, 1, 8000, 8000, 1, 8, 1)}
		badACM3   = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(6, 0, 8000, 8000, 1, 8, 0)}
		badACM4   = mkv.Track{CodecID: "A_MS/ACM", CodecPrivate: cdWaveFormat(7, 1, 0, 8000, 1, 8, 0)}
	)
	tr := func(ts ...mkv.Track) []mkv.Track {
		for i := range ts {
			ts[i].Number = uint64(i + 1)
		}
		return ts
	}
	for _, tc := range []struct {
		name             string
		tracks           []mkv.Track
		fmp4, mpts, dash error // nil: allowed
	}{
		{"h264", tr(avc), nil, nil, nil},
		{"h264 old id", tr(avcOld), nil, nil, nil},
		{"h264+aac", tr(avc, aacT), nil, nil, nil},
		{"h265", tr(hevc), nil, ErrUnsupportedMedia, nil},
		{"h265+aac", tr(hevc, aacT), nil, ErrUnsupportedMedia, nil},
		{"aac", tr(aacT), nil, nil, nil},
		{"none", nil, ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"aac+h264", tr(aacT, avc), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"aac+h265", tr(aacT, hevc), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+h264", tr(avc, avc), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+h265", tr(avc, hevc), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"aac+aac", tr(aacT, aacT), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+aac+aac", tr(avc, aacT, aacT), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"acm", tr(acm), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+acm", tr(avc, acm), ErrUnsupportedMedia, ErrUnsupportedMedia, nil},
		{"vp8", tr(vp8), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"vp8+aac", tr(vp8, aacT), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264 without avcC", tr(noAVC), ErrMissingCodecPrivate, ErrMissingCodecPrivate, ErrMissingCodecPrivate},
		{"h264+aac without ASC", tr(avc, noAAC), ErrMissingCodecPrivate, ErrMissingCodecPrivate, ErrMissingCodecPrivate},
		{"aac without ASC", tr(noAAC), ErrMissingCodecPrivate, ErrMissingCodecPrivate, ErrMissingCodecPrivate},
		{"h265 without hvcC", tr(noHEVC), ErrMissingCodecPrivate, ErrUnsupportedMedia, ErrMissingCodecPrivate},
		{"h264 truncated avcC", tr(badAVC, aacT), ErrInvalidCodecPrivate, ErrInvalidCodecPrivate, ErrInvalidCodecPrivate},
		{"h264 avcC version 2", tr(badAVC2), ErrInvalidCodecPrivate, ErrInvalidCodecPrivate, ErrInvalidCodecPrivate},
		{"h264 SPS garbage", tr(badAVC3), ErrInvalidCodecPrivate, ErrInvalidCodecPrivate, ErrInvalidCodecPrivate},
		{"h265 truncated hvcC", tr(badHEVC), ErrInvalidCodecPrivate, ErrUnsupportedMedia, ErrInvalidCodecPrivate},
		{"h265 Annex B codec private", tr(annexB), ErrInvalidCodecPrivate, ErrUnsupportedMedia, ErrInvalidCodecPrivate},
		{"aac bad frequency", tr(avc, badAAC), ErrInvalidCodecPrivate, ErrInvalidCodecPrivate, ErrInvalidCodecPrivate},
		{"aac truncated ASC", tr(badAAC2), ErrInvalidCodecPrivate, ErrInvalidCodecPrivate, ErrInvalidCodecPrivate},
		// G.711 (A_MS/ACM): DASH only, after H.264 only.
		{"h264+alaw", tr(avc, alaw), ErrUnsupportedMedia, ErrUnsupportedMedia, nil},
		{"h264+alaw stereo 16 kHz", tr(avc, alaw2), ErrUnsupportedMedia, ErrUnsupportedMedia, nil},
		{"h264+alaw as the KVS producer SDK writes it", tr(avc, alawSDK), ErrUnsupportedMedia, ErrUnsupportedMedia, nil},
		{"h264+alaw WAVEFORMAT (16 bytes)", tr(avc, alaw16), ErrUnsupportedMedia, ErrUnsupportedMedia, nil},
		{"h264+alaw with extra bytes", tr(avc, alawExtra), ErrUnsupportedMedia, ErrUnsupportedMedia, nil},
		{"h264 old id+ulaw", tr(avcOld, acm), ErrUnsupportedMedia, ErrUnsupportedMedia, nil},
		{"alaw", tr(alaw), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h265+alaw", tr(hevc, alaw), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h265+ulaw", tr(hevc, acm), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"alaw+h264", tr(alaw, avc), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"aac+alaw", tr(aacT, alaw), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"alaw+aac", tr(alaw, aacT), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+alaw+aac", tr(avc, alaw, aacT), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+aac+alaw", tr(avc, aacT, alaw), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+alaw+ulaw", tr(avc, alaw, acm), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+alaw without WAVEFORMATEX", tr(avc, noACM), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrMissingCodecPrivate},
		{"h264+acm MP3", tr(avc, acmMP3), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+acm PCM", tr(avc, acmPCM), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrUnsupportedMedia},
		{"h264+alaw truncated WAVEFORMATEX", tr(avc, badACM), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrInvalidCodecPrivate},
		{"h264+alaw cbSize past the end", tr(avc, badACM2), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrInvalidCodecPrivate},
		{"h264+alaw 0 channels", tr(avc, badACM3), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrInvalidCodecPrivate},
		{"h264+alaw 0 Hz", tr(avc, badACM4), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrInvalidCodecPrivate},
		{"bad h264+alaw", tr(badAVC, alaw), ErrUnsupportedMedia, ErrUnsupportedMedia, ErrInvalidCodecPrivate},
	} {
		h := &fragments.Header{Tracks: tc.tracks}
		for _, c := range []struct {
			c    Container
			want error
		}{{FMP4, tc.fmp4}, {MPEGTS, tc.mpts}, {DASHFMP4, tc.dash}} {
			err := CheckTracks(h, c.c)
			if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
				t.Errorf("%s, %s: %v, want %v", tc.name, containerName(c.c), err, c.want)
			}
			for _, other := range []error{ErrUnsupportedMedia, ErrMissingCodecPrivate, ErrInvalidCodecPrivate} {
				if other != c.want && errors.Is(err, other) {
					t.Errorf("%s, %s: %v is also %v", tc.name, containerName(c.c), err, other)
				}
			}
		}
		// Describe refuses what it cannot describe the same way as DASH,
		// which allows the most (with any layout: it does not judge the
		// combination).
		if _, err := Describe(h, nil); tc.dash != nil && tc.dash != ErrUnsupportedMedia && !errors.Is(err, tc.dash) {
			t.Errorf("%s: Describe: %v, want %v", tc.name, err, tc.dash)
		}
	}
	if err := CheckTracks(nil, FMP4); !errors.Is(err, ErrUnsupportedMedia) {
		t.Errorf("nil header: %v", err)
	}
}

// TestCodecPrivateNeverPanics feeds truncations and bit flips of real
// codec private data to the parsers.
func TestCodecPrivateNeverPanics(t *testing.T) {
	for _, file := range []string{cdDemoClip, cdHEVCClip} {
		h := cdHeader(t, file)
		for ti := range h.Tracks {
			cp := h.Tracks[ti].CodecPrivate
			for i := 0; i <= len(cp); i += max(1, len(cp)/200) {
				try := func(b []byte) {
					t.Helper()
					hh := &fragments.Header{Tracks: []mkv.Track{{Number: 1, CodecID: h.Tracks[ti].CodecID, CodecPrivate: b}}}
					err := CheckTracks(hh, FMP4)
					if err != nil && !errors.Is(err, ErrInvalidCodecPrivate) && !errors.Is(err, ErrMissingCodecPrivate) {
						t.Fatalf("%s track %d: % x: %v", file, ti, b, err)
					}
					Describe(hh, nil)
				}
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
	}
}
