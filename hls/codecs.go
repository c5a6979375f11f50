package hls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mbits "math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// trackCodec is what a track carries, as far as HLS is concerned.
type trackCodec int

const (
	tcOther trackCodec = iota
	tcAVC
	tcHEVC
	tcAAC
	// G.711 A-law or µ-law: Matroska A_MS/ACM whose WAVEFORMATEX says so
	// (any other ACM format is refused when the codec private data is
	// parsed).
	tcG711
)

func (c trackCodec) video() bool { return c == tcAVC || c == tcHEVC }

// trackCodecOf maps a Matroska CodecID to the codecs HLS and DASH can carry.
func trackCodecOf(t *mkv.Track) trackCodec {
	switch t.CodecID {
	case "V_MPEG4/ISO/AVC", "V_MPEG/ISO/AVC":
		return tcAVC
	case "V_MPEGH/ISO/HEVC":
		return tcHEVC
	case "A_AAC":
		return tcAAC
	case "A_MS/ACM":
		return tcG711
	}
	return tcOther
}

// CheckTracks reports whether a stream's tracks can be packaged in
// container c, as KVS requires: for HLS fMP4 an H.264 or H.265 track
// optionally followed by an AAC track, or one AAC track; for HLS MPEG-TS
// the same with H.264 only; for DASH (DASHFMP4) what HLS fMP4 allows and
// also an H.264 track followed by a G.711 (A-law or µ-law) track. It
// returns an error wrapping ErrUnsupportedMedia for other track layouts
// and for an A_MS/ACM track that is not G.711, ErrMissingCodecPrivate for
// a track without codec private data and ErrInvalidCodecPrivate for codec
// private data that does not parse.
func CheckTracks(h *fragments.Header, c Container) error {
	if h == nil || len(h.Tracks) == 0 {
		return fmt.Errorf("%w: no tracks", ErrUnsupportedMedia)
	}
	var want string
	switch c {
	case FMP4:
		want = "HLS fMP4 needs H.264 or H.265 (optionally followed by AAC), or AAC alone"
	case MPEGTS:
		want = "HLS MPEG-TS needs H.264 (optionally followed by AAC), or AAC alone"
	case DASHFMP4:
		want = "DASH needs H.264 (optionally followed by AAC or G.711), H.265 (optionally followed by AAC), or AAC alone"
	default:
		return fmt.Errorf("%w: %s", ErrUnsupportedMedia, containerName(c))
	}
	videoOK := func(k trackCodec) bool { return k == tcAVC || (k == tcHEVC && c != MPEGTS) }
	kinds := make([]trackCodec, len(h.Tracks))
	for i := range h.Tracks {
		kinds[i] = trackCodecOf(&h.Tracks[i])
	}
	ok := false
	switch len(kinds) {
	case 1:
		ok = videoOK(kinds[0]) || kinds[0] == tcAAC
	case 2:
		ok = videoOK(kinds[0]) && kinds[1] == tcAAC ||
			c == DASHFMP4 && kinds[0] == tcAVC && kinds[1] == tcG711
	}
	if !ok {
		ids := make([]string, len(h.Tracks))
		for i := range h.Tracks {
			ids[i] = h.Tracks[i].CodecID
		}
		return fmt.Errorf("%w: tracks [%s]; %s", ErrUnsupportedMedia, strings.Join(ids, ", "), want)
	}
	for i := range h.Tracks {
		if _, err := parseCodecPrivate(&h.Tracks[i]); err != nil {
			return err
		}
	}
	return nil
}

func containerName(c Container) string {
	switch c {
	case FMP4:
		return "fMP4"
	case MPEGTS:
		return "MPEG-TS"
	case DASHFMP4:
		return "DASH fMP4"
	}
	return "Container(" + strconv.Itoa(int(c)) + ")"
}

