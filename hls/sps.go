package hls

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/hevc"
)

// ParseAVCSPS parses an H.264 SPS NAL unit with mp4ff, VUI included, for
// bytes from a producer. mp4ff's parser takes the counts it loops over
// from the bitstream, and one is unbounded: for an HRD cpb_cnt_minus1 of
// up to 2^32 (the standard allows 31) it appends as many entries, which
// takes the process's memory. So the SPS is first walked here over the
// same syntax, and one whose counts are out of the standard's range is an
// error. A panic in mp4ff is an error too.
func ParseAVCSPS(nal []byte) (*avc.SPS, error) {
	if _, err := checkAVCSPS(nal); err != nil {
		return nil, err
	}
	return parseSafely(func() (*avc.SPS, error) { return avc.ParseSPSNALUnit(nal, true) })
}

// ParseHEVCSPS parses an H.265 SPS NAL unit with mp4ff, whose loops are
// bounded by the widths of the fields it reads; a panic is an error.
func ParseHEVCSPS(nal []byte) (*hevc.SPS, error) {
	return parseSafely(func() (*hevc.SPS, error) { return hevc.ParseSPSNALUnit(nal) })
}

// checkAVCSPS walks an SPS (ISO/IEC 14496-10 7.3.2.1.1, E.1.1) as mp4ff
// reads it, with mp4ff's own bit reader (so that both see the same bits,
// emulation prevention and the end included), and checks the counts of
// its loops. It returns max_num_reorder_frames, -1 without VUI
// bitstream_restriction (for the tests: that it reads what mp4ff reads
// shows the walk is in step).
func checkAVCSPS(nal []byte) (int64, error) {
	r := bits.NewEBSPReader(bytes.NewReader(nal))
	r.Read(8) // NAL unit header
	profile := r.Read(8)
	r.Read(16)        // constraint flags, level
	r.ReadExpGolomb() // seq_parameter_set_id
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma := r.ReadExpGolomb()
		if chroma == 3 {
			r.ReadFlag()
		}
		r.ReadExpGolomb() // bit_depth_luma_minus8
		r.ReadExpGolomb() // bit_depth_chroma_minus8
		r.ReadFlag()      // qpprime_y_zero_transform_bypass_flag
		if r.ReadFlag() { // seq_scaling_matrix_present_flag
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := range lists {
				if !r.ReadFlag() {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				last, next := 8, 8
				for range size {
					if next != 0 {
						next = (last + r.ReadSignedGolomb() + 256) % 256
					}
					if next != 0 {
						last = next
					}
				}
			}
		}
	}
	r.ReadExpGolomb() // log2_max_frame_num_minus4
	switch r.ReadExpGolomb() {
	case 0:
		r.ReadExpGolomb()
	case 1:
		r.ReadFlag()
		r.ReadExpGolomb() // (mp4ff reads the two offsets as ue(v): the same bits)
		r.ReadExpGolomb()
		n := r.ReadExpGolomb()
		if n > 255 {
			return 0, fmt.Errorf("SPS: num_ref_frames_in_pic_order_cnt_cycle %d out of range", n)
		}
		for range n {
			r.ReadExpGolomb()
		}
	}
	r.ReadExpGolomb()  // max_num_ref_frames
	r.ReadFlag()       // gaps_in_frame_num_value_allowed_flag
	r.ReadExpGolomb()  // pic_width_in_mbs_minus1
	r.ReadExpGolomb()  // pic_height_in_map_units_minus1
	if !r.ReadFlag() { // frame_mbs_only_flag
		r.ReadFlag()
	}
	r.ReadFlag()      // direct_8x8_inference_flag
	if r.ReadFlag() { // frame_cropping_flag
		for range 4 {
			r.ReadExpGolomb()
		}
	}
	if !r.ReadFlag() { // vui_parameters_present_flag
		return -1, nil
	}
	if r.ReadFlag() && r.Read(8) == 255 { // aspect_ratio_info_present_flag, aspect_ratio_idc
		r.Read(32)
	}
	if r.ReadFlag() { // overscan_info_present_flag
		r.ReadFlag()
	}
	if r.ReadFlag() { // video_signal_type_present_flag
		r.Read(4)
		if r.ReadFlag() {
			r.Read(24)
		}
	}
	if r.ReadFlag() { // chroma_loc_info_present_flag
		r.ReadExpGolomb()
		r.ReadExpGolomb()
	}
	if r.ReadFlag() { // timing_info_present_flag
		r.Read(32)
		r.Read(32)
		r.ReadFlag()
	}
	hrd := false
	for range 2 { // nal_hrd_parameters_present_flag, vcl_hrd_parameters_present_flag
		if !r.ReadFlag() {
			continue
		}
		hrd = true
		cpbs := r.ReadExpGolomb() // cpb_cnt_minus1
		if cpbs > 31 {
			return 0, fmt.Errorf("SPS: cpb_cnt_minus1 %d out of range", cpbs)
		}
		r.Read(8)
		for range cpbs + 1 {
			r.ReadExpGolomb()
			r.ReadExpGolomb()
			r.ReadFlag()
		}
		r.Read(20)
	}
	if hrd {
		r.ReadFlag() // low_delay_hrd_flag
	}
	r.ReadFlag()       // pic_struct_present_flag
	if !r.ReadFlag() { // bitstream_restriction_flag
		return -1, nil
	}
	r.ReadFlag()
	for range 4 {
		r.ReadExpGolomb()
	}
	return int64(r.ReadExpGolomb()), nil
}
