package hls

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

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
