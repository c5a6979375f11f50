package images

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"sync"
)

// encode encodes one raw frame as ffmpeg wrote it: for JPEG full-range
// BT.601 YCbCr 4:2:0 (planar, chroma planes of ceil(w/2) x ceil(h/2)),
// which image/jpeg encodes without a colour conversion; for PNG RGBA.
func encode(spec Spec, w, h int, pix []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch spec.Format {
	case PNG:
		buf.Grow(w * h)
		img := &image.RGBA{Pix: pix, Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
		if err := pngEncoder.Encode(&buf, img); err != nil {
			return nil, err
		}
	default:
		buf.Grow(w*h/4 + 1024)
		cw, ch := (w+1)/2, (h+1)/2
		img := &image.YCbCr{
			Y: pix[:w*h], Cb: pix[w*h:][:cw*ch], Cr: pix[w*h+cw*ch:][:cw*ch],
			YStride: w, CStride: cw, SubsampleRatio: image.YCbCrSubsampleRatio420,
			Rect: image.Rect(0, 0, w, h),
		}
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: spec.Quality}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// pngEncoder compresses at zlib's fastest level: PNG stays lossless, and
// the default level costs about twice the time for files about 10% smaller
// (see docs/PERFORMANCE.md).
var pngEncoder = &png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngPool{}}

type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}

func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }
