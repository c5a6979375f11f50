package hls

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// fMP4 segments hold one track each (HLS renditions are demuxed): the init
// segment is built with mp4ff, the media segments' moof is written by hand
// (a few fixed-layout boxes) so that sample data goes from the payload to
// the writer without mp4ff's in-memory mdat and per-sample allocations.

// Timescale of video tracks.
const mp4VideoTimescale = 90000

// mp4Timescale returns the mdhd timescale of a track: 90 kHz for video,
// the sampling rate for audio (for AAC the track's, else the one its
// AudioSpecificConfig says; for G.711 its WAVEFORMATEX's). p is the
// track's parsed codec private data, or nil to parse it if needed.
func mp4Timescale(t *mkv.Track, p *codecConfig) (uint32, error) {
	switch k := trackCodecOf(t); k {
	case tcAVC, tcHEVC:
		return mp4VideoTimescale, nil
	case tcAAC, tcG711:
		if k == tcAAC && p == nil {
			if f := t.SamplingFreq; f >= 1 && f <= math.MaxUint32 && f == math.Trunc(f) {
				return uint32(f), nil
			}
		}
		if p == nil {
			var err error
			if p, err = parseCodecPrivate(t); err != nil {
				return 0, err
			}
		}
		r, err := audioRate(t, p)
		return uint32(r), err
	}
	return 0, fmt.Errorf("%w: track %d codec %q", ErrUnsupportedMedia, t.Number, t.CodecID)
}

func mp4Track(h *fragments.Header, track int) (*mkv.Track, error) {
	if h == nil || track < 0 || track >= len(h.Tracks) {
		n := 0
		if h != nil {
			n = len(h.Tracks)
		}
		return nil, fmt.Errorf("hls: track index %d out of range (%d tracks)", track, n)
	}
	return &h.Tracks[track], nil
}

// WriteMP4Init writes the fMP4 init segment (ftyp, moov) of one track of a
// stream: h.Tracks[track], as track ID track+1. Video gets an avc1 or hvc1
// sample entry holding the track's avcC or hvcC as is, at a 90 kHz
// timescale; AAC an mp4a entry whose esds holds the AudioSpecificConfig,
// at its sampling rate; G.711 (A_MS/ACM with a WAVEFORMATEX of A-law or
// µ-law) an alaw or ulaw entry with the WAVEFORMATEX's channel count, at
// its sampling rate.
func WriteMP4Init(w io.Writer, h *fragments.Header, track int) error {
	t, err := mp4Track(h, track)
	if err != nil {
		return err
	}
	p, err := parseCodecPrivate(t)
	if err != nil {
		return err
	}
	ts, err := mp4Timescale(t, p)
	if err != nil {
		return err
	}
	id := uint32(track + 1)
	init := mp4.NewMP4Init()
	brands := []string{"iso6", "iso5", "cmfc", "mp41"}
	if p.kind == tcG711 {
		// CMAF has no G.711 media profile: not cmfc.
		brands = []string{"iso6", "iso5", "mp41"}
	}
	init.AddChild(mp4.NewFtyp("iso6", 0, brands))
	moov := mp4.NewMoovBox()
	init.AddChild(moov)
	mvhd := mp4.CreateMvhd()
	mvhd.NextTrackID = id + 1
	moov.AddChild(mvhd)
	media := "video"
	if !p.kind.video() {
		media = "audio"
	}
	trak := mp4.CreateEmptyTrak(id, ts, media, "und")
	moov.AddChild(trak)
	mvex := mp4.NewMvexBox()
	mvex.AddChild(mp4.CreateTrex(id))
	moov.AddChild(mvex)

	stsd := trak.Mdia.Minf.Stbl.Stsd
	switch p.kind {
	case tcAVC, tcHEVC:
		wd, ht := p.width, p.height
		if wd == 0 || ht == 0 {
			wd, ht = int(t.Width), int(t.Height)
		}
		if wd <= 0 || wd > math.MaxUint16 || ht <= 0 || ht > math.MaxUint16 {
			return fmt.Errorf("%w: track %d: picture size %dx%d", ErrInvalidCodecPrivate, t.Number, wd, ht)
		}
		trak.Tkhd.Width, trak.Tkhd.Height = mp4.Fixed32(wd<<16), mp4.Fixed32(ht<<16)
		entry, cfg := "avc1", &mp4RawBox{typ: "avcC", body: t.CodecPrivate}
		if p.kind == tcHEVC {
			entry, cfg = "hvc1", &mp4RawBox{typ: "hvcC", body: hvc1Config(t.CodecPrivate)}
		}
		stsd.AddChild(mp4.CreateVisualSampleEntryBox(entry, uint16(wd), uint16(ht), cfg))
	case tcAAC, tcG711:
		ch := audioChannels(t, p)
		rate := ts
		if rate > math.MaxUint16 { // AudioSampleEntry's 16.16 rate cannot say it; mdhd does
			rate = 0
		}
		if p.kind == tcAAC {
			stsd.AddChild(mp4.CreateAudioSampleEntryBox("mp4a", uint16(ch), 16, uint16(rate), mp4.CreateEsdsBox(t.CodecPrivate)))
			break
		}
		// mp4ff has no G.711 sample entry of its own (it decodes alaw and
		// ulaw as unknown boxes), but its generic AudioSampleEntry writes
		// the plain ISO/IEC 14496-12 12.2.3 one under any 4CC: version 0,
		// channelcount, samplesize 16, samplerate << 16, and no child box
		// (G.711 needs no decoder configuration).
		stsd.AddChild(mp4.CreateAudioSampleEntryBox(p.g711.entry(), uint16(ch), 16, uint16(rate), nil))
	}
	sw := bits.NewFixedSliceWriter(int(init.Size()))
	if err := init.EncodeSW(sw); err != nil {
		return err
	}
	_, err = w.Write(sw.Bytes())
	return err
}