// StreamInfo describes a stream for a master playlist or a DASH manifest.
type StreamInfo struct {
	// Per track, RFC 6381 (avc1.64001e, hvc1.1.6.L93.B0, mp4a.40.2), or
	// for G.711 the 4CC of its sample entry (alaw, ulaw): RFC 6381 names
	// no other form for them, and it is what a DASH manifest's codecs
	// attribute holds (Chromium's MSE supports neither).
	Codecs        []string
	Width, Height int     // of the video track; 0 without one
	FrameRate     float64 // of the video track; 0 without one or if unknown
	// Of the audio track (the last one): the sampling rate (the fMP4
	// timescale) and the channel count of its sample entry; 0 without one.
	AudioSampleRate int
	AudioChannels   int
}

// Describe returns the codec strings of a stream's tracks, the size and
// frame rate of its video and the sampling rate and channels of its audio.
// The frame rate comes from the SPS timing information, else from the
// median duration of the samples of the first track, else from its
// DefaultDuration. samples may be nil. It does not judge the track layout
// (CheckTracks does): it describes G.711 tracks, which only DASH carries.
func Describe(h *fragments.Header, samples []fragments.Sample) (StreamInfo, error) {
	var si StreamInfo
	if h == nil || len(h.Tracks) == 0 {
		return si, fmt.Errorf("%w: no tracks", ErrUnsupportedMedia)
	}
	for i := range h.Tracks {
		t := &h.Tracks[i]
		p, err := parseCodecPrivate(t)
		if err != nil {
			return StreamInfo{}, err
		}
		si.Codecs = append(si.Codecs, p.codecString())
		if !p.kind.video() {
			if si.AudioSampleRate, err = audioRate(t, p); err != nil {
				return StreamInfo{}, err
			}
			si.AudioChannels = audioChannels(t, p)
		}
		if i != 0 || !p.kind.video() {
			continue
		}
		si.Width, si.Height, si.FrameRate = p.width, p.height, p.fps
		if si.Width == 0 || si.Height == 0 {
			si.Width, si.Height = int(t.Width), int(t.Height)
		}
		if si.FrameRate == 0 {
			var durs []int64
			for _, s := range samples {
				if s.Track == 0 && s.Dur > 0 {
					durs = append(durs, s.Dur)
				}
			}
			if len(durs) > 0 {
				slices.Sort(durs)
				si.FrameRate = 1e9 / float64(durs[len(durs)/2])
			} else if t.DefaultDuration > 0 {
				si.FrameRate = 1e9 / float64(t.DefaultDuration)
			}
		}
	}
	return si, nil
}

// codecConfig is a track's parsed codec private data.
type codecConfig struct {
	kind trackCodec
	avc  *avcDecConfig
	hevc *hevcDecConfig
	asc  *aac.AudioSpecificConfigHeader
	g711 *waveFormat
	// From the first SPS (0 if it has no such information).
	width, height int
	fps           float64
}

