package hls

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/kvsgate/kvsgate/fragments"
)

// MPEG-TS segments, as KVS's getTSFragment.ts serves them.
//
// The packetizer is written here rather than taken from mediacommon's
// pkg/formats/mpegts: that Writer muxes through go-astits, which keeps the
// continuity counters itself (every PID from 0 in each muxer), decides the
// packetization (packets filled, the last one stuffed) and when to repeat
// PAT/PMT, and exposes none of it, so it can neither number PAT/PMT from
// the fragment's ordinal nor pad a PID's packet count to a multiple of 16
// (see WriteTS); go-astits is not in go.sum either. mediacommon's codec
// helpers (h264.AVCC, h264.AnnexB, mpeg4audio.ADTSPackets) allocate per NAL
// unit or frame and know only 4-byte NAL lengths; here start codes and ADTS
// headers are written in place and an access unit's bytes are copied once,
// from the read window straight into the TS packets.

const (
	tsPacketSize = 188
	tsPayload    = 184 // bytes after the 4-byte packet header
	tsPATPID     = 0
	tsPMTPID     = 0x1000
	tsFirstPID   = 0x100 // track i has PID 0x100+i
	// tsPCRDelay is how far (90 kHz) the PCR carried with an access unit
	// runs behind its decode time: the unit arrives 100 ms before it is due.
	tsPCRDelay = 9000
	tsMask33   = 1<<33 - 1
	// tsBufPackets is the output buffer (packets per Write).
	tsBufPackets = 348
)

var (
	tsStartCode = []byte{0, 0, 0, 1}
	tsAUD       = []byte{0, 0, 0, 1, 9, 0xf0} // access unit delimiter, primary_pic_type 7 (any)
)

// WriteTS writes s as one MPEG-TS segment: PAT and PMT, then one PES
// packet per access unit of every track in storage order. H.264 tracks
// (CodecID V_MPEG4/ISO/AVC, stream type 0x1B) become Annex B with an access
// unit delimiter first in every access unit and the avcC's SPS and PPS in
// front of every key frame that does not carry both; AAC tracks (A_AAC,
// stream type 0x0F) get an ADTS header per frame built from the
// AudioSpecificConfig. Track i has PID 0x100+i, the PMT PID 0x1000; the PCR
// is on the first video track (else the first audio track), in the first
// packet of each of its PES packets, 100 ms behind the unit's DTS. PTS and
// DTS (DTS only where it differs) are s.BaseNS+Sample.PTS/DTS in 90 kHz,
// rounded, modulo 2^33, so the same fragment has the same timestamps in
// every session and consecutive fragments are contiguous.
//
// Continuity counters come from the segment alone, yet run on without a
// jump from one segment to the next in ordinal order (no server state):
//
//   - PAT and PMT are written once per segment, each with CC = Sequence
//     mod 16, so consecutive ordinals have consecutive counters.
//   - Every elementary PID starts at CC 0 and its packet count in the
//     segment is made a multiple of 16, so it ends at CC 15 and the next
//     segment's 0 follows. The PID's last PES packet is cut into up to 15
//     more TS packets than it needs, each carrying at least one payload
//     byte behind adaptation-field stuffing (legal; CC counts only packets
//     with payload; under 3 kB per PID and segment). That PES packet keeps
//     its whole header in its first TS packet unless it is too short for
//     that (an access unit of a few bytes): then its header straddles TS
//     packets, which ISO 13818-1 allows. A PES packet has at least 20 bytes,
//     so the padding always fits. A PID without access units in the
//     segment has no packets (0 is a multiple of 16).
//
// Segments taken out of ordinal order (a gap in the fragment list) show a
// PAT/PMT counter jump there, as any discontinuity would.
//
// The samples are read in storage order through a window of
// max(256 kB, largest sample) bytes, one ReadAt per window (one per
// segment for fragments under 256 kB): memory is bounded by one fragment,
// and the bytes are copied once more, into the TS packets (written 64 kB
// at a time). Tracks other than H.264 and AAC, or codec private data ADTS
// cannot express, fail with ErrUnsupportedMedia; missing or malformed avcC
// or AudioSpecificConfig with ErrMissingCodecPrivate or
// ErrInvalidCodecPrivate. Those and a sample table that does not fit the
// payload fail before anything is written, and so do read errors of the
// fragment's first window. A frame whose NAL unit lengths overrun it is cut
// after its last whole NAL unit rather than failing a segment half written.
func WriteTS(w io.Writer, s *Segment) error {
	m := tsMuxPool.Get().(*tsMux)
	defer m.release()
	if err := m.setTracks(s); err != nil {
		return err
	}
	if err := m.check(s); err != nil {
		return err
	}
	m.w = w
	m.writeTables(s.Sequence)
	if s.Meta != nil {
		for i := range s.Meta.Samples {
			if err := m.writeSample(s, i); err != nil {
				return err
			}
		}
	}
	return m.flush()
}

