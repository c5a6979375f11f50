package clip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/hls"
)

// kind is what a clip track carries.
type kind uint8

const (
	kindAVC kind = iota + 1
	kindHEVC
	kindAAC
	kindALaw
)

func (k kind) video() bool { return k == kindAVC || k == kindHEVC }

// trackInfo is what the moov needs of one track besides its samples.
type trackInfo struct {
	kind          kind
	codec         string // RFC 6381 (avc1.64001e, mp4a.40.2) or alaw
	timescale     uint32 // 90 kHz video, the sampling rate audio
	width, height int    // video
	channels      int    // audio
	// stsd is the whole stsd box (avc1/hvc1 with the stream's avcC/hvcC,
	// mp4a with its esds, alaw), exactly as hls.WriteMP4Init builds it.
	stsd []byte
}

const requirement = "GetClip needs H.264 or H.265 video, optionally followed by AAC audio, or H.264 followed by G.711 A-law audio"

// CheckTracks reports whether a track header can be packaged as a clip,
// as the GetClip track requirements say: track 1 H.264 or H.265 video,
// optionally followed by track 2 AAC audio, or H.264 followed by G.711
// A-law audio (A_MS/ACM). Errors wrap hls.ErrUnsupportedMedia for other
// layouts (G.711 µ-law included), hls.ErrMissingCodecPrivate for a track
// without codec private data and hls.ErrInvalidCodecPrivate for codec
// private data that does not parse.
func CheckTracks(h *fragments.Header) error {
	_, err := trackInfos(h)
	return err
}

// trackInfos checks a header (CheckTracks) and describes its tracks.
func trackInfos(h *fragments.Header) ([]trackInfo, error) {
	if h == nil || len(h.Tracks) == 0 {
		return nil, fmt.Errorf("%w: no tracks; %s", hls.ErrUnsupportedMedia, requirement)
	}
	ids := make([]string, len(h.Tracks))
	for i := range h.Tracks {
		ids[i] = h.Tracks[i].CodecID
	}
	unsupported := func(why string) error {
		return fmt.Errorf("%w: tracks [%s]%s; %s", hls.ErrUnsupportedMedia, strings.Join(ids, ", "), why, requirement)
	}
	// The layout by codec ID first, so that the message speaks of GetClip
	// rather than of the DASH rules used below.
	switch ids[0] {
	case "V_MPEG4/ISO/AVC", "V_MPEG/ISO/AVC", "V_MPEGH/ISO/HEVC":
	default:
		return nil, unsupported("")
	}
	switch {
	case len(ids) == 1:
	case len(ids) == 2 && ids[1] == "A_AAC":
	case len(ids) == 2 && ids[1] == "A_MS/ACM" && ids[0] != "V_MPEGH/ISO/HEVC":
	default:
		return nil, unsupported("")
	}
	// DASH's rules are a superset of GetClip's (they also allow AAC alone
	// and G.711 µ-law): what is left for them is the codec private data.
	if err := hls.CheckTracks(h, hls.DASHFMP4); err != nil {
		return nil, err
	}
	si, err := hls.Describe(h, nil)
	if err != nil {
		return nil, err
	}
	infos := make([]trackInfo, len(h.Tracks))
	for i := range h.Tracks {
		ti := &infos[i]
		ti.codec = si.Codecs[i]
		switch {
		case strings.HasPrefix(ti.codec, "avc1."):
			ti.kind = kindAVC
		case strings.HasPrefix(ti.codec, "hvc1."):
			ti.kind = kindHEVC
		case strings.HasPrefix(ti.codec, "mp4a."):
			ti.kind = kindAAC
		case ti.codec == "alaw":
			ti.kind = kindALaw
		default: // ulaw
			return nil, unsupported(fmt.Sprintf(" (track %d is G.711 %s)", i+1, ti.codec))
		}
		if ti.kind.video() {
			ti.width, ti.height = si.Width, si.Height
		} else {
			ti.channels = si.AudioChannels
		}
		// The sample description and the timescale as the fMP4 init
		// segment of the track has them.
		var init bytes.Buffer
		if err := hls.WriteMP4Init(&init, h, i); err != nil {
			return nil, err
		}
		if ti.stsd, ti.timescale, err = fromInit(init.Bytes()); err != nil {
			return nil, fmt.Errorf("clip: track %d: %w", i+1, err)
		}
		if ti.kind == kindALaw && ti.channels <= 0 {
			return nil, fmt.Errorf("%w: track %d: G.711 of %d channels", hls.ErrInvalidCodecPrivate, i+1, ti.channels)
		}
	}
	return infos, nil
}

// fromInit takes the stsd box and the mdhd timescale out of an fMP4 init
// segment of one track.
func fromInit(b []byte) (stsd []byte, timescale uint32, err error) {
	mdia := findBox(findBox(findBox(b, "moov"), "trak"), "mdia")
	mdhd := findBox(mdia, "mdhd")
	stsd = findBoxWhole(findBox(findBox(mdia, "minf"), "stbl"), "stsd")
	if len(mdhd) < 24 || stsd == nil {
		return nil, 0, errors.New("init segment without mdhd or stsd")
	}
	// mdhd: version and flags, then creation and modification times of 4
	// (version 0) or 8 bytes (version 1), then the timescale.
	off := 4 + 8
	if mdhd[0] == 1 {
		off = 4 + 16
	}
	timescale = binary.BigEndian.Uint32(mdhd[off:])
	if timescale == 0 {
		return nil, 0, errors.New("timescale 0")
	}
	return stsd, timescale, nil
}

// findBox returns the body of the first box of type typ in b (a sequence
// of boxes), or nil.
func findBox(b []byte, typ string) []byte {
	if w := findBoxWhole(b, typ); w != nil {
		return w[8:]
	}
	return nil
}

// findBoxWhole returns the first box of type typ in b, header included.
func findBoxWhole(b []byte, typ string) []byte {
	for len(b) >= 8 {
		size := int(binary.BigEndian.Uint32(b))
		if size < 8 || size > len(b) {
			return nil
		}
		if string(b[4:8]) == typ {
			return b[:size]
		}
		b = b[size:]
	}
	return nil
}

// sameTracks reports whether two headers' tracks package identically:
// same sample descriptions and timescales. A producer that reconnects
// with other codec private data does not; a header that differs in
// nothing a clip carries (a track name, say) does.
func sameTracks(a, b []trackInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].kind != b[i].kind || a[i].timescale != b[i].timescale || !bytes.Equal(a[i].stsd, b[i].stsd) {
			return false
		}
	}
	return true
}
