package images

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/hls"
)

// The decoder is fed an elementary stream in Annex B (start codes), which
// ffmpeg reads with -f h264 / -f hevc. Stored samples are in the
// length-prefixed form of Matroska (ISO/IEC 14496-15), their parameter
// sets in the track's avcC / hvcC.
//
// The converter is written here rather than taken from package hls: hls
// exports no converter (its Annex B writer is part of the MPEG-TS
// packetizer, H.264 only, and writes TS packets), and what the decoder
// needs differs anyway: an access unit delimiter of our own at the start
// of every access unit (so that ffmpeg's parser cuts access units exactly
// where we do, and the byte offset ffmpeg reports for a frame names the
// sample it came from), the parameter sets before the key frame that
// starts each GOP, and per sample whether it is a reference picture (so
// that pictures nothing needs are not decoded at all).

// codec is a video codec the decoder takes.
type codec int

const (
	codecH264 codec = iota + 1
	codecHEVC
)

func (c codec) String() string {
	switch c {
	case codecH264:
		return "H.264"
	case codecHEVC:
		return "H.265"
	}
	return "unknown"
}

// ffmpegFormat is the raw demuxer of the codec.
func (c codec) ffmpegFormat() string {
	if c == codecHEVC {
		return "hevc"
	}
	return "h264"
}

// Access unit delimiters: H.264 primary_pic_type 7 (any slice type),
// H.265 pic_type 2 (I, P, B), each with its RBSP stop bit.
var (
	audH264 = []byte{0, 0, 0, 1, 0x09, 0xf0}
	audHEVC = []byte{0, 0, 0, 1, 0x46, 0x01, 0x50}
)

var startCode = []byte{0, 0, 0, 1}

// ErrUnsupported is returned for a track the decoder does not take (not
// H.264 or H.265, or codec private data that does not parse). Frames of
// such tracks are MEDIA_ERROR.
var ErrUnsupported = errors.New("images: unsupported video track")

// trackConfig is what the converter needs of a track: the codec, the NAL
// unit length size and the parameter sets in Annex B.
type trackConfig struct {
	codec      codec
	lengthSize int
	params     []byte // start code + NAL unit, for each parameter set
	// H.265: sps_max_sub_layers_minus1 of the first SPS. A sub-layer
	// non-reference picture at this temporal sub-layer is not a
	// reference of any picture.
	maxTID int
	// reorder is how many frames the decoder holds back before it
	// outputs one, as the first SPS says (H.264: VUI
	// max_num_reorder_frames, 0 without bitstream_restriction, as ffmpeg
	// starts; H.265: sps_max_num_reorder_pics of the highest sub-layer).
	reorder int
}