// tsWindow is the least the payload is read by: few reads per fragment,
// and small enough to stay in cache until its bytes are packetized.
const tsWindow = 256 << 10

// tsTrack is one track's TS stream.
type tsTrack struct {
	pid        uint16
	streamType byte
	streamID   byte
	video      bool
	lenSize    int    // H.264: NAL unit length size
	params     []byte // H.264: the avcC's SPS and PPS in Annex B
	adts       [7]byte
	// in the segment
	last    int // its last sample, -1 if none
	packets int
	cc      byte
}

// tsMux holds one segment's state; pooled, so the read window is not
// allocated and zeroed per segment.
type tsMux struct {
	w      io.Writer
	tracks []tsTrack
	pcrTrk int
	// the read window: payload bytes [winOff, winOff+len(win)), within the
	// samples' span [0, end)
	win    []byte
	winOff int64
	end    int64
	pieces [][]byte // of the PES packet being written
	pesHdr [19]byte
	adts   [7]byte
	out    []byte
	outN   int
	err    error
}

var tsMuxPool = sync.Pool{New: func() any { return &tsMux{out: make([]byte, tsBufPackets*tsPacketSize)} }}

func (m *tsMux) release() {
	m.w, m.err, m.outN = nil, nil, 0
	clear(m.pieces) // keep neither the window nor the params alive through it
	m.pieces = m.pieces[:0]
	m.tracks = m.tracks[:0]
	if cap(m.win) > 4*tsWindow { // keep ordinary windows, not one a huge frame grew
		m.win = nil
	}
	m.win = m.win[:0]
	tsMuxPool.Put(m)
}

// setTracks checks the header's tracks and prepares their streams.
func (m *tsMux) setTracks(s *Segment) error {
	if s.Header == nil || len(s.Header.Tracks) == 0 {
		return fmt.Errorf("%w: no tracks", ErrUnsupportedMedia)
	}
	if len(s.Header.Tracks) > 16 {
		return fmt.Errorf("%w: %d tracks", ErrUnsupportedMedia, len(s.Header.Tracks))
	}
	m.pcrTrk = -1
	var videos, audios byte
	firstAudio := -1
	for i := range s.Header.Tracks {
		tr := &s.Header.Tracks[i]
		t := tsTrack{pid: uint16(tsFirstPID + i), last: -1}
		switch {
		case tr.CodecID == "V_MPEG4/ISO/AVC":
			if len(tr.CodecPrivate) == 0 {
				return fmt.Errorf("%w: track %d (%s)", ErrMissingCodecPrivate, tr.Number, tr.CodecID)
			}
			lenSize, params, err := tsParseAVCC(tr.CodecPrivate)
			if err != nil {
				return fmt.Errorf("%w: track %d avcC: %v", ErrInvalidCodecPrivate, tr.Number, err)
			}
			t.streamType, t.streamID, t.video, t.lenSize, t.params = 0x1b, 0xe0+videos, true, lenSize, params
			videos++
			if m.pcrTrk < 0 {
				m.pcrTrk = i
			}
		case strings.HasPrefix(tr.CodecID, "A_AAC"):
			if len(tr.CodecPrivate) == 0 {
				return fmt.Errorf("%w: track %d (%s)", ErrMissingCodecPrivate, tr.Number, tr.CodecID)
			}
			adts, err := tsADTSHeader(tr.CodecPrivate)
			if err != nil {
				return fmt.Errorf("track %d AudioSpecificConfig: %w", tr.Number, err)
			}
			t.streamType, t.streamID, t.adts = 0x0f, 0xc0+audios, adts
			audios++
			if firstAudio < 0 {
				firstAudio = i
			}
		default:
			return fmt.Errorf("%w: track %d codec %q in an MPEG-TS segment (H.264 and AAC only)", ErrUnsupportedMedia, tr.Number, tr.CodecID)
		}
		m.tracks = append(m.tracks, t)
	}
	if m.pcrTrk < 0 {
		m.pcrTrk = firstAudio
	}
	return nil
}

