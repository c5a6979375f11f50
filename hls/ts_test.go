package hls

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

const (
	tsTestDemo    = "../cmd/kvsgate/demo/sample.mkv"
	tsTestCapture = "../testdata/producer/producer-c-av-relative.mkv"
	tsTestVideo   = "../testdata/producer/producer-c-video-absolute-tags.mkv"
	// tsTestStart is the producer start of relative ingests (unix ns).
	tsTestStart = 1795289339636000000
)

// tsTestSegments ingests a Matroska file into a fresh Store and returns one
// Segment per fragment, in ordinal order (the fMP4 tests' helper).
func tsTestSegments(t testing.TB, file string, relative bool) []*Segment {
	t.Helper()
	return fmIngest(t, file, relative)
}

// tsTestWrite writes a segment and returns its bytes.
func tsTestWrite(t testing.TB, s *Segment) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteTS(&b, s); err != nil {
		t.Fatalf("segment %d: %v", s.Sequence, err)
	}
	return b.Bytes()
}

// tsTestTool finds an external tool: the test skips without it, unless
// KVSGATE_REQUIRE_TOOLS=1.
func tsTestTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("KVSGATE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (KVSGATE_REQUIRE_TOOLS=1): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

type tsTestFrame struct {
	pts int64 // 90 kHz
	key bool
}

// tsTestProbe runs ffprobe -show_frames on a file and returns the frames
// of its video and audio streams, times converted to 90 kHz.
func tsTestProbe(t *testing.T, file string) (video, audio []tsTestFrame) {
	t.Helper()
	out, err := exec.Command(tsTestTool(t, "ffprobe"), "-v", "error", "-show_frames",
		"-show_entries", "stream=index,codec_type,time_base:frame=stream_index,pts,key_frame", "-of", "json", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var r struct {
		Streams []struct {
			Index     int    `json:"index"`
			CodecType string `json:"codec_type"`
			TimeBase  string `json:"time_base"`
		} `json:"streams"`
		Frames []struct {
			StreamIndex int    `json:"stream_index"`
			PTS         *int64 `json:"pts"`
			KeyFrame    int    `json:"key_frame"`
		} `json:"frames"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Frames {
		s := r.Streams[f.StreamIndex]
		if f.PTS == nil {
			t.Fatalf("%s: a %s frame without pts", file, s.CodecType)
		}
		var num, den int64
		if _, err := fmt.Sscanf(s.TimeBase, "%d/%d", &num, &den); err != nil {
			t.Fatalf("time base %q: %v", s.TimeBase, err)
		}
		fr := tsTestFrame{pts: *f.PTS * num * 90000 / den, key: f.KeyFrame == 1}
		switch s.CodecType {
		case "video":
			video = append(video, fr)
		case "audio":
			audio = append(audio, fr)
		}
	}
	return video, audio
}

// tsTestClean decodes a file with ffmpeg and fails on any error or warning
// it logs, and on continuity counter errors (which ffmpeg 5.1 logs only at
// debug level, so -v error alone would not show them).
func tsTestClean(t *testing.T, file string) {
	t.Helper()
	cmd := exec.Command(tsTestTool(t, "ffmpeg"), "-nostdin", "-v", "level+debug", "-i", file, "-f", "null", "-")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", file, err, out)
	}
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "[error]") || strings.Contains(l, "[fatal]") || strings.Contains(l, "[panic]") ||
			strings.Contains(l, "[warning]") || strings.Contains(l, "Continuity check failed") {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("ffmpeg on %s:\n%s", filepath.Base(file), strings.Join(bad, "\n"))
	}
}

// tsTestRelative returns times relative to the first.
func tsTestRelative(f []tsTestFrame) []tsTestFrame {
	r := slices.Clone(f)
	for i := range r {
		r[i].pts -= f[0].pts
	}
	return r
}

// tsTestCheckWithTools writes every segment, checks each alone and their
// concatenation with ffmpeg, and compares the concatenation's frames with
// the source file's.
func tsTestCheckWithTools(t *testing.T, source string, segs []*Segment, wantVideo, wantAudio bool) {
	dir := t.TempDir()
	var concat []byte
	for _, s := range segs {
		b := tsTestWrite(t, s)
		name := filepath.Join(dir, fmt.Sprintf("seg%d.ts", s.Sequence))
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		tsTestClean(t, name)
		concat = append(concat, b...)
	}
	name := filepath.Join(dir, "concat.ts")
	if err := os.WriteFile(name, concat, 0o644); err != nil {
		t.Fatal(err)
	}
	tsTestClean(t, name)

	srcV, srcA := tsTestProbe(t, source)
	gotV, gotA := tsTestProbe(t, name)
	if !wantVideo {
		srcV = nil
	}
	if !wantAudio {
		srcA = nil
	}
	if len(gotV) != len(srcV) || len(gotA) != len(srcA) {
		t.Fatalf("%d video and %d audio frames, source has %d and %d", len(gotV), len(gotA), len(srcV), len(srcA))
	}
	if wantVideo && len(srcV) == 0 || wantAudio && len(srcA) == 0 {
		t.Fatalf("source has %d video and %d audio frames", len(srcV), len(srcA))
	}
	if len(srcV) > 0 {
		if g, w := tsTestRelative(gotV), tsTestRelative(srcV); !slices.Equal(g, w) {
			for i := range g {
				if g[i] != w[i] {
					t.Fatalf("video frame %d: relative pts %d key %v, source %d key %v", i, g[i].pts, g[i].key, w[i].pts, w[i].key)
				}
			}
		}
		keys := 0
		for _, f := range gotV {
			if f.key {
				keys++
			}
		}
		if keys < len(segs) {
			t.Fatalf("%d key frames in %d segments", keys, len(segs))
		}
	}
	if len(srcA) > 0 {
		if g, w := tsTestRelative(gotA), tsTestRelative(srcA); !slices.Equal(g, w) {
			t.Fatalf("audio frame times differ from the source's: %v... vs %v...", g[:min(5, len(g))], w[:min(5, len(w))])
		}
	}
}

func TestTSDemoClipWithFFmpeg(t *testing.T) {
	segs := tsTestSegments(t, tsTestDemo, true)
	if len(segs) != 10 {
		t.Fatalf("%d fragments, want 10", len(segs))
	}
	tsTestCheckWithTools(t, tsTestDemo, segs, true, true)
}

func TestTSCapturesWithFFmpeg(t *testing.T) {
	t.Run("audio+video", func(t *testing.T) {
		tsTestCheckWithTools(t, tsTestCapture, tsTestSegments(t, tsTestCapture, true), true, true)
	})
	t.Run("video", func(t *testing.T) {
		tsTestCheckWithTools(t, tsTestVideo, tsTestSegments(t, tsTestVideo, false), true, false)
	})
}

// TestTSAudioOnlyWithFFmpeg drops the demo's video track: the PCR moves to
// the audio PID.
func TestTSAudioOnlyWithFFmpeg(t *testing.T) {
	segs := tsTestSegments(t, tsTestDemo, true)
	for _, s := range segs {
		tsTestOnlyTrack(s, 1)
	}
	tsTestCheckWithTools(t, tsTestDemo, segs, false, true)
	pkts := tsTestParse(t, tsTestWrite(t, segs[0]))
	if pkts.pcrPID != tsFirstPID || pkts.pcrs == 0 {
		t.Fatalf("PCR on PID %#x (%d of them), want on the audio PID %#x", pkts.pcrPID, pkts.pcrs, tsFirstPID)
	}
}

// tsTestOnlyTrack keeps one track of a segment.
func tsTestOnlyTrack(s *Segment, track uint8) {
	h := *s.Header
	h.Tracks = []mkv.Track{h.Tracks[track]}
	s.Header = &h
	m := &fragments.Meta{}
	for _, smp := range s.Meta.Samples {
		if smp.Track == track {
			smp.Track = 0
			m.Samples = append(m.Samples, smp)
		}
	}
	s.Meta = m
}

// tsTestPES is one PES packet read back from TS packets.
type tsTestPES struct {
	pid       uint16
	streamID  byte
	pts, dts  uint64
	hasDTS    bool
	rai, pcr  bool   // flags of its first TS packet
	pcrBase   uint64 // 90 kHz
	pcrExt    int    // 27 MHz remainder
	plen      int    // PES_packet_length
	es        []byte
	packets   int
	straddled bool // the PES header did not fit in its first TS packet
	raw       []byte
}

// tsTestTS is what a TS byte stream holds.
type tsTestTS struct {
	packets     map[uint16]int
	firstCC     map[uint16]byte
	pat, pmt    int // table packets
	patCCs      []byte
	pmtPID      uint16
	pcrPID      uint16
	pcrs        int
	streamTypes map[uint16]byte
	pes         []*tsTestPES
}

// tsTestParse reads TS packets independently of the writer and fails on a
// misaligned stream, a lost sync byte, a continuity counter that does not
// increase by one (mod 16) on its PID, or a malformed PES packet.
func tsTestParse(t testing.TB, b []byte) *tsTestTS {
	t.Helper()
	if len(b)%188 != 0 {
		t.Fatalf("%d bytes: not a whole number of 188-byte packets", len(b))
	}
	ts := &tsTestTS{packets: map[uint16]int{}, firstCC: map[uint16]byte{}, streamTypes: map[uint16]byte{}}
	lastCC := map[uint16]byte{}
	open := map[uint16]*tsTestPES{}
	finish := func(p *tsTestPES) {
		r := p.raw
		if len(r) < 9 || r[0] != 0 || r[1] != 0 || r[2] != 1 {
			t.Fatalf("PID %#x: PES packet without a start code: % x", p.pid, r[:min(len(r), 12)])
		}
		p.streamID = r[3]
		plen := int(binary.BigEndian.Uint16(r[4:]))
		p.plen = plen
		if plen != 0 && plen != len(r)-6 {
			t.Fatalf("PID %#x: PES_packet_length %d, packet has %d bytes after it", p.pid, plen, len(r)-6)
		}
		if r[6]&0xc0 != 0x80 || r[6]&0x04 == 0 {
			t.Fatalf("PID %#x: PES header flags %#x (want '10' and data_alignment_indicator)", p.pid, r[6])
		}
		hdl := int(r[8])
		ts := func(b []byte) uint64 {
			if b[0]&1 == 0 || b[2]&1 == 0 || b[4]&1 == 0 {
				t.Fatalf("PID %#x: timestamp marker bits missing: % x", p.pid, b[:5])
			}
			return uint64(b[0]>>1&7)<<30 | uint64(b[1])<<22 | uint64(b[2]>>1)<<15 | uint64(b[3])<<7 | uint64(b[4]>>1)
		}
		switch r[7] >> 6 {
		case 2:
			if hdl < 5 || r[9]>>4 != 2 {
				t.Fatalf("PID %#x: bad PTS field", p.pid)
			}
			p.pts = ts(r[9:])
			p.dts = p.pts
		case 3:
			if hdl < 10 || r[9]>>4 != 3 || r[14]>>4 != 1 {
				t.Fatalf("PID %#x: bad PTS/DTS fields", p.pid)
			}
			p.pts, p.dts, p.hasDTS = ts(r[9:]), ts(r[14:]), true
		default:
			t.Fatalf("PID %#x: PES packet without PTS", p.pid)
		}
		p.es = r[9+hdl:]
	}
	for off := 0; off < len(b); off += 188 {
		pkt := b[off : off+188]
		if pkt[0] != 0x47 {
			t.Fatalf("packet %d: sync byte %#x", off/188, pkt[0])
		}
		if pkt[1]&0x80 != 0 {
			t.Fatalf("packet %d: transport_error_indicator", off/188)
		}
		pusi := pkt[1]&0x40 != 0
		pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
		afc, cc := pkt[3]>>4&3, pkt[3]&15
		if pkt[3]&0xc0 != 0 {
			t.Fatalf("packet %d: scrambled", off/188)
		}
		if afc&1 == 0 {
			t.Fatalf("packet %d (PID %#x): no payload", off/188, pid)
		}
		if last, ok := lastCC[pid]; ok && cc != (last+1)&15 {
			t.Fatalf("packet %d (PID %#x): continuity counter %d after %d", off/188, pid, cc, last)
		} else if !ok {
			ts.firstCC[pid] = cc
		}
		lastCC[pid] = cc
		ts.packets[pid]++
		payload := pkt[4:]
		var rai, pcr bool
		var pcrBase uint64
		var pcrExt int
		if afc == 3 {
			n := int(pkt[4])
			if n > 182 {
				t.Fatalf("packet %d: adaptation field of %d bytes leaves no payload", off/188, n)
			}
			if n > 0 {
				flags := pkt[5]
				rai = flags&0x40 != 0
				if flags&0x10 != 0 {
					if n < 7 {
						t.Fatalf("packet %d: PCR flag in a %d-byte adaptation field", off/188, n)
					}
					pcr = true
					pcrBase = uint64(binary.BigEndian.Uint32(pkt[6:]))<<1 | uint64(pkt[10]>>7)
					pcrExt = int(pkt[10]&1)<<8 | int(pkt[11])
					if pkt[10]&0x7e != 0x7e {
						t.Fatalf("packet %d: PCR reserved bits %#x", off/188, pkt[10])
					}
					ts.pcrs++
					if ts.pcrPID != 0 && pid != ts.pcrPID {
						t.Fatalf("packet %d: PCR on PID %#x, PMT says %#x", off/188, pid, ts.pcrPID)
					}
				}
				for i := 6; i < 5+n; i++ {
					if pcr && i < 12 {
						continue
					}
					if pkt[i] != 0xff {
						t.Fatalf("packet %d: stuffing byte %#x", off/188, pkt[i])
					}
				}
			}
			payload = pkt[5+n:]
		}
		switch pid {
		case 0:
			if !pusi || payload[0] != 0 || payload[1] != 0 {
				t.Fatalf("packet %d: not a PAT", off/188)
			}
			ts.pat++
			ts.patCCs = append(ts.patCCs, cc)
			ts.pmtPID = uint16(payload[11]&0x1f)<<8 | uint16(payload[12])
			continue
		case ts.pmtPID:
			if !pusi || payload[0] != 0 || payload[1] != 2 {
				t.Fatalf("packet %d: not a PMT", off/188)
			}
			ts.pmt++
			sec := payload[1:]
			n := int(binary.BigEndian.Uint16(sec[1:]) & 0xfff)
			ts.pcrPID = uint16(sec[8]&0x1f)<<8 | uint16(sec[9])
			for i := 12; i < 3+n-4; i += 5 {
				ts.streamTypes[uint16(sec[i+1]&0x1f)<<8|uint16(sec[i+2])] = sec[i]
			}
			continue
		}
		if _, ok := ts.streamTypes[pid]; !ok {
			t.Fatalf("packet %d: PID %#x not in a PMT before it", off/188, pid)
		}
		if pusi {
			if p := open[pid]; p != nil {
				finish(p)
			}
			p := &tsTestPES{pid: pid, rai: rai, pcr: pcr, pcrBase: pcrBase, pcrExt: pcrExt}
			open[pid] = p
			ts.pes = append(ts.pes, p)
		} else if rai || pcr {
			t.Fatalf("packet %d: RAI/PCR on a packet that starts no PES", off/188)
		}
		p := open[pid]
		if p == nil {
			t.Fatalf("packet %d: PID %#x payload before a PES start", off/188, pid)
		}
		if p.packets == 1 && len(p.raw) < 9+int(p.raw[min(8, len(p.raw)-1)]) {
			p.straddled = true
		}
		if len(payload) == 0 {
			t.Fatalf("packet %d: empty payload", off/188)
		}
		p.raw = append(p.raw, payload...)
		p.packets++
	}
	for _, p := range open {
		finish(p)
	}
	return ts
}

// tsTestTicks is the expected 90 kHz time of unix ns t, by big integers.
func tsTestTicks(ns int64) uint64 {
	v := new(big.Int).Mul(big.NewInt(ns), big.NewInt(90000))
	v.Add(v, big.NewInt(500000000))               // round half up
	v.Div(v, big.NewInt(1000000000))              // Div floors toward -inf for positive divisor (Euclidean)
	v.Mod(v, new(big.Int).Lsh(big.NewInt(1), 33)) // Euclidean: non-negative
	return v.Uint64()
}

// tsTestNALs splits Annex B bytes (4-byte start codes only, as written) into
// NAL units.
func tsTestNALs(t testing.TB, es []byte) [][]byte {
	t.Helper()
	if !bytes.HasPrefix(es, []byte{0, 0, 0, 1}) {
		t.Fatalf("access unit does not start with a start code: % x", es[:min(8, len(es))])
	}
	var nals [][]byte
	for _, n := range bytes.Split(es[4:], []byte{0, 0, 0, 1}) {
		nals = append(nals, n)
	}
	return nals
}

// tsTestAVCC splits an AVCC sample (4-byte lengths) into NAL units.
func tsTestAVCC(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var nals [][]byte
	for len(b) > 0 {
		n := int(binary.BigEndian.Uint32(b))
		nals = append(nals, b[4:4+n])
		b = b[4+n:]
	}
	return nals
}

// tsTestSample reads a sample's bytes.
func tsTestSample(t testing.TB, s *Segment, smp fragments.Sample) []byte {
	t.Helper()
	b := make([]byte, smp.Size)
	if _, err := s.Payload.ReadAt(b, smp.Offset); err != nil {
		t.Fatal(err)
	}
	return b
}

// tsTestParams returns the avcC's SPS and PPS.
func tsTestParams(t testing.TB, avcc []byte) (sps, pps []byte) {
	t.Helper()
	if avcc[5]&0x1f != 1 {
		t.Fatalf("avcC with %d SPS", avcc[5]&0x1f)
	}
	n := int(binary.BigEndian.Uint16(avcc[6:]))
	sps = avcc[8 : 8+n]
	r := avcc[8+n:]
	if r[0] != 1 {
		t.Fatalf("avcC with %d PPS", r[0])
	}
	m := int(binary.BigEndian.Uint16(r[1:]))
	return sps, r[3 : 3+m]
}

// TestTSPackets reads three consecutive segments of the demo clip back at
// the packet level: alignment, continuity across the concatenation, PAT/PMT
// per segment, PCR, PES timestamps, Annex B (AUD first, SPS/PPS before each
// key frame) and ADTS headers against the stored samples.
func TestTSPackets(t *testing.T) {
	segs := tsTestSegments(t, tsTestDemo, true)[3:6]
	var concat []byte
	for _, s := range segs {
		b := tsTestWrite(t, s)
		one := tsTestParse(t, b)
		if one.pat != 1 || one.pmt != 1 || one.patCCs[0] != byte(s.Sequence%16) {
			t.Fatalf("segment %d: %d PAT and %d PMT, PAT CC %v, want one each with CC %d", s.Sequence, one.pat, one.pmt, one.patCCs, s.Sequence%16)
		}
		if !bytes.Equal(b[:188], tsTestWritePrefix(t, b)) {
			t.Fatal("segment does not start with the PAT")
		}
		for pid, n := range one.packets {
			if pid >= tsFirstPID && pid < tsPMTPID && (n%16 != 0 || one.firstCC[pid] != 0) {
				t.Fatalf("segment %d PID %#x: %d packets from CC %d, want a multiple of 16 from 0", s.Sequence, pid, n, one.firstCC[pid])
			}
		}
		if one.streamTypes[0x100] != 0x1b || one.streamTypes[0x101] != 0x0f || one.pcrPID != 0x100 {
			t.Fatalf("PMT: stream types %v, PCR PID %#x", one.streamTypes, one.pcrPID)
		}
		concat = append(concat, b...)
	}
	ts := tsTestParse(t, concat) // continuity across the three
	if ts.pat != 3 || ts.pmt != 3 {
		t.Fatalf("%d PAT, %d PMT in 3 segments", ts.pat, ts.pmt)
	}

	tsTestCheckSamples(t, segs, ts)
	if ts.pcrs == 0 {
		t.Fatal("no PCR")
	}
}

// tsTestCheckSamples checks the PES packets of segments (H.264 track 0,
// AAC-LC 48 kHz stereo track 1) against their samples: PID, PTS/DTS, PCR,
// RAI, Annex B with AUD first and SPS/PPS before key frames, ADTS headers.
func tsTestCheckSamples(t *testing.T, segs []*Segment, ts *tsTestTS) {
	t.Helper()
	sps, pps := tsTestParams(t, segs[0].Header.Tracks[0].CodecPrivate)
	i := 0
	for _, s := range segs {
		for _, smp := range s.Meta.Samples {
			p := ts.pes[i]
			i++
			if p.pid != tsFirstPID+uint16(smp.Track) {
				t.Fatalf("PES %d on PID %#x, sample of track %d", i, p.pid, smp.Track)
			}
			pts, dts := tsTestTicks(s.BaseNS+smp.PTS), tsTestTicks(s.BaseNS+smp.DTS)
			if p.pts != pts || p.dts != dts || p.hasDTS != (pts != dts) {
				t.Fatalf("PES %d: PTS %d DTS %d (DTS field %v), want %d %d", i, p.pts, p.dts, p.hasDTS, pts, dts)
			}
			src := tsTestSample(t, s, smp)
			switch smp.Track {
			case 0:
				if p.streamID != 0xe0 || !p.pcr || p.pcrBase != (dts-9000)&(1<<33-1) || p.pcrExt != 0 || p.rai != smp.Key {
					t.Fatalf("video PES %d: stream id %#x, PCR %v %d, RAI %v (key %v)", i, p.streamID, p.pcr, p.pcrBase, p.rai, smp.Key)
				}
				nals := tsTestNALs(t, p.es)
				want := [][]byte{{9, 0xf0}}
				if smp.Key {
					want = append(want, sps, pps)
				}
				want = append(want, tsTestAVCC(t, src)...)
				if len(nals) != len(want) {
					t.Fatalf("video PES %d: %d NAL units, want %d", i, len(nals), len(want))
				}
				for k := range nals {
					if !bytes.Equal(nals[k], want[k]) {
						t.Fatalf("video PES %d NAL %d (type %d): differs from the expected (type %d)", i, k, nals[k][0]&0x1f, want[k][0]&0x1f)
					}
				}
				if smp.Key && nals[len(nals)-1][0]&0x1f != 5 {
					t.Fatalf("key frame PES %d does not end with an IDR slice", i)
				}
			case 1:
				if p.streamID != 0xc0 || p.pcr || p.rai {
					t.Fatalf("audio PES %d: stream id %#x, PCR %v, RAI %v", i, p.streamID, p.pcr, p.rai)
				}
				h := p.es
				if len(h) < 7 || h[0] != 0xff || h[1]&0xf6 != 0xf0 || h[1]&1 != 1 {
					t.Fatalf("audio PES %d: no ADTS sync/layer/protection_absent: % x", i, h[:min(7, len(h))])
				}
				profile, sfi, ch := h[2]>>6, h[2]>>2&15, (h[2]&1)<<2|h[3]>>6
				flen := int(h[3]&3)<<11 | int(h[4])<<3 | int(h[5]>>5)
				if profile != 1 || sfi != 3 || ch != 2 || flen != len(h) || flen != 7+len(src) || h[6]&3 != 0 ||
					h[5]&0x1f != 0x1f || h[6]&0xfc != 0xfc { // buffer fullness 0x7ff
					t.Fatalf("audio PES %d: ADTS profile %d, rate index %d, channels %d, length %d (PES %d, sample %d)", i, profile, sfi, ch, flen, len(h), len(src))
				}
				if !bytes.Equal(h[7:], src) {
					t.Fatalf("audio PES %d: frame differs from the sample", i)
				}
			}
			if want := len(p.raw) - 6; p.plen != want && (p.plen != 0 || want <= 0xffff) {
				t.Fatalf("PES %d: PES_packet_length %d for %d bytes", i, p.plen, want)
			}
			if p.straddled {
				t.Fatalf("PES %d: header straddles TS packets in an ordinary segment", i)
			}
		}
	}
	if i != len(ts.pes) {
		t.Fatalf("%d PES packets for %d samples", len(ts.pes), i)
	}
	if ts.pcrs == 0 {
		t.Fatal("no PCR")
	}
}

// tsTestWritePrefix returns the PAT packet a segment should start with,
// built by hand.
func tsTestWritePrefix(t testing.TB, b []byte) []byte {
	t.Helper()
	pkt := bytes.Repeat([]byte{0xff}, 188)
	sec := []byte{0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0}
	copy(pkt, []byte{0x47, 0x40, 0, 0x10 | b[3]&15, 0})
	copy(pkt[5:], sec)
	binary.BigEndian.PutUint32(pkt[5+len(sec):], tsTestCRC(sec))
	return pkt
}

// tsTestCRC is CRC-32/MPEG-2, table-driven (unlike the writer's).
func tsTestCRC(b []byte) uint32 {
	var table [256]uint32
	for i := range table {
		c := uint32(i) << 24
		for range 8 {
			c = c<<1 ^ (c>>31)*0x04c11db7
		}
		table[i] = c
	}
	crc := ^uint32(0)
	for _, x := range b {
		crc = crc<<8 ^ table[byte(crc>>24)^x]
	}
	return crc
}

// tsTestAVCCConfig is an avcC with one SPS and one PPS (4-byte lengths).
var tsTestAVCCConfig = []byte{1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x28, 1, 0, 4, 0x68, 0xee, 0x3c, 0x80}

// tsTestSynthetic builds a segment of video frames (one NAL unit each, the
// first a key frame) of the given sizes and AAC frames of audioSize bytes,
// about two per video frame, in one payload.
func tsTestSynthetic(video []int, audio, audioSize int) *Segment {
	h := &fragments.Header{TimecodeScale: 1e6, Tracks: []mkv.Track{
		{Number: 1, Type: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: tsTestAVCCConfig},
		{Number: 2, Type: 2, CodecID: "A_AAC", CodecPrivate: []byte{0x11, 0x90}, SamplingFreq: 48000, Channels: 2},
	}}
	var payload []byte
	m := &fragments.Meta{}
	seed := uint32(1)
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			seed = seed*1664525 + 1013904223
			b[i] = byte(seed >> 24)
		}
		return b
	}
	a := 0
	for i, size := range video {
		nal := fill(size - 4)
		nal[0] = 1 // non-IDR slice
		if i == 0 {
			nal[0] = 0x65 // IDR slice
		}
		payload = binary.BigEndian.AppendUint32(append(payload, 0xa3, 0x80), uint32(len(nal))) // a stand-in block header
		m.Samples = append(m.Samples, fragments.Sample{Track: 0, Key: i == 0, PTS: int64(i) * 40e6, DTS: int64(i) * 40e6,
			Dur: 40e6, Offset: int64(len(payload)) - 4, Size: int64(size)})
		payload = append(payload, nal...)
		for ; a < audio && (a*1024*1e9/48000 < (i+1)*40e6 || i == len(video)-1); a++ {
			payload = append(payload, 0xa3, 0x81)
			ts := int64(a) * 1024 * 1e9 / 48000
			m.Samples = append(m.Samples, fragments.Sample{Track: 1, Key: true, PTS: ts, DTS: ts, Dur: 21333333,
				Offset: int64(len(payload)), Size: int64(audioSize)})
			payload = append(payload, fill(audioSize)...)
		}
	}
	return &Segment{Header: h, Meta: m, Payload: bytes.NewReader(payload), Size: int64(len(payload)),
		BaseNS: tsTestStart, Sequence: 7}
}

// TestTSTinySegment: a segment of one 1-byte NAL unit and one 1-byte AAC
// frame has too few bytes to pad each PID to 16 packets with whole PES
// headers, so the headers straddle packets; the PES packets still read back
// whole.
func TestTSTinySegment(t *testing.T) {
	s := tsTestSynthetic([]int{5}, 1, 1)
	s.Meta.Samples[0].Key = false
	b := tsTestWrite(t, s)
	ts := tsTestParse(t, b)
	if ts.packets[0x100] != 16 || ts.packets[0x101] != 16 || len(ts.pes) != 2 {
		t.Fatalf("%d video and %d audio packets in %d PES, want 16 and 16 in 2", ts.packets[0x100], ts.packets[0x101], len(ts.pes))
	}
	src := tsTestSample(t, s, s.Meta.Samples[0])
	if v := ts.pes[0]; !v.straddled || !bytes.Equal(v.es, append([]byte{0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1}, src[4:]...)) {
		t.Fatalf("video PES (straddled %v): % x", v.straddled, v.es)
	}
	if a := ts.pes[1]; !a.straddled || len(a.es) != 8 || a.pts != tsTestTicks(s.BaseNS) {
		t.Fatalf("audio PES (straddled %v): % x, PTS %d", a.straddled, a.es, a.pts)
	}

	// ffprobe demuxes the straddled headers too.
	name := filepath.Join(t.TempDir(), "tiny.ts")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tsTestTool(t, "ffprobe"), "-v", "quiet", "-show_packets",
		"-show_entries", "packet=stream_index,pts,size", "-of", "json", name).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var r struct {
		Packets []struct {
			StreamIndex int    `json:"stream_index"`
			PTS         uint64 `json:"pts"`
			Size        string `json:"size"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range r.Packets {
		got = append(got, fmt.Sprintf("%d:%d:%s", p.StreamIndex, p.PTS, p.Size))
	}
	slices.Sort(got)
	pts := tsTestTicks(s.BaseNS)
	if want := []string{fmt.Sprintf("0:%d:11", pts), fmt.Sprintf("1:%d:8", pts)}; !slices.Equal(got, want) {
		t.Fatalf("ffprobe packets %v, want %v", got, want)
	}
}

// TestTSTimestamps checks the 90 kHz conversion (rounding, negative times,
// the 2^33 wrap) and that a segment across the wrap carries wrapped values.
func TestTSTimestamps(t *testing.T) {
	wrapNS := int64(1<<33) * 1e9 / 90000 // ns of one 2^33-tick period
	for _, ns := range []int64{0, 1, 5555, 5556, 11111, 33366666, 1e9, -1, -5556, -40e6,
		tsTestStart, tsTestStart + 33366667, 1<<62 + 12345, -(1 << 62), wrapNS - 1, wrapNS, 20 * wrapNS} {
		if got, want := tsTicks(ns), tsTestTicks(ns); got != want {
			t.Errorf("tsTicks(%d) = %d, want %d", ns, got, want)
		}
	}
	s := tsTestSynthetic([]int{400, 300, 300}, 4, 20)
	s.BaseNS = 17*wrapNS - 50e6 // the wrap is 50 ms in
	ts := tsTestParse(t, tsTestWrite(t, s))
	wrapped := false
	for i, p := range ts.pes {
		smp := s.Meta.Samples[i]
		if want := tsTestTicks(s.BaseNS + smp.PTS); p.pts != want {
			t.Fatalf("PES %d: PTS %d, want %d", i, p.pts, want)
		}
		wrapped = wrapped || p.pts < 90000
	}
	if !wrapped || ts.pes[0].pts < 1<<33-9000 {
		t.Fatalf("no PTS wrapped (first %d)", ts.pes[0].pts)
	}
}

// TestTSSameAnnexB: NAL lengths of 2 bytes, and key frames that already
// carry an AUD, SPS and PPS, give the same bytes as the plain 4-byte AVCC.
func TestTSSameAnnexB(t *testing.T) {
	demo := tsTestSegments(t, tsTestDemo, true)[0] // NAL units under 64 kB
	small := tsTestSynthetic([]int{200, 120, 90, 250, 60}, 8, 30)
	for _, base := range []struct {
		name string
		s    *Segment
		ls   []int
	}{{"demo", demo, []int{4, 2}}, {"small", small, []int{4, 2, 1}}} {
		s := base.s
		want := tsTestWrite(t, s)
		sps, pps := tsTestParams(t, s.Header.Tracks[0].CodecPrivate)
		// Each variant re-encodes the video with NAL lengths of ls bytes and
		// extra leading NAL units (AUD, SPS, PPS) that WriteTS must not
		// repeat.
		for _, ls := range base.ls {
			for _, v := range []struct {
				name   string
				allAUD bool // every frame starts with an AUD
				keyPS  bool // key frames carry SPS and PPS after the AUD
			}{{"plain", false, false}, {"AUD", true, false}, {"AUD SPS PPS", true, true}} {
				t.Run(fmt.Sprintf("%s/%d-byte/%s", base.name, ls, v.name), func(t *testing.T) {
					avcc := slices.Clone(s.Header.Tracks[0].CodecPrivate)
					avcc[4] = avcc[4]&^3 | byte(ls-1)
					c := tsTestRewrite(t, s, avcc, func(smp fragments.Sample, nals [][]byte) []byte {
						if v.keyPS && smp.Key {
							nals = append([][]byte{sps, pps}, nals...)
						}
						if v.allAUD {
							nals = append([][]byte{{9, 0xf0}}, nals...)
						}
						var b []byte
						for _, n := range nals {
							if len(n) >= 1<<(8*ls) {
								t.Fatalf("NAL unit of %d bytes", len(n))
							}
							var l [4]byte
							binary.BigEndian.PutUint32(l[:], uint32(len(n)))
							b = append(append(b, l[4-ls:]...), n...)
						}
						return b
					})
					if got := tsTestWrite(t, c); !bytes.Equal(got, want) {
						t.Fatal("output differs from the one of plain AVCC with 4-byte lengths")
					}
				})
			}
		}
	}
}

// tsTestRewrite copies s with its video samples re-encoded by f and the
// video track's CodecPrivate replaced.
func tsTestRewrite(t *testing.T, s *Segment, avcc []byte, f func(smp fragments.Sample, nals [][]byte) []byte) *Segment {
	c := *s
	h := *s.Header
	h.Tracks = slices.Clone(h.Tracks)
	h.Tracks[0].CodecPrivate = avcc
	c.Header = &h
	m := &fragments.Meta{}
	var payload []byte
	for _, smp := range s.Meta.Samples {
		b := tsTestSample(t, s, smp)
		if smp.Track == 0 {
			b = f(smp, tsTestAVCC(t, b))
		}
		smp.Offset, smp.Size = int64(len(payload)), int64(len(b))
		payload = append(payload, b...)
		m.Samples = append(m.Samples, smp)
	}
	c.Meta, c.Payload, c.Size = m, bytes.NewReader(payload), int64(len(payload))
	return &c
}

func TestTSRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(s *Segment)
		want error // nil: any error
	}{
		{"no avcC", func(s *Segment) { s.Header.Tracks[0].CodecPrivate = nil }, ErrMissingCodecPrivate},
		{"bad avcC", func(s *Segment) { s.Header.Tracks[0].CodecPrivate = tsTestAVCCConfig[:10] }, ErrInvalidCodecPrivate},
		{"length size 3", func(s *Segment) {
			s.Header.Tracks[0].CodecPrivate = slices.Clone(tsTestAVCCConfig)
			s.Header.Tracks[0].CodecPrivate[4] = 0xfe
		}, ErrInvalidCodecPrivate},
		{"no ASC", func(s *Segment) { s.Header.Tracks[1].CodecPrivate = nil }, ErrMissingCodecPrivate},
		{"short ASC", func(s *Segment) { s.Header.Tracks[1].CodecPrivate = []byte{0x11} }, ErrInvalidCodecPrivate},
		{"AAC channel config 0", func(s *Segment) { s.Header.Tracks[1].CodecPrivate = []byte{0x11, 0x80} }, ErrUnsupportedMedia},
		{"HEVC", func(s *Segment) { s.Header.Tracks[0].CodecID = "V_MPEGH/ISO/HEVC" }, ErrUnsupportedMedia},
		{"no tracks", func(s *Segment) { s.Header.Tracks = nil }, ErrUnsupportedMedia},
		{"sample beyond the payload", func(s *Segment) { s.Meta.Samples[3].Offset = s.Size - 1 }, nil},
		{"no such track", func(s *Segment) { s.Meta.Samples[2].Track = 2 }, nil},
		{"payload shorter than said", func(s *Segment) { s.Payload = io.NewSectionReader(s.Payload, 0, s.Size-1) }, io.ErrUnexpectedEOF},
		{"AAC frame too long for ADTS", func(s *Segment) {
			a := &s.Meta.Samples[len(s.Meta.Samples)-1]
			a.Offset, a.Size = 0, 8185
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := tsTestSynthetic([]int{9000, 3000}, 3, 100)
			h := *s.Header
			h.Tracks = slices.Clone(h.Tracks)
			s.Header = &h
			c.edit(s)
			var b bytes.Buffer
			err := WriteTS(&b, s)
			if err == nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if b.Len() != 0 {
				t.Fatalf("%d bytes written before the error", b.Len())
			}
		})
	}
}

func TestTSADTSConfigs(t *testing.T) {
	for _, c := range []struct {
		asc                   []byte
		profile, sfi, channel byte
	}{
		{[]byte{0x11, 0x90}, 1, 3, 2},                   // AAC-LC 48 kHz stereo (the capture's)
		{[]byte{0x12, 0x08}, 1, 4, 1},                   // AAC-LC 44.1 kHz mono
		{[]byte{0x2b, 0x11, 0x88, 0x00}, 1, 6, 2},       // HE-AAC, explicit: LC core at 24 kHz, SBR to 48 kHz
		{[]byte{0x0f, 0x80, 0x5d, 0xc0, 0x10}, 0, 3, 2}, // AAC Main, explicit 48000 Hz
	} {
		h, err := tsADTSHeader(c.asc)
		if err != nil {
			t.Fatalf("% x: %v", c.asc, err)
		}
		if p, f, ch := h[2]>>6, h[2]>>2&15, (h[2]&1)<<2|h[3]>>6; p != c.profile || f != c.sfi || ch != c.channel {
			t.Errorf("% x: profile %d, rate index %d, channels %d; want %d %d %d", c.asc, p, f, ch, c.profile, c.sfi, c.channel)
		}
	}
	for _, asc := range [][]byte{{0xf8, 0x00, 0x00}, {0x17, 0x90}, {0x11, 0xf9}, {0x17, 0x80, 0x18, 0x1c, 0x90}} {
		if _, err := tsADTSHeader(asc); !errors.Is(err, ErrUnsupportedMedia) && !errors.Is(err, ErrInvalidCodecPrivate) {
			t.Errorf("% x: error %v", asc, err)
		}
	}
}

// tsTestCountingReader counts ReadAt calls.
type tsTestCountingReader struct {
	r     io.ReaderAt
	calls int
}

func (c *tsTestCountingReader) ReadAt(p []byte, off int64) (int, error) {
	c.calls++
	return c.r.ReadAt(p, off)
}

// TestTSPaddingSizes pads PIDs whose last PES packet ends at every offset
// within a TS packet (twice over), so that some padding packets must come
// out of a run of full packets.
func TestTSPaddingSizes(t *testing.T) {
	for size := 1000; size < 1000+2*tsPacketSize; size++ {
		s := tsTestSynthetic([]int{3000, 1500, size}, 5, 20+size%50)
		ts := tsTestParse(t, tsTestWrite(t, s))
		if ts.packets[0x100]%16 != 0 || ts.packets[0x101]%16 != 0 {
			t.Fatalf("last frame of %d bytes: %d and %d packets", size, ts.packets[0x100], ts.packets[0x101])
		}
		tsTestCheckSamples(t, []*Segment{s}, ts)
	}
}

// TestTSLargeFragment: a 1080p-sized fragment is read through several
// windows and still reads back sample for sample.
func TestTSLargeFragment(t *testing.T) {
	s := tsTestSynthetic(slices.Repeat([]int{40000}, 25), 47, 400)
	cr := &tsTestCountingReader{r: s.Payload}
	s.Payload = cr
	ts := tsTestParse(t, tsTestWrite(t, s))
	// A window starts at a sample, so it holds at least tsWindow-40000 bytes.
	if want := int(s.Size/(tsWindow-40000)) + 1; cr.calls < 2 || cr.calls > want {
		t.Fatalf("%d ReadAt calls for %d bytes, want 2 to %d", cr.calls, s.Size, want)
	}
	s.Payload = cr.r
	tsTestCheckSamples(t, []*Segment{s}, ts)
}

// TestTSMalformedFrame: a frame whose NAL unit lengths overrun it is cut
// after its last whole NAL unit, and the segment is still written whole.
func TestTSMalformedFrame(t *testing.T) {
	s := tsTestSynthetic([]int{3000, 2000, 2000}, 4, 50)
	var payload []byte
	payload = append(payload, tsTestSample(t, s, s.Meta.Samples[0])...) // the key frame, kept
	nal := []byte{0x41, 1, 2, 3, 4, 5}
	frames := [][]byte{
		append(binary.BigEndian.AppendUint32(nil, 6), nal...),                                                   // whole
		append(binary.BigEndian.AppendUint32(append(binary.BigEndian.AppendUint32(nil, 6), nal...), 100), 1, 2), // overrun
		append(binary.BigEndian.AppendUint32(nil, 6), append(nal, 0, 0)...),                                     // truncated length
	}
	m := &fragments.Meta{}
	f := 0
	for _, smp := range s.Meta.Samples {
		if smp.Track == 0 && !smp.Key {
			smp.Offset, smp.Size = int64(len(payload)), int64(len(frames[f]))
			payload = append(payload, frames[f]...)
			f++
		} else if smp.Track == 1 {
			b := tsTestSample(t, s, smp)
			smp.Offset = int64(len(payload))
			payload = append(payload, b...)
		}
		m.Samples = append(m.Samples, smp)
	}
	s.Meta, s.Payload, s.Size = m, bytes.NewReader(payload), int64(len(payload))
	ts := tsTestParse(t, tsTestWrite(t, s))
	var video []*tsTestPES
	for _, p := range ts.pes {
		if p.pid == tsFirstPID {
			video = append(video, p)
		}
	}
	want := append([]byte{0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1}, nal...)
	if len(video) != 3 || len(ts.pes) != len(m.Samples) {
		t.Fatalf("%d video PES of %d, want 3 of %d", len(video), len(ts.pes), len(m.Samples))
	}
	for i, p := range video[1:] {
		if !bytes.Equal(p.es, want) {
			t.Fatalf("frame %d: % x, want % x", i+1, p.es, want)
		}
	}
}

// TestTSOneReadAndReuse: a segment costs one ReadAt, and writing segments
// in turn (pooled state, sample bytes rewritten in place) repeats the
// same bytes.
func TestTSOneReadAndReuse(t *testing.T) {
	segs := tsTestSegments(t, tsTestDemo, true)[:2]
	cr := &tsTestCountingReader{r: segs[0].Payload}
	segs[0].Payload = cr
	first := tsTestWrite(t, segs[0])
	if cr.calls != 1 {
		t.Fatalf("%d ReadAt calls for one segment, want 1", cr.calls)
	}
	second := tsTestWrite(t, segs[1])
	for range 3 {
		if !bytes.Equal(tsTestWrite(t, segs[0]), first) || !bytes.Equal(tsTestWrite(t, segs[1]), second) {
			t.Fatal("writing a segment again gave different bytes")
		}
	}
	if bytes.Equal(first, second) {
		t.Fatal("two fragments gave the same bytes")
	}
}

type tsTestFailWriter struct{ n int }

func (w *tsTestFailWriter) Write(p []byte) (int, error) {
	if w.n--; w.n < 0 {
		return 0, errors.New("connection reset")
	}
	return len(p), nil
}

func TestTSWriteError(t *testing.T) {
	s := tsTestSynthetic(slices.Repeat([]int{40000}, 25), 47, 400)
	w := &tsTestFailWriter{n: 2}
	if err := WriteTS(w, s); err == nil || err.Error() != "connection reset" {
		t.Fatalf("error %v, want the writer's", err)
	}
	if w.n != -1 {
		t.Fatalf("writes went on after the failure (%d)", w.n)
	}
}

// BenchmarkWriteTS writes a 1 s 1080p-sized fragment (25 frames of 40 kB,
// 47 AAC frames) beside a plain read of the same payload (io.Copy from its
// ReaderAt to io.Discard). The machine is shared, so "ratio" alternates the
// two in one loop and reports WriteTS time over read time. "packets" is the
// floor of any 188-byte packetizer: the payload copied 184 bytes at a time
// behind 4-byte headers, nothing else.
func BenchmarkWriteTS(b *testing.B) {
	s := tsTestSynthetic(slices.Repeat([]int{40000}, 25), 47, 400)
	write := func(b *testing.B) {
		if err := WriteTS(io.Discard, s); err != nil {
			b.Fatal(err)
		}
	}
	read := func(b *testing.B) {
		if _, err := io.Copy(io.Discard, io.NewSectionReader(s.Payload, 0, s.Size)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("ts", func(b *testing.B) {
		b.SetBytes(s.Size)
		b.ReportAllocs()
		for b.Loop() {
			write(b)
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(s.Size)
		b.ReportAllocs()
		for b.Loop() {
			read(b)
		}
	})
	b.Run("packets", func(b *testing.B) {
		b.SetBytes(s.Size)
		src := make([]byte, s.Size)
		out := make([]byte, tsBufPackets*tsPacketSize)
		for b.Loop() {
			if _, err := s.Payload.ReadAt(src, 0); err != nil {
				b.Fatal(err)
			}
			pos := 0
			for off := 0; off+tsPayload <= len(src); off += tsPayload {
				if pos == len(out) {
					io.Discard.Write(out)
					pos = 0
				}
				binary.BigEndian.PutUint32(out[pos:], 0x47010010)
				copy(out[pos+4:pos+tsPacketSize], src[off:])
				pos += tsPacketSize
			}
		}
	})
	b.Run("ratio", func(b *testing.B) {
		var tw, tr time.Duration
		for b.Loop() {
			t0 := time.Now()
			write(b)
			t1 := time.Now()
			read(b)
			tw, tr = tw+t1.Sub(t0), tr+time.Since(t1)
		}
		b.ReportMetric(float64(tw)/float64(tr), "ts/read")
	})
}

// TestTSConcurrent writes segments from several goroutines (run with
// -race): pooled state is never shared.
func TestTSConcurrent(t *testing.T) {
	segs := tsTestSegments(t, tsTestDemo, true)[:4]
	want := make([][]byte, len(segs))
	for i, s := range segs {
		want[i] = tsTestWrite(t, s)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for k := range 20 {
				i := (g + k) % len(segs)
				var b bytes.Buffer
				if err := WriteTS(&b, segs[i]); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(b.Bytes(), want[i]) {
					errs <- fmt.Errorf("goroutine %d: segment %d differs", g, segs[i].Sequence)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