// hvc1Config returns a copy of a valid hvcC with array_completeness set
// on its VPS, SPS and PPS arrays, as an hvc1 sample entry requires
// (ISO/IEC 14496-15 8.4.1.1.2; Safari plays HEVC only as hvc1). Producers
// such as ffmpeg's Matroska muxer leave it 0.
func hvc1Config(b []byte) []byte {
	b = slices.Clone(b)
	r := b[23:]
	for range int(b[22]) {
		switch hevc.NaluType(r[0] & 0x3f) {
		case hevc.NALU_VPS, hevc.NALU_SPS, hevc.NALU_PPS:
			r[0] |= 0x80
		}
		n := int(binary.BigEndian.Uint16(r[1:]))
		r = r[3:]
		for range n {
			r = r[2+int(binary.BigEndian.Uint16(r)):]
		}
	}
	return b
}

// mp4RawBox is a box written as given (the stream's own avcC/hvcC).
type mp4RawBox struct {
	typ  string
	body []byte
}

func (b *mp4RawBox) Type() string { return b.typ }
func (b *mp4RawBox) Size() uint64 { return uint64(8 + len(b.body)) }
func (b *mp4RawBox) Encode(w io.Writer) error {
	sw := bits.NewFixedSliceWriter(int(b.Size()))
	if err := b.EncodeSW(sw); err != nil {
		return err
	}
	_, err := w.Write(sw.Bytes())
	return err
}
func (b *mp4RawBox) EncodeSW(sw bits.SliceWriter) error {
	sw.WriteUint32(uint32(b.Size()))
	sw.WriteString(b.typ, false)
	sw.WriteBytes(b.body)
	return sw.AccError()
}
func (b *mp4RawBox) Info(w io.Writer, _, indent, _ string) error {
	_, err := fmt.Fprintf(w, "%s[%s] size=%d\n", indent, b.typ, b.Size())
	return err
}

// Sample flags (ISO/IEC 14496-12 8.8.3.1): a sync sample depends on no
// other; any other sample depends on others and is not a sync sample.
const (
	mp4FlagsSync    = 0x02000000
	mp4FlagsNonSync = 0x01010000
)

// Sizes of the moof boxes this package writes.
const (
	mp4MfhdSize      = 16
	mp4TfhdSize      = 16
	mp4TfdtSize      = 20
	mp4TrunHeadSize  = 20 // header, version/flags, sample_count, data_offset
	mp4TrunEntrySize = 16 // duration, size, flags, composition offset
	mp4MdatHeadSize  = 8
	mp4MaxPooledBuf  = 16 << 20
)

var mp4BufPool sync.Pool // *[]byte

func mp4GetBuf(n int) *[]byte {
	if v, ok := mp4BufPool.Get().(*[]byte); ok {
		if cap(*v) >= n {
			*v = (*v)[:n]
			return v
		}
		mp4BufPool.Put(v)
	}
	b := make([]byte, n, max(n, 4<<10))
	return &b
}