// check checks the sample table against the tracks and the payload and
// reads the first window.
func (m *tsMux) check(s *Segment) error {
	m.win, m.winOff, m.end = m.win[:0], 0, 0
	if s.Meta == nil || len(s.Meta.Samples) == 0 {
		return nil
	}
	for i := range s.Meta.Samples {
		smp := &s.Meta.Samples[i]
		if smp.Offset < 0 || smp.Size < 0 || smp.Size > s.Size || smp.Offset > s.Size-smp.Size {
			return fmt.Errorf("hls: sample %d: bytes %d+%d outside the %d-byte payload", i, smp.Offset, smp.Size, s.Size)
		}
		if int(smp.Track) >= len(m.tracks) {
			return fmt.Errorf("hls: sample %d: no track %d", i, smp.Track)
		}
		t := &m.tracks[smp.Track]
		if !t.video && smp.Size > 0x1fff-7 {
			return fmt.Errorf("hls: sample %d: AAC frame of %d bytes is too long for ADTS", i, smp.Size)
		}
		t.last = i
		m.end = max(m.end, smp.Offset+smp.Size)
	}
	_, err := m.sample(s, &s.Meta.Samples[0])
	return err
}

// sample returns a sample's bytes, reading the window on from it if it is
// not in the window.
func (m *tsMux) sample(s *Segment, smp *fragments.Sample) ([]byte, error) {
	if smp.Offset < m.winOff || smp.Offset+smp.Size > m.winOff+int64(len(m.win)) {
		n := int(min(max(tsWindow, smp.Size), m.end-smp.Offset))
		if cap(m.win) < n {
			m.win = make([]byte, n)
		}
		m.win, m.winOff = m.win[:n], smp.Offset
		if k, err := s.Payload.ReadAt(m.win, smp.Offset); k < n {
			m.win = m.win[:0]
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("hls: reading fragment payload: %w", err)
		}
	}
	return m.win[smp.Offset-m.winOff:][:smp.Size], nil
}

// writeSample writes sample i as one PES packet.
func (m *tsMux) writeSample(s *Segment, i int) error {
	smp := &s.Meta.Samples[i]
	b, err := m.sample(s, smp)
	if err != nil {
		return err
	}
	t := &m.tracks[smp.Track]
	m.pieces = append(m.pieces[:0], nil) // the PES header, once the size is known
	var es int
	if t.video {
		es = m.videoPieces(t, b, smp.Key)
	} else {
		es = m.audioPieces(b, &t.adts)
	}
	pts, dts := tsTicks(s.BaseNS+smp.PTS), tsTicks(s.BaseNS+smp.DTS)
	hdr := m.pesHeader(t, es, pts, dts)
	m.pieces[0] = hdr
	p := tsPES{size: len(hdr) + es, key: t.video && smp.Key}
	if int(smp.Track) == m.pcrTrk {
		p.pcr, p.pcrBase = true, (dts-tsPCRDelay)&tsMask33
	}
	k := tsMinPackets(p.size, p.firstCap())
	if i == t.last { // pad the PID to a multiple of 16 packets
		k += (16 - (t.packets+k)%16) % 16
	}
	t.packets += k
	m.writePES(t, &p, k)
	return m.err
}