// parseTrack reads a track's codec private data.
func parseTrack(t *mkv.Track) (*trackConfig, error) {
	var c *trackConfig
	var err error
	switch t.CodecID {
	case "V_MPEG4/ISO/AVC", "V_MPEG/ISO/AVC":
		c, err = parseAVCC(t.CodecPrivate)
	case "V_MPEGH/ISO/HEVC":
		c, err = parseHVCC(t.CodecPrivate)
	default:
		return nil, fmt.Errorf("%w: codec %q (H.264 and H.265 only)", ErrUnsupported, t.CodecID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: track %d (%s): %v", ErrUnsupported, t.Number, t.CodecID, err)
	}
	return c, nil
}

// reorderDelay reads the reorder delay from the track's first SPS; 2 if
// it does not parse (then warm-up, its only use, may fall short, which
// costs time, not images).
func (c *trackConfig) reorderDelay(sps []byte) int {
	const unknown, most = 2, 16
	if c.codec == codecHEVC {
		s, err := hls.ParseHEVCSPS(sps)
		if err != nil || len(s.SubLayeringOrderingInfos) == 0 {
			return unknown
		}
		return min(int(s.SubLayeringOrderingInfos[len(s.SubLayeringOrderingInfos)-1].MaxNumReorderPics), most)
	}
	s, err := hls.ParseAVCSPS(sps)
	switch {
	case err != nil:
		return unknown
	case s.VUI == nil || !s.VUI.BitstreamRestrictionFlag:
		return 0
	}
	return min(int(s.VUI.MaxNumReorderFrames), most)
}

// parseAVCC reads an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
func parseAVCC(b []byte) (*trackConfig, error) {
	if len(b) < 7 || b[0] != 1 {
		return nil, errors.New("not an AVCDecoderConfigurationRecord")
	}
	c := &trackConfig{codec: codecH264, lengthSize: int(b[4]&3) + 1}
	if c.lengthSize == 3 {
		return nil, errors.New("NAL unit length size 3")
	}
	r := b[5:]
	var sps, pps int
	for set := range 2 {
		if len(r) < 1 {
			return nil, errors.New("truncated")
		}
		n := int(r[0])
		if set == 0 {
			n &= 0x1f
		}
		r = r[1:]
		for range n {
			if len(r) < 2 {
				return nil, errors.New("truncated parameter set")
			}
			l := int(binary.BigEndian.Uint16(r))
			if l == 0 || len(r) < 2+l {
				return nil, errors.New("truncated parameter set")
			}
			nal := r[2 : 2+l]
			switch typ := nal[0] & 0x1f; {
			case set == 0 && typ == 7:
				if sps == 0 {
					c.reorder = c.reorderDelay(nal)
				}
				sps++
			case set == 1 && typ == 8:
				pps++
			default:
				return nil, fmt.Errorf("NAL unit type %d among the parameter sets", typ)
			}
			c.params = append(append(c.params, startCode...), nal...)
			r = r[2+l:]
		}
	}
	if sps == 0 || pps == 0 {
		return nil, fmt.Errorf("%d SPS and %d PPS", sps, pps)
	}
	return c, nil
}

// parseHVCC reads an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1).
func parseHVCC(b []byte) (*trackConfig, error) {
	if len(b) < 23 || b[0] != 1 {
		return nil, errors.New("not an HEVCDecoderConfigurationRecord")
	}
	c := &trackConfig{codec: codecHEVC, lengthSize: int(b[21]&3) + 1}
	if c.lengthSize == 3 {
		return nil, errors.New("NAL unit length size 3")
	}
	n := int(b[22])
	r := b[23:]
	var vps, sps, pps int
	for range n {
		if len(r) < 3 {
			return nil, errors.New("truncated array")
		}
		typ := r[0] & 0x3f
		count := int(binary.BigEndian.Uint16(r[1:]))
		r = r[3:]
		for range count {
			if len(r) < 2 {
				return nil, errors.New("truncated parameter set")
			}
			l := int(binary.BigEndian.Uint16(r))
			if l < 2 || len(r) < 2+l {
				return nil, errors.New("truncated parameter set")
			}
			nal := r[2 : 2+l]
			r = r[2+l:]
			switch typ {
			case 32:
				vps++
			case 33:
				if sps == 0 {
					if len(nal) >= 3 {
						// sps_video_parameter_set_id u(4), sps_max_sub_layers_minus1 u(3)
						c.maxTID = int(nal[2]>>1) & 7
					}
					c.reorder = c.reorderDelay(nal)
				}
				sps++
			case 34:
				pps++
			default:
				continue // SEI arrays: not needed to decode
			}
			c.params = append(append(c.params, startCode...), nal...)
		}
	}
	if vps == 0 || sps == 0 || pps == 0 {
		return nil, fmt.Errorf("%d VPS, %d SPS and %d PPS", vps, sps, pps)
	}
	return c, nil
}

// auInfo describes one sample as the converter sees it.
type auInfo struct {
	vcl int  // VCL NAL units of the sample (0: nothing to decode)
	ref bool // a reference picture (or not known not to be one)
}

// inspect walks a sample's NAL units without copying them.
func (c *trackConfig) inspect(b []byte) auInfo {
	var ai auInfo
	c.walk(b, func(nal []byte) {
		if !c.isVCL(nal) {
			return
		}
		ai.vcl++
		if c.isRef(nal) {
			ai.ref = true
		}
	})
	return ai
}

// grid: the decoder outputs the frames whose access units start at a
// multiple of grid bytes in the stream it is fed, so that its command line
// does not depend on the frames (see decoder.go). The position ffmpeg
// reports for a frame is where its parser cut the access unit: the start
// of our delimiter's (or end-of-sequence NAL unit's) four-byte start code
// for H.264, one byte later (the three-byte start code in it) for H.265.
// So the decoder selects positions less than slack past the grid (select
// lt(mod(pos, grid), slack)), and pad puts each access unit on the grid
// or at least slack away from it.
const (
	grid  = 64
	slack = 4
)

// Filler data NAL unit headers: H.264 type 12 (nal_ref_idc 0), H.265
// FD_NUT (38, layer 0, temporal id 0). The decoders ignore them, and the
// parsers keep them in the access unit they follow.
var (
	fillerH264 = []byte{0x0c}
	fillerHEVC = []byte{0x4c, 0x01}
)

// pad appends a filler data NAL unit if needed, so that the next access
// unit starts at a multiple of grid if it is wanted, and at least slack
// bytes from any multiple if not. The stream's first access unit starts
// at 0 whatever it is: nothing can come before it in its own access unit,
// so its image is made, and dropped if it is not wanted.
func (c *trackConfig) pad(dst []byte, wanted bool) []byte {
	if len(dst) == 0 {
		return dst
	}
	hdr := fillerH264
	if c.codec == codecHEVC {
		hdr = fillerHEVC
	}
	least := len(startCode) + len(hdr) + 1 // and rbsp_trailing_bits
	target := -1                           // the residue to move to
	switch r := len(dst) % grid; {
	case wanted && r != 0:
		target = 0
	case !wanted && (r < slack || r > grid-slack):
		target = grid / 2
	}
	if target < 0 {
		return dst
	}
	n := ((target-len(dst))%grid + grid) % grid
	if n < least {
		n += grid
	}
	dst = append(append(dst, startCode...), hdr...)
	for range n - least {
		dst = append(dst, 0xff) // ff_byte
	}
	return append(dst, 0x80)
}

// warmable reports whether a key frame's access unit (Annex B) may warm a
// decoder (see decoder.warm): for H.264 only an IDR picture, which starts
// a new sequence however often it is repeated; any other key frame (an I
// picture of an open GOP) would repeat frame_num and picture order count,
// and ffmpeg may then drop a copy or the request's next frame. For H.265
// every key frame, since an end-of-sequence NAL unit comes before each.
func (c *trackConfig) warmable(au []byte) bool {
	if c.codec == codecHEVC {
		return true
	}
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 && au[i+3]&0x9f == 5 {
			return true
		}
	}
	return false
}

// appendAU appends a sample as an Annex B access unit: an access unit
// delimiter, the parameter sets if params, then its NAL units (without
// delimiters or end-of-sequence/stream NAL units of its own, which would
// end the stream the decoder sees or restart it).
func (c *trackConfig) appendAU(dst, b []byte, params bool) []byte {
	if c.codec == codecHEVC {
		dst = append(dst, audHEVC...)
	} else {
		dst = append(dst, audH264...)
	}
	if params {
		dst = append(dst, c.params...)
	}
	c.walk(b, func(nal []byte) {
		if c.isDelimiter(nal) {
			return
		}
		dst = append(append(dst, startCode...), nal...)
	})
	return dst
}

// walk calls fn for each well-formed NAL unit of a sample: up to the first
// length that overruns the sample, skipping empty ones and those whose
// forbidden_zero_bit is set.
func (c *trackConfig) walk(b []byte, fn func(nal []byte)) {
	ls := c.lengthSize
	for len(b) >= ls {
		var n int
		switch ls {
		case 1:
			n = int(b[0])
		case 2:
			n = int(binary.BigEndian.Uint16(b))
		default:
			n = int(binary.BigEndian.Uint32(b))
		}
		b = b[ls:]
		if n < 0 || n > len(b) {
			return
		}
		nal := b[:n]
		b = b[n:]
		if len(nal) == 0 || nal[0]&0x80 != 0 || (c.codec == codecHEVC && len(nal) < 2) {
			continue
		}
		fn(nal)
	}
}

func (c *trackConfig) isVCL(nal []byte) bool {
	if c.codec == codecHEVC {
		return (nal[0]>>1)&0x3f < 32 && nal[1]&7 != 0 // nuh_temporal_id_plus1 > 0
	}
	typ := nal[0] & 0x1f
	return typ >= 1 && typ <= 5
}

// isRef reports whether a VCL NAL unit may be referenced by a later
// picture: H.264 nal_ref_idc != 0; H.265 anything but a sub-layer
// non-reference picture (TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N, RSV_VCL_N*)
// of the highest temporal sub-layer.
func (c *trackConfig) isRef(nal []byte) bool {
	if c.codec == codecHEVC {
		typ := (nal[0] >> 1) & 0x3f
		tid := int(nal[1]&7) - 1
		return !(typ <= 14 && typ%2 == 0 && tid == c.maxTID)
	}
	return nal[0]&0x60 != 0
}

func (c *trackConfig) isDelimiter(nal []byte) bool {
	if c.codec == codecHEVC {
		typ := (nal[0] >> 1) & 0x3f
		return typ == 35 || typ == 36 || typ == 37 // AUD, EOS, EOB
	}
	typ := nal[0] & 0x1f
	return typ == 9 || typ == 10 || typ == 11 // AUD, end of sequence, end of stream
}
