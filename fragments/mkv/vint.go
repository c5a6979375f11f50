// Package mkv is an incremental Matroska (EBML) reader for PutMedia bodies.
//
// It reads from an io.Reader as bytes arrive and reports what a fragment
// ingester needs: stream headers (EBML header, Info, Tracks), cluster starts
// and ends, blocks with the byte ranges of their frames, and segment-level
// tags. Segments and Clusters may have unknown sizes (the KVS C producer and
// GStreamer's matroskamux both write them); an unknown-size element ends where
// an element that cannot be its child begins, or at the end of input.
//
// No maintained Go Matroska reader handles that incremental, unknown-size
// input well, hence this small one. It is fuzzed (FuzzReader).
package mkv

import (
	"errors"
	"math/bits"
)

// UnknownSize is the size reported for elements whose size field has all data bits set.
const UnknownSize = -1

// Errors returned by the reader. Anything wrapping ErrInvalid means the input
// is not Matroska as PutMedia accepts it.
var (
	ErrInvalid   = errors.New("mkv: invalid data")
	ErrTruncated = errors.New("mkv: truncated element")
	ErrTooLarge  = errors.New("mkv: element too large")
)

// VintLen returns the length of the vint (element ID or size) that starts
// with b, or 0 if b is 0.
func VintLen(b byte) int { return vintLen(b) }

// vintLen returns the encoded length of a variable-size integer from its
// first byte, or 0 if the byte is 0 (lengths over 8 are not valid EBML).
func vintLen(b byte) int {
	if b == 0 {
		return 0
	}
	return bits.LeadingZeros8(b) + 1
}

// readID decodes an element ID (1-4 bytes, marker bit kept) from p.
// It returns the ID and its length, or n == 0 if p is too short, n < 0 if invalid.
func readID(p []byte) (id uint32, n int) {
	if len(p) == 0 {
		return 0, 0
	}
	n = vintLen(p[0])
	if n == 0 || n > 4 {
		return 0, -1
	}
	if len(p) < n {
		return 0, 0
	}
	for i := 0; i < n; i++ {
		id = id<<8 | uint32(p[i])
	}
	return id, n
}

// readSize decodes an element data size (1-8 bytes). Sizes with all data bits
// set are UnknownSize. It returns n == 0 if p is too short, n < 0 if invalid.
func readSize(p []byte) (size int64, n int) {
	if len(p) == 0 {
		return 0, 0
	}
	n = vintLen(p[0])
	if n == 0 {
		return 0, -1
	}
	if len(p) < n {
		return 0, 0
	}
	v := uint64(p[0]) & (0xFF >> n)
	allOnes := v == uint64(0xFF>>n)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(p[i])
		allOnes = allOnes && p[i] == 0xFF
	}
	if allOnes {
		return UnknownSize, n
	}
	if v > 1<<62 {
		return 0, -1
	}
	return int64(v), n
}

// readVint decodes a vint value (marker removed) as used for track numbers and
// EBML lace sizes. It returns n == 0 if p is too short or invalid.
func readVint(p []byte) (v uint64, n int) {
	if len(p) == 0 {
		return 0, 0
	}
	n = vintLen(p[0])
	if n == 0 || len(p) < n {
		return 0, 0
	}
	v = uint64(p[0]) & (0xFF >> n)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(p[i])
	}
	return v, n
}

// readUint decodes a big-endian unsigned integer element body (0-8 bytes).
func readUint(p []byte) (uint64, bool) {
	if len(p) > 8 {
		return 0, false
	}
	var v uint64
	for _, b := range p {
		v = v<<8 | uint64(b)
	}
	return v, true
}

// readInt decodes a big-endian signed integer element body (0-8 bytes).
func readInt(p []byte) (int64, bool) {
	if len(p) > 8 {
		return 0, false
	}
	if len(p) == 0 {
		return 0, true
	}
	v := int64(int8(p[0]))
	for _, b := range p[1:] {
		v = v<<8 | int64(b)
	}
	return v, true
}