// videoPieces sets the pieces of one H.264 access unit in Annex B: an AUD
// (unless the unit starts with one), the avcC's SPS and PPS before a key
// frame that lacks them, then the NAL units. With 4-byte lengths the
// lengths are overwritten with start codes in the window, so the unit
// stays one piece.
func (m *tsMux) videoPieces(t *tsTrack, b []byte, key bool) int {
	var hasSPS, hasPPS, empty bool
	first, firstLen := -1, 0 // the first NAL unit's type and length
	ls := t.lenSize
	off := 0
	for off < len(b) {
		if len(b)-off < ls {
			break
		}
		n := tsNALLen(b[off:], ls)
		if n > len(b)-off-ls {
			break
		}
		off += ls
		if n == 0 {
			empty = true
			continue
		}
		typ := int(b[off] & 0x1f)
		if first < 0 {
			first, firstLen = typ, n
		}
		hasSPS = hasSPS || typ == 7
		hasPPS = hasPPS || typ == 8
		off += n
	}
	b = b[:off] // a malformed tail is dropped
	params := t.params
	if !key || hasSPS && hasPPS {
		params = nil
	}
	es := 0
	if first != 9 {
		m.pieces = append(m.pieces, tsAUD)
		es += len(tsAUD)
		if len(params) > 0 {
			m.pieces = append(m.pieces, params)
			es += len(params)
		}
	}
	if ls == 4 && !empty {
		// In place: each 4-byte length becomes 00 00 00 01.
		for off := 0; off < len(b); {
			n := tsNALLen(b[off:], 4)
			copy(b[off:], tsStartCode)
			off += 4 + n
		}
		if first == 9 {
			aud := 4 + firstLen
			m.pieces = append(m.pieces, b[:aud])
			if len(params) > 0 {
				m.pieces = append(m.pieces, params)
				es += len(params)
			}
			b = b[aud:]
			es += aud
		}
		m.pieces = append(m.pieces, b)
		return es + len(b)
	}
	for off, i := 0, 0; off < len(b); {
		n := tsNALLen(b[off:], ls)
		off += ls
		if n == 0 {
			continue
		}
		m.pieces = append(m.pieces, tsStartCode, b[off:off+n])
		es += 4 + n
		off += n
		if i == 0 && first == 9 && len(params) > 0 {
			m.pieces = append(m.pieces, params)
			es += len(params)
		}
		i++
	}
	return es
}

// audioPieces sets the pieces of one AAC frame (at most 8184 bytes): an
// ADTS header and the raw frame.
func (m *tsMux) audioPieces(b []byte, adts *[7]byte) int {
	n := 7 + len(b)
	m.adts = *adts
	m.adts[3] |= byte(n >> 11)
	m.adts[4] = byte(n >> 3)
	m.adts[5] = byte(n<<5) | 0x1f
	m.pieces = append(m.pieces, m.adts[:], b)
	return n
}

// pesHeader builds the PES header of es bytes.
func (m *tsMux) pesHeader(t *tsTrack, es int, pts, dts uint64) []byte {
	hdl, flags := 5, byte(0x80)
	if dts != pts {
		hdl, flags = 10, 0xc0
	}
	plen := 3 + hdl + es
	if plen > 0xffff {
		plen = 0 // unbounded, as video may be (audio is at most 8191+13 bytes)
	}
	// '10', not scrambled, data_alignment_indicator: the unit starts here.
	h := append(m.pesHdr[:0], 0, 0, 1, t.streamID, byte(plen>>8), byte(plen), 0x84, flags, byte(hdl))
	if dts != pts {
		h = tsAppendTimestamp(h, 3, pts)
		h = tsAppendTimestamp(h, 1, dts)
	} else {
		h = tsAppendTimestamp(h, 2, pts)
	}
	return h
}

