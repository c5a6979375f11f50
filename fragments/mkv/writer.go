package mkv

import (
	"encoding/binary"
	"math"
)

// This file is a small EBML/Matroska writer: append-style helpers that build
// elements into a byte slice. It writes what the reader reads (EBML header,
// Info, Tracks, Clusters, blocks, segment-level Tags), for test streams and
// for Matroska output such as GetMedia.

// AppendID appends an element ID. IDs carry their length marker, so they
// are written as the 1-4 bytes of the constant (0xA3 is one byte,
// 0x1A45DFA3 four).
func AppendID(dst []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(dst, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(dst, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(dst, byte(id>>8), byte(id))
	}
	return append(dst, byte(id))
}

// AppendSize appends an element data size in the shortest EBML encoding.
// A value whose data bits would all be ones (which means "unknown size")
// takes one byte more. UnknownSize (or any negative size) appends the
// 8-byte unknown size.
func AppendSize(dst []byte, size int64) []byte {
	if size < 0 {
		return append(dst, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	}
	n := 1
	for n < 8 && uint64(size) >= 1<<(7*n)-1 {
		n++
	}
	return appendVint(dst, uint64(size), n)
}

// appendVint appends v as an n-byte vint (marker bit set, n in 1..8).
func appendVint(dst []byte, v uint64, n int) []byte {
	v |= 1 << (7 * n)
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// AppendElement appends one element: its ID, the size of body, and body.
func AppendElement(dst []byte, id uint32, body []byte) []byte {
	dst = AppendID(dst, id)
	dst = AppendSize(dst, int64(len(body)))
	return append(dst, body...)
}

// AppendUnknownSizeHeader appends the ID and an unknown (8-byte, all ones)
// size: the start of a Segment or Cluster whose end is not known yet, as
// live producers write them.
func AppendUnknownSizeHeader(dst []byte, id uint32) []byte {
	return AppendSize(AppendID(dst, id), UnknownSize)
}

// AppendUint appends an unsigned integer element in the fewest bytes (zero
// is one 0x00 byte).
func AppendUint(dst []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v >= 1<<(8*n) {
		n++
	}
	dst = AppendID(dst, id)
	dst = AppendSize(dst, int64(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// AppendInt appends a signed integer element in the fewest bytes.
func AppendInt(dst []byte, id uint32, v int64) []byte {
	n := 1
	for n < 8 && (v < -(1<<(8*n-1)) || v >= 1<<(8*n-1)) {
		n++
	}
	dst = AppendID(dst, id)
	dst = AppendSize(dst, int64(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// AppendFloat appends a float element as 8 bytes.
func AppendFloat(dst []byte, id uint32, v float64) []byte {
	dst = AppendID(dst, id)
	dst = AppendSize(dst, 8)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(v))
}

// AppendString appends a string (or UTF-8) element, without a NUL.
func AppendString(dst []byte, id uint32, s string) []byte {
	dst = AppendID(dst, id)
	dst = AppendSize(dst, int64(len(s)))
	return append(dst, s...)
}

// EBMLHeader returns an EBML header for DocType matroska, version 4.
func EBMLHeader() []byte {
	var b []byte
	b = AppendUint(b, 0x4286, 1) // EBMLVersion
	b = AppendUint(b, 0x42F7, 1) // EBMLReadVersion
	b = AppendUint(b, 0x42F2, 4) // EBMLMaxIDLength
	b = AppendUint(b, 0x42F3, 8) // EBMLMaxSizeLength
	b = AppendString(b, IDDocType, "matroska")
	b = AppendUint(b, 0x4287, 4) // DocTypeVersion
	b = AppendUint(b, 0x4285, 2) // DocTypeReadVersion
	return AppendElement(nil, IDEBML, b)
}

// Info returns a segment Info element with the given TimecodeScale
// (nanoseconds per timecode unit; 1000000 is milliseconds).
func Info(timecodeScale int64) []byte {
	var b []byte
	b = AppendUint(b, IDTimecodeScale, uint64(timecodeScale))
	b = AppendString(b, 0x4D80, "kvsgate") // MuxingApp
	b = AppendString(b, 0x5741, "kvsgate") // WritingApp
	return AppendElement(nil, IDInfo, b)
}

// TrackEntry returns one TrackEntry element. Zero fields are left out;
// Video or Audio settings are written when Width/Height or SamplingFreq/
// Channels are set.
func TrackEntry(t Track) []byte {
	var b []byte
	b = AppendUint(b, IDTrackNumber, t.Number)
	if t.UID != 0 {
		b = AppendUint(b, IDTrackUID, t.UID)
	}
	if t.Type != 0 {
		b = AppendUint(b, IDTrackType, t.Type)
	}
	if t.Name != "" {
		b = AppendString(b, IDName, t.Name)
	}
	if t.CodecID != "" {
		b = AppendString(b, IDCodecID, t.CodecID)
	}
	if t.CodecPrivate != nil {
		b = AppendElement(b, IDCodecPrivate, t.CodecPrivate)
	}
	if t.DefaultDuration > 0 {
		b = AppendUint(b, IDDefaultDur, uint64(t.DefaultDuration))
	}
	if t.Width != 0 || t.Height != 0 {
		var v []byte
		v = AppendUint(v, IDPixelWidth, t.Width)
		v = AppendUint(v, IDPixelHeight, t.Height)
		b = AppendElement(b, IDVideo, v)
	}
	if t.SamplingFreq != 0 || t.Channels != 0 || t.BitDepth != 0 {
		var a []byte
		if t.SamplingFreq != 0 {
			a = AppendFloat(a, IDSamplingFreq, t.SamplingFreq)
		}
		if t.Channels != 0 {
			a = AppendUint(a, IDChannels, t.Channels)
		}
		if t.BitDepth != 0 {
			a = AppendUint(a, IDBitDepth, t.BitDepth)
		}
		b = AppendElement(b, IDAudio, a)
	}
	return AppendElement(nil, IDTrackEntry, b)
}

// Tracks returns a Tracks element holding one TrackEntry per track.
func Tracks(tracks []Track) []byte {
	var b []byte
	for _, t := range tracks {
		b = append(b, TrackEntry(t)...)
	}
	return AppendElement(nil, IDTracks, b)
}

// ClusterStart returns the start of a Cluster of unknown size and its
// Timecode, as the KVS producers send them; blocks follow.
func ClusterStart(timecode uint64) []byte {
	b := AppendUnknownSizeHeader(nil, IDCluster)
	return AppendUint(b, IDTimecode, timecode)
}

// appendBlockBody appends the body of a SimpleBlock or Block without lacing.
func appendBlockBody(dst []byte, track uint64, reltc int16, flags byte, frame []byte) []byte {
	n := 1
	for n < 8 && track >= 1<<(7*n)-1 {
		n++
	}
	dst = appendVint(dst, track, n)
	dst = append(dst, byte(uint16(reltc)>>8), byte(reltc), flags)
	return append(dst, frame...)
}

// SimpleBlock returns a SimpleBlock of one frame (no lacing) on a track, at
// reltc timecode units from the cluster Timecode.
func SimpleBlock(track uint64, reltc int16, key bool, frame []byte) []byte {
	flags := byte(0)
	if key {
		flags = 0x80
	}
	body := appendBlockBody(make([]byte, 0, len(frame)+8), track, reltc, flags, frame)
	return AppendElement(nil, IDSimpleBlock, body)
}

// BlockGroup returns a BlockGroup holding a Block of one frame. A frame that
// is not a key frame gets a ReferenceBlock (to the previous frame). duration
// is a BlockDuration in timecode units, left out if negative.
func BlockGroup(track uint64, reltc int16, key bool, duration int64, frame []byte) []byte {
	var b []byte
	b = AppendElement(b, IDBlock, appendBlockBody(make([]byte, 0, len(frame)+8), track, reltc, 0, frame))
	if duration >= 0 {
		b = AppendUint(b, IDBlockDuration, uint64(duration))
	}
	if !key {
		b = AppendInt(b, IDReferenceBlock, -1)
	}
	return AppendElement(nil, IDBlockGroup, b)
}

// Tags returns a segment-level Tags element with one untargeted Tag holding
// the SimpleTags (fragment metadata in KVS terms). Binary tags are written
// as TagBinary, others as TagString.
func Tags(tags []SimpleTag) []byte {
	tag := AppendElement(nil, IDTargets, nil)
	for _, t := range tags {
		var s []byte
		s = AppendString(s, IDTagName, t.Name)
		if t.Binary {
			s = AppendElement(s, IDTagBinary, []byte(t.Value))
		} else {
			s = AppendString(s, IDTagString, t.Value)
		}
		tag = AppendElement(tag, IDSimpleTag, s)
	}
	return AppendElement(nil, IDTags, AppendElement(nil, IDTag, tag))
}
