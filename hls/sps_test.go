package hls

import (
	"reflect"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/avc"
)

// SPSs of x264 (64x64, 2 B-frames): plain, and with NAL HRD parameters
// (nal-hrd=vbr).
var (
	spsX264 = []byte{0x67, 0x64, 0x00, 0x0a, 0xac, 0xd9, 0x44, 0x26, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
		0x00, 0x03, 0x00, 0x50, 0x3c, 0x48, 0x96, 0x58}
	spsX264HRD = []byte{0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x44, 0x26, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
		0x00, 0x03, 0x00, 0x51, 0x81, 0x00, 0x07, 0xa1, 0x00, 0x01, 0xe8, 0x4a, 0x6b, 0x28, 0x07, 0x8a, 0x14, 0xcb}
)

// TestParseAVCSPS: real SPSs parse as mp4ff parses them, and the walk
// that guards mp4ff reads the same max_num_reorder_frames at their end
// (so it is in step with the syntax, HRD parameters included); an SPS whose HRD cpb_cnt_minus1 is out of range (a fuzzer's
// find, on which mp4ff appends entries until the process runs out of
// memory) or whose POC cycle is too long is an error at once.
func TestParseAVCSPS(t *testing.T) {
	for name, sps := range map[string][]byte{"plain": spsX264, "hrd": spsX264HRD} {
		got, err := ParseAVCSPS(sps)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := avc.ParseSPSNALUnit(sps, true)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %+v, mp4ff %+v (%v)", name, got, want, err)
		}
		reorder, err := checkAVCSPS(sps)
		if err != nil || want.VUI == nil || !want.VUI.BitstreamRestrictionFlag || reorder != int64(want.VUI.MaxNumReorderFrames) || reorder != 2 {
			t.Fatalf("%s: walk read max_num_reorder_frames %d (%v), mp4ff %+v", name, reorder, err, want.VUI)
		}
	}
	if v := mustVUI(t, spsX264HRD); !v.NalHrdParametersPresentFlag {
		t.Fatal("the HRD SPS has no NAL HRD parameters")
	}
	for _, c := range []struct {
		name string
		sps  []byte
		want string
	}{
		{"cpb count", []byte{0x27, 0x7a, 0x30, 0x30, 0xac, 0x59, 0x24, 0x24, 0xc0, 0x31, 0, 0, 3, 0, 4, 0, 0, 0xe8, 3, 0, 0, 0x48, 0x96, 0x58}, "cpb_cnt_minus1"},
		// Baseline, POC type 1 with 256 offsets: sps_id 0 (1), log2_max_frame_num_minus4 0 (1), type 1
		// (010), delta_pic_order_always_zero_flag 0, two offsets 0 (1 1), count 256 (00000000 100000001).
		{"poc cycle", []byte{0x67, 0x42, 0x00, 0x0a, 0xd3, 0x00, 0x80, 0x80}, "num_ref_frames_in_pic_order_cnt_cycle"},
	} {
		if _, err := ParseAVCSPS(c.sps); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one about %s", c.name, err, c.want)
		}
	}
}

func mustVUI(t *testing.T, sps []byte) *avc.VUIParameters {
	t.Helper()
	s, err := ParseAVCSPS(sps)
	if err != nil || s.VUI == nil {
		t.Fatalf("%v, VUI %v", err, s)
	}
	return s.VUI
}

// FuzzParseSPS: any bytes as an H.264 or H.265 SPS parse or fail, without
// a panic and in bounded time and memory.
func FuzzParseSPS(f *testing.F) {
	f.Add(spsX264, false)
	f.Add(spsX264HRD, false)
	f.Add([]byte{0x42, 0x01, 0x01, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5d, 0xa0, 0x02, 0x80, 0x80, 0x2d, 0x16}, true)
	f.Fuzz(func(t *testing.T, nal []byte, hevc bool) {
		if hevc {
			ParseHEVCSPS(nal)
			return
		}
		ParseAVCSPS(nal)
	})
}