// parseCodecPrivate parses the codec private data of a track HLS can carry.
func parseCodecPrivate(t *mkv.Track) (*codecConfig, error) {
	p := &codecConfig{kind: trackCodecOf(t)}
	if p.kind == tcOther {
		return nil, fmt.Errorf("%w: track %d codec %q", ErrUnsupportedMedia, t.Number, t.CodecID)
	}
	if len(t.CodecPrivate) == 0 {
		return nil, fmt.Errorf("%w: track %d (%s)", ErrMissingCodecPrivate, t.Number, t.CodecID)
	}
	invalid := func(err error) error {
		return fmt.Errorf("%w: track %d (%s): %v", ErrInvalidCodecPrivate, t.Number, t.CodecID, err)
	}
	switch p.kind {
	case tcAVC:
		c, err := parseAVCDecConfig(t.CodecPrivate)
		if err != nil {
			return nil, invalid(err)
		}
		sps, err := ParseAVCSPS(c.sps[0])
		if err != nil {
			return nil, invalid(fmt.Errorf("SPS: %w", err))
		}
		p.avc, p.width, p.height = c, int(sps.Width), int(sps.Height)
		if v := sps.VUI; v != nil && v.TimingInfoPresentFlag && v.NumUnitsInTick > 0 && v.TimeScale > 0 {
			// H.264 counts field ticks: two per frame (E.2.1).
			p.fps = float64(v.TimeScale) / float64(2*v.NumUnitsInTick)
		}
	case tcHEVC:
		c, err := parseHEVCDecConfig(t.CodecPrivate)
		if err != nil {
			return nil, invalid(err)
		}
		sps, err := ParseHEVCSPS(c.sps[0])
		if err != nil {
			return nil, invalid(fmt.Errorf("SPS: %w", err))
		}
		w, h := sps.ImageSize()
		p.hevc, p.width, p.height = c, int(w), int(h)
		if v := sps.VUI; v != nil && v.TimingInfoPresentFlag && v.NumUnitsInTick > 0 && v.TimeScale > 0 {
			p.fps = float64(v.TimeScale) / float64(v.NumUnitsInTick)
		}
	case tcAAC:
		asc, err := aac.DecodeAudioSpecificConfigHeader(bytes.NewReader(t.CodecPrivate))
		if err != nil {
			return nil, invalid(err)
		}
		if asc.SamplingFrequency <= 0 {
			return nil, invalid(errors.New("sampling frequency 0"))
		}
		p.asc = asc
	case tcG711:
		wf, err := parseWaveFormat(t.CodecPrivate)
		if err != nil {
			return nil, invalid(err)
		}
		if wf.formatTag != waveFormatALaw && wf.formatTag != waveFormatMuLaw {
			return nil, fmt.Errorf("%w: track %d (%s): WAVE format tag %#04x is not G.711 A-law (6) or µ-law (7)", ErrUnsupportedMedia, t.Number, t.CodecID, wf.formatTag)
		}
		p.g711 = wf
	}
	return p, nil
}

// WAVE format tags of G.711 (RFC 2361).
const (
	waveFormatALaw  = 6
	waveFormatMuLaw = 7
)

// waveFormat is the part of a WAVEFORMATEX that matters here: the codec
// private data of a Matroska A_MS/ACM track (little-endian wFormatTag,
// nChannels, nSamplesPerSec, nAvgBytesPerSec, nBlockAlign, wBitsPerSample,
// cbSize and cbSize bytes). nAvgBytesPerSec, nBlockAlign and
// wBitsPerSample are not checked: G.711 is 8 bits per sample whatever they
// say, and the KVS producer SDK's mkvgenGeneratePcmCpd leaves
// wBitsPerSample 0 and sets nAvgBytesPerSec to an eighth of the byte rate.
type waveFormat struct {
	formatTag  uint16
	channels   uint16
	sampleRate uint32
}

func parseWaveFormat(b []byte) (*waveFormat, error) {
	// 16 bytes is a WAVEFORMAT/PCMWAVEFORMAT, which Matroska muxers also
	// write; with cbSize, the extra bytes it counts must be there.
	if len(b) < 16 {
		return nil, fmt.Errorf("WAVEFORMATEX of %d bytes", len(b))
	}
	if len(b) >= 18 {
		if n := int(binary.LittleEndian.Uint16(b[16:])); len(b) < 18+n {
			return nil, fmt.Errorf("WAVEFORMATEX cbSize %d, %d bytes follow", n, len(b)-18)
		}
	}
	wf := &waveFormat{
		formatTag:  binary.LittleEndian.Uint16(b),
		channels:   binary.LittleEndian.Uint16(b[2:]),
		sampleRate: binary.LittleEndian.Uint32(b[4:]),
	}
	if wf.channels == 0 || wf.sampleRate == 0 {
		return nil, fmt.Errorf("WAVEFORMATEX of %d channels at %d Hz", wf.channels, wf.sampleRate)
	}
	return wf, nil
}