// tsPES is the first TS packet's needs of a PES packet.
type tsPES struct {
	size    int  // PES header plus elementary stream bytes
	pcr     bool // carries a PCR in its first TS packet
	key     bool // random_access_indicator
	pcrBase uint64
}

// firstCap is the payload room of the PES packet's first TS packet.
func (p *tsPES) firstCap() int {
	switch {
	case p.pcr:
		return tsPayload - 8 // adaptation field length, flags, PCR
	case p.key:
		return tsPayload - 2 // adaptation field length, flags
	}
	return tsPayload
}

// tsMinPackets is the fewest TS packets that carry a PES packet.
func tsMinPackets(size, first int) int {
	if size <= first {
		return 1
	}
	return 1 + (size-first+tsPayload-1)/tsPayload
}

var tsStuffing = [tsPayload]byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
}

// writePES writes the PES packet in m.pieces as k TS packets: full packets
// first, then (when padded) packets of one payload byte, each packet's
// shortfall taken up by adaptation-field stuffing.
func (m *tsMux) writePES(t *tsTrack, p *tsPES, k int) {
	pieces, off := m.pieces, 0
	rem := p.size
	hdr := uint32(0x47<<24) | uint32(t.pid)<<8
	cc := uint32(t.cc)
	out, pos := m.out, m.outN*tsPacketSize
	for j := 0; j < k; j++ {
		if pos == len(out) {
			m.outN = tsBufPackets
			m.flush()
			pos = 0
		}
		if j > 0 {
			// The bulk of a large unit: a run of full packets from one piece.
			if full := rem - (k - j - 1) - tsPayload; full >= 0 {
				full = min(full/(tsPayload-1)+1, (len(pieces[0])-off)/tsPayload, (len(out)-pos)/tsPacketSize)
				src := pieces[0][off : off+full*tsPayload]
				for len(src) > 0 {
					pkt := out[pos : pos+tsPacketSize : pos+tsPacketSize]
					binary.BigEndian.PutUint32(pkt, hdr|cc|0x10)
					cc = (cc + 1) & 15
					copy(pkt[4:], src[:tsPayload])
					src = src[tsPayload:]
					pos += tsPacketSize
				}
				if full > 0 {
					rem -= full * tsPayload
					j += full - 1
					if off += full * tsPayload; off == len(pieces[0]) {
						pieces, off = pieces[1:], 0
					}
					continue
				}
			}
		}
		pkt := out[pos : pos+tsPacketSize : pos+tsPacketSize]
		pos += tsPacketSize
		h := hdr | cc
		cc = (cc + 1) & 15
		room := tsPayload
		if j == 0 {
			room = p.firstCap()
			h |= 0x40 << 16 // payload_unit_start_indicator
		}
		n := min(room, rem-(k-j-1))
		rem -= n
		af := tsPayload - n // adaptation field bytes, its length byte included
		if af == 0 {
			binary.BigEndian.PutUint32(pkt, h|0x10)
		} else {
			binary.BigEndian.PutUint32(pkt, h|0x30)
			pkt[4] = byte(af - 1)
			if af > 1 {
				pkt[5] = 0
				at := 6
				if j == 0 && p.key {
					pkt[5] |= 0x40 // random_access_indicator
				}
				if j == 0 && p.pcr {
					pkt[5] |= 0x10
					b := p.pcrBase
					pkt[6], pkt[7], pkt[8], pkt[9] = byte(b>>25), byte(b>>17), byte(b>>9), byte(b>>1)
					pkt[10], pkt[11] = byte(b<<7)|0x7e, 0 // 6 reserved bits, extension 0
					at = 12
				}
				copy(pkt[at:4+af], tsStuffing[:])
			}
		}
		// Copy n bytes of the pieces.
		for dst := pkt[4+af:]; len(dst) > 0; {
			c := copy(dst, pieces[0][off:])
			dst = dst[c:]
			if off += c; off == len(pieces[0]) {
				pieces, off = pieces[1:], 0
			}
		}
	}
	t.cc = byte(cc)
	m.outN = pos / tsPacketSize
}

