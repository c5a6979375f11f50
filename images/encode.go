package images

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Images are encoded by ffmpeg in the decoder process: JPEG by mjpeg, PNG
// by its png encoder (RGB, Paeth prediction). BenchmarkEncoders measures
// the choice (docs/PERFORMANCE.md): image/jpeg takes 7 to 9 times mjpeg's
// CPU time for larger files; image/png 1.2 to 1.4 times ffmpeg's at its
// fastest level, for about the same size.
//
// JPEGQuality keeps the meaning it has for libjpeg (and image/jpeg): the
// quantization tables are ISO/IEC 10918-1 Annex K's, scaled as libjpeg's
// jpeg_quality_scaling does (5000/Q below 50, 200-2Q from 50, each entry
// clamped to 1..255). mjpeg takes them as -intra_matrix and
// -chroma_intra_matrix at a fixed qscale of 8, where it writes and uses
// them as they are. Only the DC quantizer differs: mjpeg fixes it at 8 (a
// step of one grey level of an 8x8 block's mean), where libjpeg's is 16 at
// quality 50, 6 at 80 and 1 at 100.

// Annex K tables K.1 (luminance) and K.2 (chrominance), in natural order.
var (
	annexKLuma = [64]int{
		16, 11, 10, 16, 24, 40, 51, 61,
		12, 12, 14, 19, 26, 58, 60, 55,
		14, 13, 16, 24, 40, 57, 69, 56,
		14, 17, 22, 29, 51, 87, 80, 62,
		18, 22, 37, 56, 68, 109, 103, 77,
		24, 35, 55, 64, 81, 104, 113, 92,
		49, 64, 78, 87, 103, 121, 120, 101,
		72, 92, 95, 98, 112, 100, 103, 99,
	}
	annexKChroma = [64]int{
		17, 18, 24, 47, 99, 99, 99, 99,
		18, 21, 26, 66, 99, 99, 99, 99,
		24, 26, 56, 99, 99, 99, 99, 99,
		47, 66, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
	}
)

// quantTable scales an Annex K table to a JPEG quality as libjpeg does.
func quantTable(base *[64]int, quality int) [64]int {
	quality = min(max(quality, 1), 100)
	scale := 200 - 2*quality
	if quality < 50 {
		scale = 5000 / quality
	}
	var t [64]int
	for i, v := range base {
		t[i] = min(max((v*scale+50)/100, 1), 255)
	}
	return t
}

// matrixArg is a table as ffmpeg's -intra_matrix takes it.
func matrixArg(t [64]int) string {
	var sb strings.Builder
	for i, v := range t {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(v))
	}
	return sb.String()
}

// jpegArgs are the output options that make mjpeg encode at a quality.
func jpegArgs(quality int) []string {
	return []string{"-c:v", "mjpeg", "-qmin", "8", "-qmax", "8", "-q:v", "8",
		"-intra_matrix", matrixArg(quantTable(&annexKLuma, quality)),
		"-chroma_intra_matrix", matrixArg(quantTable(&annexKChroma, quality)),
		"-f", "image2pipe"}
}

// maxImage bounds one image read from the decoder.
const maxImage = 64 << 20

var errBadJPEG = errors.New("malformed JPEG from the encoder")

// readJPEG reads one JPEG (SOI to EOI) from a stream of them: marker
// segments by their lengths, entropy-coded data up to the first marker
// that is not a stuffed 0xFF or a restart marker.
func readJPEG(r *bufio.Reader) ([]byte, error) {
	var out []byte
	b, err := r.Peek(2)
	if err != nil {
		if err == io.EOF && len(b) == 0 {
			return nil, io.EOF // no more images
		}
		return nil, io.ErrUnexpectedEOF
	}
	if b[0] != 0xff || b[1] != 0xd8 {
		return nil, errBadJPEG
	}
	r.Discard(2)
	out = append(out, 0xff, 0xd8)
	scan := false
	for len(out) < maxImage {
		c, err := r.ReadByte()
		if err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		if c != 0xff {
			if !scan {
				return nil, errBadJPEG
			}
			out = append(out, c)
			continue
		}
		m, err := r.ReadByte()
		for err == nil && m == 0xff { // fill bytes
			m, err = r.ReadByte()
		}
		if err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		out = append(out, 0xff, m)
		switch {
		case scan && (m == 0 || m >= 0xd0 && m <= 0xd7):
			continue // stuffed byte, restart marker
		case m == 0xd9:
			return out, nil
		case m == 0x01 || m >= 0xd0 && m <= 0xd7:
			continue // no length
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		n := int(l[0])<<8 | int(l[1])
		if n < 2 {
			return nil, errBadJPEG
		}
		out = append(out, l[0], l[1])
		seg := make([]byte, n-2)
		if _, err := io.ReadFull(r, seg); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		out = append(out, seg...)
		scan = m == 0xda
	}
	return nil, fmt.Errorf("%w: over %d bytes", errBadJPEG, maxImage)
}

// pngArgs are the output options of PNG images.
func pngArgs() []string {
	return []string{"-c:v", "png", "-pred", "paeth", "-f", "image2pipe"}
}

var (
	pngSignature = []byte("\x89PNG\r\n\x1a\n")
	errBadPNG    = errors.New("malformed PNG from the encoder")
)

// readPNG reads one PNG (signature to IEND) from a stream of them, chunk
// by chunk.
func readPNG(r *bufio.Reader) ([]byte, error) {
	b, err := r.Peek(len(pngSignature))
	if err != nil {
		if err == io.EOF && len(b) == 0 {
			return nil, io.EOF
		}
		return nil, io.ErrUnexpectedEOF
	}
	if !bytes.Equal(b, pngSignature) {
		return nil, errBadPNG
	}
	out := make([]byte, len(pngSignature), 64<<10)
	copy(out, pngSignature)
	r.Discard(len(pngSignature))
	for len(out) < maxImage {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		n := int64(hdr[0])<<24 | int64(hdr[1])<<16 | int64(hdr[2])<<8 | int64(hdr[3])
		if n > maxImage {
			return nil, fmt.Errorf("%w: chunk of %d bytes", errBadPNG, n)
		}
		out = append(out, hdr[:]...)
		start := len(out)
		out = append(out, make([]byte, n+4)...) // data and CRC
		if _, err := io.ReadFull(r, out[start:]); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		if string(hdr[4:]) == "IEND" {
			return out, nil
		}
	}
	return nil, fmt.Errorf("%w: over %d bytes", errBadPNG, maxImage)
}