// audioRate is the sampling rate of an audio track, its fMP4 timescale:
// for AAC the track's SamplingFrequency if it is a whole number, else the
// AudioSpecificConfig's; for G.711 the WAVEFORMATEX's.
func audioRate(t *mkv.Track, p *codecConfig) (int, error) {
	switch p.kind {
	case tcAAC:
		if f := t.SamplingFreq; f >= 1 && f <= math.MaxUint32 && f == math.Trunc(f) {
			return int(f), nil
		}
		return p.asc.SamplingFrequency, nil
	case tcG711:
		return int(p.g711.sampleRate), nil
	}
	return 0, fmt.Errorf("%w: track %d codec %q is not audio", ErrUnsupportedMedia, t.Number, t.CodecID)
}

// audioChannels is the channel count of an audio track's sample entry: for
// AAC the AudioSpecificConfig's channel configuration (7 is 7.1), else
// the track's Channels, else 2; for G.711 the WAVEFORMATEX's.
func audioChannels(t *mkv.Track, p *codecConfig) int {
	switch p.kind {
	case tcAAC:
		ch := int(p.asc.ChannelConfiguration)
		switch {
		case ch == 7:
			ch = 8
		case ch == 0 || ch > 7:
			ch = int(min(t.Channels, math.MaxInt32))
		}
		if ch <= 0 || ch > math.MaxUint16 {
			ch = 2
		}
		return ch
	case tcG711:
		return int(p.g711.channels)
	}
	return 0
}

// parseSafely runs a parser of untrusted bytes, turning a panic into an error.
func parseSafely[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser panic: %v", r)
		}
	}()
	return f()
}

func (p *codecConfig) codecString() string {
	switch p.kind {
	case tcAVC:
		return fmt.Sprintf("avc1.%02x%02x%02x", p.avc.profile, p.avc.compat, p.avc.level)
	case tcHEVC:
		return p.hevc.codecString("hvc1")
	case tcAAC:
		return "mp4a.40." + strconv.Itoa(int(p.asc.ObjectType))
	case tcG711:
		return p.g711.entry()
	}
	return ""
}

// entry is the 4CC of the MP4 sample entry of G.711 (ISO/IEC 14496-12
// 12.2.3 AudioSampleEntry; the QuickTime names, also those of the MP4
// registration authority and of ffmpeg's MP4 demuxer).
func (wf *waveFormat) entry() string {
	if wf.formatTag == waveFormatALaw {
		return "alaw"
	}
	return "ulaw"
}

// avcDecConfig is an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
// It is parsed here rather than by mp4ff, which refuses NAL length sizes
// other than 4 that MP4 allows.
type avcDecConfig struct {
	profile, compat, level byte
	lengthSize             int
	sps, pps               [][]byte
}

func parseAVCDecConfig(b []byte) (*avcDecConfig, error) {
	if len(b) < 7 {
		return nil, fmt.Errorf("avcC of %d bytes", len(b))
	}
	if b[0] != 1 {
		return nil, fmt.Errorf("avcC version %d", b[0])
	}
	c := &avcDecConfig{profile: b[1], compat: b[2], level: b[3], lengthSize: int(b[4]&3) + 1}
	if c.lengthSize == 3 {
		return nil, errors.New("avcC NAL length size 3")
	}
	r := b[5:]
	var err error
	if c.sps, r, err = readNALList(r, int(r[0]&0x1f), 1); err != nil {
		return nil, fmt.Errorf("avcC SPS: %w", err)
	}
	if len(r) < 1 {
		return nil, errors.New("avcC truncated before its PPS")
	}
	if c.pps, _, err = readNALList(r, int(r[0]), 1); err != nil {
		return nil, fmt.Errorf("avcC PPS: %w", err)
	}
	if len(c.sps) == 0 || len(c.pps) == 0 {
		return nil, fmt.Errorf("avcC with %d SPS and %d PPS", len(c.sps), len(c.pps))
	}
	if avc.GetNaluType(c.sps[0][0]) != avc.NALU_SPS {
		return nil, errors.New("avcC SPS is not an SPS NAL unit")
	}
	return c, nil
}