// writeTables writes the PAT and the PMT, each with CC = seq mod 16.
func (m *tsMux) writeTables(seq int64) {
	cc := byte(seq & 15)
	pmt := tsPMTPID | 0xe000
	pat := [...]byte{
		0x00, 0xb0, 13, // table_id, section length
		0, 1, // transport_stream_id
		0xc1, 0, 0, // version 0, current; section 0 of 0
		0, 1, byte(pmt >> 8), byte(pmt), // program 1 at the PMT PID
	}
	m.writeSection(tsPATPID, cc, pat[:])

	var sec [12 + 16*5]byte
	pcr := tsFirstPID | 0xe000
	if m.pcrTrk >= 0 {
		pcr = int(m.tracks[m.pcrTrk].pid) | 0xe000
	}
	s := append(sec[:0], 0x02, 0xb0, byte(9+5*len(m.tracks)+4),
		0, 1, // program_number
		0xc1, 0, 0,
		byte(pcr>>8), byte(pcr),
		0xf0, 0) // program_info_length 0
	for _, t := range m.tracks {
		pid := t.pid | 0xe000
		s = append(s, t.streamType, byte(pid>>8), byte(pid), 0xf0, 0)
	}
	m.writeSection(tsPMTPID, cc, s)
}

// writeSection writes a PSI section (its CRC appended) in one packet.
func (m *tsMux) writeSection(pid uint16, cc byte, sec []byte) {
	pkt := m.packet()
	pkt[0], pkt[1], pkt[2], pkt[3], pkt[4] = 0x47, 0x40|byte(pid>>8), byte(pid), 0x10|cc, 0 // pointer_field 0
	n := 5 + copy(pkt[5:], sec)
	binary.BigEndian.PutUint32(pkt[n:], tsCRC32(sec))
	copy(pkt[n+4:], tsStuffing[:])
}

// packet returns the next packet of the output buffer, flushing it when full.
func (m *tsMux) packet() []byte {
	if m.outN == tsBufPackets {
		m.flush()
	}
	p := m.out[m.outN*tsPacketSize:][:tsPacketSize]
	m.outN++
	return p
}

func (m *tsMux) flush() error {
	if m.outN > 0 && m.err == nil {
		_, m.err = m.w.Write(m.out[:m.outN*tsPacketSize])
	}
	m.outN = 0
	return m.err
}

// tsParseAVCC returns the NAL unit length size of an avcC and its SPS and
// PPS in Annex B.
func tsParseAVCC(b []byte) (int, []byte, error) {
	if len(b) < 7 || b[0] != 1 {
		return 0, nil, fmt.Errorf("not an AVCDecoderConfigurationRecord")
	}
	ls := int(b[4]&3) + 1
	if ls == 3 {
		return 0, nil, fmt.Errorf("NAL unit length size 3")
	}
	var params []byte
	off, count := 6, int(b[5]&0x1f)
	for set := 0; set < 2; set++ {
		if set == 1 {
			if off >= len(b) {
				return 0, nil, fmt.Errorf("no PPS count")
			}
			off, count = off+1, int(b[off])
		}
		for range count {
			if len(b)-off < 2 {
				return 0, nil, fmt.Errorf("truncated parameter set")
			}
			n := int(binary.BigEndian.Uint16(b[off:]))
			off += 2
			if n > len(b)-off {
				return 0, nil, fmt.Errorf("truncated parameter set")
			}
			if n > 0 {
				params = append(append(params, tsStartCode...), b[off:off+n]...)
			}
			off += n
		}
	}
	return ls, params, nil
}

