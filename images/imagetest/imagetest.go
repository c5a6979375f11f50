// Package imagetest makes and reads the "index pattern" streams the
// GetImages tests use (in images and web): every frame shows its own index,
// so a test can tell from the pixels of a thumbnail which frame it is.
//
// The pattern is a 320x240 picture whose ten blocks (two rows of five,
// 64x120 each) are white or black for the bits of the frame index, bit 0
// top left. Reading it back needs no OCR and survives H.264, scaling to a
// few pixels a block and JPEG at any sane quality.
package imagetest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"io"
	"math/rand"
	"os/exec"
	"slices"
	"strconv"
	"testing"

	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// Width and Height are the pattern's picture size.
const Width, Height = 320, 240

const bits = 10

// Encode writes to path seconds of the pattern at fps, frame indexes from
// first, with 1 s GOPs and 3 B-frames in decode order (b-adapt=0), as
// Matroska; codec is "hevc" (libx265) or anything else for libx264.
// tsOffset is ffmpeg's -output_ts_offset (seconds) of the first frame.
func Encode(t testing.TB, ffmpeg, path, codec string, fps, first, seconds int, tsOffset string) {
	t.Helper()
	src := fmt.Sprintf("color=c=black:s=%dx%d:r=%d,format=yuv420p,"+
		"geq=lum='if(bitand(N+%d\\,pow(2\\,floor(X/64)+5*floor(Y/120)))\\,235\\,16)':cb=128:cr=128,noise=alls=16:allf=t",
		Width, Height, fps, first)
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i", src, "-t", strconv.Itoa(seconds),
		"-pix_fmt", "yuv420p", "-g", strconv.Itoa(fps), "-keyint_min", strconv.Itoa(fps), "-bf", "3"}
	if codec == "hevc" {
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:bframes=3:b-adapt=0:scenecut=0:open-gop=0")
	} else {
		args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-sc_threshold", "0", "-x264-params", "b-adapt=0")
	}
	args = append(args, "-output_ts_offset", tsOffset, path)
	if out, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}

// ReadIndex reads the pattern's index back from an image of any size (the
// mean of 5x5 pixels at each block's centre against mid-grey).
func ReadIndex(img image.Image) int {
	b := img.Bounds()
	n := 0
	for bit := range bits {
		cx := (bit%5*64 + 32) * b.Dx() / Width
		cy := (bit/5*120 + 60) * b.Dy() / Height
		var sum, cnt int
		for y := cy - 2; y <= cy+2; y++ {
			for x := cx - 2; x <= cx+2; x++ {
				if x >= b.Min.X && x < b.Max.X && y >= b.Min.Y && y < b.Max.Y {
					sum += int(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
					cnt++
				}
			}
		}
		if cnt > 0 && sum/cnt > 128 {
			n |= 1 << bit
		}
	}
	return n
}

// Frame is where a frame's bytes are in a Matroska file.
type Frame struct {
	Cluster   int // 0-based
	Off, Size int
}

// Walk calls fn with each element event of a Matroska file, in order.
func Walk(t testing.TB, data []byte, fn func(*mkv.Event)) {
	t.Helper()
	rd := mkv.NewReader(bytes.NewReader(data))
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(ev)
	}
}

// Frames lists the frames of a Matroska file.
func Frames(t testing.TB, data []byte) []Frame {
	t.Helper()
	var out []Frame
	cluster := -1
	Walk(t, data, func(ev *mkv.Event) {
		switch ev.Kind {
		case mkv.KindClusterStart:
			cluster++
		case mkv.KindBlock:
			for _, f := range ev.Block.Frames {
				out = append(out, Frame{cluster, int(ev.Offset) + f.Off, f.Len})
			}
		}
	})
	return out
}

// Corrupt returns a copy of a Matroska file whose frames in the given
// clusters (0-based) are garbage from a random source seeded with seed:
// keep=true keeps each frame's NAL unit framing (4-byte lengths and NAL
// headers) and randomizes the rest, so the decoder gets well-formed NAL
// units of nonsense; keep=false randomizes every byte.
func Corrupt(t testing.TB, data []byte, clusters []int, keep bool, seed int64) []byte {
	t.Helper()
	out := bytes.Clone(data)
	rnd := rand.New(rand.NewSource(seed))
	n := 0
	for _, f := range Frames(t, data) {
		if !slices.Contains(clusters, f.Cluster) {
			continue
		}
		b := out[f.Off : f.Off+f.Size]
		n++
		if !keep {
			rnd.Read(b)
			continue
		}
		for p := 0; p+4 < len(b); {
			l := int(uint32(b[p])<<24 | uint32(b[p+1])<<16 | uint32(b[p+2])<<8 | uint32(b[p+3]))
			if l <= 0 || p+4+l > len(b) {
				break
			}
			rnd.Read(b[p+5 : p+4+l])
			p += 4 + l
		}
	}
	if n == 0 {
		t.Fatal("no frames corrupted")
	}
	return out
}