// readNALList reads n 16-bit-length-prefixed NAL units after a count of skip
// bytes and returns them and the rest.
func readNALList(b []byte, n, skip int) ([][]byte, []byte, error) {
	b = b[skip:]
	var out [][]byte
	for range n {
		if len(b) < 2 {
			return nil, nil, errors.New("truncated")
		}
		l := int(binary.BigEndian.Uint16(b))
		if l == 0 || len(b) < 2+l {
			return nil, nil, fmt.Errorf("NAL unit of %d bytes (%d left)", l, len(b)-2)
		}
		out = append(out, b[2:2+l])
		b = b[2+l:]
	}
	return out, b, nil
}

// hevcDecConfig is an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1).
type hevcDecConfig struct {
	profileSpace byte
	tier         bool
	profileIDC   byte
	compat       uint32
	constraints  uint64 // 48 bits
	level        byte
	lengthSize   int
	vps, sps     [][]byte
	pps          [][]byte
}

func parseHEVCDecConfig(b []byte) (*hevcDecConfig, error) {
	if len(b) < 23 {
		return nil, fmt.Errorf("hvcC of %d bytes", len(b))
	}
	if b[0] != 1 {
		return nil, fmt.Errorf("hvcC version %d", b[0])
	}
	c := &hevcDecConfig{
		profileSpace: b[1] >> 6,
		tier:         b[1]&0x20 != 0,
		profileIDC:   b[1] & 0x1f,
		compat:       binary.BigEndian.Uint32(b[2:]),
		constraints:  uint64(binary.BigEndian.Uint32(b[6:]))<<16 | uint64(binary.BigEndian.Uint16(b[10:])),
		level:        b[12],
		lengthSize:   int(b[21]&3) + 1,
	}
	if c.lengthSize == 3 {
		return nil, errors.New("hvcC NAL length size 3")
	}
	n := int(b[22])
	r := b[23:]
	for i := range n {
		if len(r) < 3 {
			return nil, fmt.Errorf("hvcC array %d truncated", i)
		}
		typ := hevc.NaluType(r[0] & 0x3f)
		nalus, rest, err := readNALList(r, int(binary.BigEndian.Uint16(r[1:])), 3)
		if err != nil {
			return nil, fmt.Errorf("hvcC array %d (%s): %w", i, typ, err)
		}
		r = rest
		switch typ {
		case hevc.NALU_VPS:
			c.vps = append(c.vps, nalus...)
		case hevc.NALU_SPS:
			c.sps = append(c.sps, nalus...)
		case hevc.NALU_PPS:
			c.pps = append(c.pps, nalus...)
		}
	}
	if len(c.vps) == 0 || len(c.sps) == 0 || len(c.pps) == 0 {
		return nil, fmt.Errorf("hvcC with %d VPS, %d SPS and %d PPS", len(c.vps), len(c.sps), len(c.pps))
	}
	if len(c.sps[0]) < 2 || hevc.GetNaluType(c.sps[0][0]) != hevc.NALU_SPS {
		return nil, errors.New("hvcC SPS is not an SPS NAL unit")
	}
	return c, nil
}

// codecString is the RFC 6381 codecs parameter of ISO/IEC 14496-15 Annex
// E.3: profile space and idc, the compatibility flags bit-reversed in hex,
// tier and level, then the constraint bytes without trailing zero bytes.
func (c *hevcDecConfig) codecString(entry string) string {
	var sb strings.Builder
	sb.WriteString(entry)
	sb.WriteByte('.')
	if c.profileSpace > 0 {
		sb.WriteByte("ABC"[c.profileSpace-1])
	}
	sb.WriteString(strconv.Itoa(int(c.profileIDC)))
	fmt.Fprintf(&sb, ".%X.", mbits.Reverse32(c.compat))
	if c.tier {
		sb.WriteByte('H')
	} else {
		sb.WriteByte('L')
	}
	sb.WriteString(strconv.Itoa(int(c.level)))
	n := 6
	for n > 0 && (c.constraints>>(8*(6-n)))&0xff == 0 {
		n--
	}
	for i := range n {
		fmt.Fprintf(&sb, ".%X", (c.constraints>>(8*(5-i)))&0xff)
	}
	return sb.String()
}