func mp4PutBuf(b *[]byte) {
	if cap(*b) <= mp4MaxPooledBuf {
		mp4BufPool.Put(b)
	}
}

// nsToTimescale converts a time in ns to units of ts per second, rounding to
// the nearest unit, without overflow for any int64 time.
func nsToTimescale(ns int64, ts uint32) int64 {
	q, r := ns/1e9, ns%1e9
	if r < 0 {
		q, r = q-1, r+1e9
	}
	return q*int64(ts) + (r*int64(ts)+5e8)/1e9
}

// WriteMP4Media writes one fragment's samples of h.Tracks[track] as an fMP4
// media segment: moof (mfhd with the fragment's sequence number; traf with
// tfhd, tfdt and a version 1 trun) and mdat.
//
// Each sample's decode time is its absolute time (BaseNS + DTS) converted
// to the track's timescale, and its duration the difference to the next
// one's (for the last sample, to BaseNS + DTS + Dur), so consecutive
// fragments are contiguous and never drift. Composition offsets are PTS -
// DTS the same way. Decode times must not be negative.
//
// G.711 samples are timed by their size instead: a Matroska block of
// G.711 holds bytes/channels audio samples, which is its exact duration
// in the track's timescale (the sampling rate), where block timecodes are
// rounded (to ms, usually). Only the fragment's first decode time comes
// from its timestamps; a block whose size is not a multiple of the channel
// count is an error.
//
// With s.Part set, only the part's samples are written (a partial
// segment); its tfdt is its first sample's decode time, on the same
// timeline as the whole segment's.
//
// The samples' bytes are read with one ReadAt of the payload range that
// spans them into a pooled buffer, before anything is written: invalid
// samples or a read error leave w untouched.
func WriteMP4Media(w io.Writer, s *Segment, track int) error {
	if s == nil || s.Meta == nil || s.Payload == nil {
		return errors.New("hls: segment without samples or payload")
	}
	// Media segments need only the timescale: the codec private data was
	// checked by CheckTracks and WriteMP4Init.
	t, err := mp4Track(s.Header, track)
	if err != nil {
		return err
	}
	kind := trackCodecOf(t)
	audio := kind == tcAAC || kind == tcG711
	var p *codecConfig
	var g711Channels int64 // bytes per G.711 sample time; 0 for other codecs
	if kind == tcG711 {
		if p, err = parseCodecPrivate(t); err != nil {
			return err
		}
		g711Channels = int64(p.g711.channels)
	}
	ts, err := mp4Timescale(t, p)
	if err != nil {
		return err
	}

	// The track's samples, and the payload span that holds them.
	from, to := s.sampleRange()
	n := 0
	var lo, hi, prevDTS, dataSize int64
	for i := from; i < to; i++ {
		sm := &s.Meta.Samples[i]
		if int(sm.Track) != track {
			continue
		}
		if sm.Offset < 0 || sm.Size < 0 || sm.Size > math.MaxUint32 || sm.Offset > s.Size-sm.Size {
			return fmt.Errorf("hls: sample %d (%d bytes at %d) outside the %d-byte payload", i, sm.Size, sm.Offset, s.Size)
		}
		if g711Channels > 0 && sm.Size%g711Channels != 0 {
			return fmt.Errorf("hls: sample %d: %d bytes of G.711 is not a whole number of %d-channel samples", i, sm.Size, g711Channels)
		}
		if n == 0 {
			lo, hi = sm.Offset, sm.Offset+sm.Size
		} else {
			if sm.DTS <= prevDTS {
				return fmt.Errorf("hls: sample %d: decode time %d ns not after %d ns", i, sm.DTS, prevDTS)
			}
			lo, hi = min(lo, sm.Offset), max(hi, sm.Offset+sm.Size)
		}
		prevDTS = sm.DTS
		dataSize += sm.Size
		n++
	}
	if n == 0 {
		return fmt.Errorf("hls: no samples of track %d in fragment %d", track, s.Sequence)
	}
	if dataSize > math.MaxUint32-mp4MdatHeadSize {
		return fmt.Errorf("hls: %d bytes of samples is too many for one mdat", dataSize)
	}

	data := mp4GetBuf(int(hi - lo))
	defer mp4PutBuf(data)
	if k, err := s.Payload.ReadAt(*data, lo); k < len(*data) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("hls: reading fragment %d payload: %w", s.Sequence, err)
	}

	trafSize := 8 + mp4TfhdSize + mp4TfdtSize + mp4TrunHeadSize + mp4TrunEntrySize*n
	moofSize := 8 + mp4MfhdSize + trafSize
	hb := mp4GetBuf(moofSize + mp4MdatHeadSize)
	defer mp4PutBuf(hb)
	b := (*hb)[:0]
	b = mp4AppendBox(b, moofSize, "moof")
	b = mp4AppendBox(b, mp4MfhdSize, "mfhd")
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(s.Sequence))
	b = mp4AppendBox(b, trafSize, "traf")
	b = mp4AppendBox(b, mp4TfhdSize, "tfhd")
	b = binary.BigEndian.AppendUint32(b, 0x020000) // default-base-is-moof
	b = binary.BigEndian.AppendUint32(b, uint32(track+1))
	b = mp4AppendBox(b, mp4TfdtSize, "tfdt")
	b = binary.BigEndian.AppendUint32(b, 1<<24) // version 1: 64-bit time
	tfdtAt := len(b)
	b = binary.BigEndian.AppendUint64(b, 0)
	b = mp4AppendBox(b, mp4TrunHeadSize+mp4TrunEntrySize*n, "trun")
	// Version 1 (signed composition offsets); data offset, sample
	// duration, size, flags and composition offset present.
	b = binary.BigEndian.AppendUint32(b, 1<<24|0x000f01)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint32(b, uint32(moofSize+mp4MdatHeadSize))

	first := true
	var cur *fragments.Sample
	var curDT int64
	entry := func(next int64) error {
		dur, cto := next-curDT, nsToTimescale(s.BaseNS+cur.PTS, ts)-curDT
		if g711Channels > 0 {
			dur = cur.Size / g711Channels
		}
		if dur < 0 || dur > math.MaxUint32 || cto < math.MinInt32 || cto > math.MaxInt32 {
			return fmt.Errorf("hls: fragment %d: sample duration %d or composition offset %d out of range", s.Sequence, dur, cto)
		}
		flags := uint32(mp4FlagsNonSync)
		if cur.Key || audio {
			flags = mp4FlagsSync
		}
		b = binary.BigEndian.AppendUint32(b, uint32(dur))
		b = binary.BigEndian.AppendUint32(b, uint32(cur.Size))
		b = binary.BigEndian.AppendUint32(b, flags)
		b = binary.BigEndian.AppendUint32(b, uint32(int32(cto)))
		return nil
	}
	for i := from; i < to; i++ {
		sm := &s.Meta.Samples[i]
		if int(sm.Track) != track {
			continue
		}
		dt := nsToTimescale(s.BaseNS+sm.DTS, ts)
		if first {
			if dt < 0 {
				return fmt.Errorf("hls: fragment %d: decode time %d ns is before 0", s.Sequence, s.BaseNS+sm.DTS)
			}
			binary.BigEndian.PutUint64(b[tfdtAt:], uint64(dt))
			first = false
		} else if err := entry(dt); err != nil {
			return err
		}
		cur, curDT = sm, dt
	}
	end := cur.DTS + cur.Dur
	if next, ok := s.nextDTS(track, to); ok && s.Part != nil {
		end = next // a part lasts until the next part
	}
	if err := entry(nsToTimescale(s.BaseNS+end, ts)); err != nil {
		return err
	}
	b = mp4AppendBox(b, int(dataSize)+mp4MdatHeadSize, "mdat")
	*hb = b
	if _, err := w.Write(b); err != nil {
		return err
	}

	// The samples in order, adjacent ones in one write.
	var run []byte
	runEnd := int64(-1)
	for i := from; i < to; i++ {
		sm := &s.Meta.Samples[i]
		if int(sm.Track) != track {
			continue
		}
		off := sm.Offset - lo
		if sm.Offset == runEnd {
			run = (*data)[off-int64(len(run)) : off+sm.Size]
		} else {
			if len(run) > 0 {
				if _, err := w.Write(run); err != nil {
					return err
				}
			}
			run = (*data)[off : off+sm.Size]
		}
		runEnd = sm.Offset + sm.Size
	}
	_, err = w.Write(run)
	return err
}

func mp4AppendBox(b []byte, size int, typ string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	return append(b, typ...)
}