// tsSampleRates are the sampling frequencies of ADTS's 4-bit index.
var tsSampleRates = [...]int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// tsADTSHeader builds the fixed fields of an ADTS header (no CRC) from an
// AudioSpecificConfig: profile, sampling frequency index and channel
// configuration. With explicit SBR/PS signalling (HE-AAC) the header
// describes the AAC core, as ADTS does (SBR is implicit there).
func tsADTSHeader(asc []byte) ([7]byte, error) {
	var h [7]byte
	var pos int
	bits := func(n int) (v int, ok bool) {
		if pos+n > len(asc)*8 {
			return 0, false
		}
		for range n {
			v = v<<1 | int(asc[pos/8]>>(7-pos%8)&1)
			pos++
		}
		return v, true
	}
	objType := func() (int, bool) {
		ot, ok := bits(5)
		if ot == 31 {
			var e int
			e, ok = bits(6)
			ot = 32 + e
		}
		return ot, ok
	}
	freq := func() (int, bool) {
		i, ok := bits(4)
		if i == 15 {
			var f int
			f, ok = bits(24)
			i = -1
			for k, r := range tsSampleRates {
				if r == f {
					i = k
				}
			}
		}
		return i, ok
	}
	ot, ok1 := objType()
	sfi, ok2 := freq()
	ch, ok3 := bits(4)
	if !ok1 || !ok2 || !ok3 {
		return h, fmt.Errorf("%w: truncated AudioSpecificConfig", ErrInvalidCodecPrivate)
	}
	if ot == 5 || ot == 29 {
		_, ok1 = freq() // extension (SBR) sampling frequency
		ot, ok2 = objType()
		if !ok1 || !ok2 {
			return h, fmt.Errorf("%w: truncated AudioSpecificConfig", ErrInvalidCodecPrivate)
		}
	}
	switch {
	case ot < 1 || ot > 4:
		return h, fmt.Errorf("%w: AAC object type %d cannot be carried in ADTS", ErrUnsupportedMedia, ot)
	case sfi < 0 || sfi >= len(tsSampleRates):
		return h, fmt.Errorf("%w: sampling frequency not expressible in ADTS", ErrUnsupportedMedia)
	case ch == 0 || ch > 7:
		return h, fmt.Errorf("%w: channel configuration %d", ErrUnsupportedMedia, ch)
	}
	h[0] = 0xff
	h[1] = 0xf1 // sync, MPEG-4, layer 0, protection_absent
	h[2] = byte(ot-1)<<6 | byte(sfi)<<2 | byte(ch>>2)
	h[3] = byte(ch&3) << 6 // frame length bits 12-11 added per frame
	h[5] = 0x1f            // buffer fullness 0x7ff (VBR), bits 10-6
	h[6] = 0xfc            // buffer fullness bits 5-0, one raw data block
	return h, nil
}

// tsNALLen reads a big-endian NAL unit length of size ls.
func tsNALLen(b []byte, ls int) int {
	switch ls {
	case 1:
		return int(b[0])
	case 2:
		return int(binary.BigEndian.Uint16(b))
	}
	return int(binary.BigEndian.Uint32(b))
}

// tsTicks converts unix nanoseconds to the 90 kHz clock (rounded to the
// nearest tick) modulo 2^33, without overflowing int64.
func tsTicks(ns int64) uint64 {
	q, r := ns/100000, ns%100000
	if r < 0 {
		q, r = q-1, r+100000
	}
	return uint64(q*9+(r*9+50000)/100000) & tsMask33
}

// tsAppendTimestamp appends a PES PTS or DTS field with its 4-bit prefix.
func tsAppendTimestamp(b []byte, prefix byte, v uint64) []byte {
	return append(b,
		prefix<<4|byte(v>>29)&0x0e|1,
		byte(v>>22),
		byte(v>>14)|1,
		byte(v>>7),
		byte(v<<1)|1)
}

// tsCRC32 is the MPEG-2 CRC-32 of PSI sections.
func tsCRC32(b []byte) uint32 {
	crc := uint32(0xffffffff)
	for _, c := range b {
		crc ^= uint32(c) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
