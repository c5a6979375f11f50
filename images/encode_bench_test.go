package images

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkEncoders measures what encoding 25 frames of testsrc2 costs
// (CPU time per image), the choice behind encode.go: image/jpeg against
// ffmpeg's mjpeg (with the same libjpeg quality-80 tables), and image/png
// at zlib's fastest and default levels (BestSpeed is -2, Default 0)
// against ffmpeg's png encoder. ffmpeg's cost is that of a run that
// encodes minus that of the same run writing raw frames; the Go encoders'
// is this process's CPU time (one goroutine encoding).
//
//	go test ./images -run '^$' -bench BenchmarkEncoders -benchtime 3x
func BenchmarkEncoders(b *testing.B) {
	ffmpeg := requireFFmpeg(b)
	const n = 25
	raw := func(w, h int, pixfmt string) []byte {
		out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
			"testsrc2=size=1920x1080:rate=30", "-frames:v", strconv.Itoa(n), "-vf",
			fmt.Sprintf("scale=%d:%d:out_range=full:out_color_matrix=bt601", w, h), "-pix_fmt", pixfmt, "-f", "rawvideo", "pipe:1").Output()
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	// ffmpegCPU runs ffmpeg over the raw frames and returns its CPU time
	// and output size.
	ffmpegCPU := func(frames []byte, w, h int, pixfmt string, out ...string) (time.Duration, int) {
		args := []string{"-hide_banner", "-loglevel", "error", "-threads", "1", "-f", "rawvideo", "-pix_fmt", pixfmt,
			"-s", fmt.Sprintf("%dx%d", w, h), "-i", "pipe:0", "-threads", "1"}
		cmd := exec.Command(ffmpeg, append(append(args, out...), "pipe:1")...)
		cmd.Stdin = bytes.NewReader(frames)
		o, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), len(o)
	}
	for _, size := range [][2]int{{640, 360}, {1920, 1080}} {
		w, h := size[0], size[1]
		yuv := raw(w, h, "yuvj420p")
		rgba := raw(w, h, "rgba")
		fs := frameBytes(w, h)
		name := fmt.Sprintf("%dx%d", w, h)
		b.Run(name+"/image-jpeg-q80", func(b *testing.B) {
			var bytesOut int
			c0 := selfCPU()
			for range b.N {
				bytesOut = 0
				for i := range n {
					p := yuv[i*fs:][:fs]
					cw, ch := (w+1)/2, (h+1)/2
					img := &image.YCbCr{Y: p[:w*h], Cb: p[w*h:][:cw*ch], Cr: p[w*h+cw*ch:][:cw*ch], YStride: w, CStride: cw,
						SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
					var buf bytes.Buffer
					jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80})
					bytesOut += buf.Len()
				}
			}
			b.ReportMetric(float64((selfCPU()-c0).Microseconds())/1000/float64(b.N*n), "cpu-ms/image")
			b.ReportMetric(float64(bytesOut/n), "bytes/image")
		})
		b.Run(name+"/ffmpeg-mjpeg-q80", func(b *testing.B) {
			var cpu time.Duration
			var size int
			for range b.N {
				enc, sz := ffmpegCPU(yuv, w, h, "yuvj420p", jpegArgs(80)...)
				base, _ := ffmpegCPU(yuv, w, h, "yuvj420p", "-f", "rawvideo")
				cpu, size = cpu+enc-base, sz
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*n), "cpu-ms/image")
			b.ReportMetric(float64(size/n), "bytes/image")
		})
		for _, lvl := range []png.CompressionLevel{png.BestSpeed, png.DefaultCompression} {
			b.Run(fmt.Sprintf("%s/image-png-level%d", name, lvl), func(b *testing.B) {
				enc := &png.Encoder{CompressionLevel: lvl}
				var bytesOut int
				c0 := selfCPU()
				for range b.N {
					bytesOut = 0
					for i := range n {
						img := &image.RGBA{Pix: rgba[i*4*w*h:][:4*w*h], Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
						var buf bytes.Buffer
						enc.Encode(&buf, img)
						bytesOut += buf.Len()
					}
				}
				b.ReportMetric(float64((selfCPU()-c0).Microseconds())/1000/float64(b.N*n), "cpu-ms/image")
				b.ReportMetric(float64(bytesOut/n), "bytes/image")
			})
		}
		b.Run(name+"/ffmpeg-png", func(b *testing.B) {
			var cpu time.Duration
			var size int
			for range b.N {
				enc, sz := ffmpegCPU(rgba, w, h, "rgba", "-pix_fmt", "rgb24", "-c:v", "png", "-pred", "paeth", "-f", "image2pipe")
				base, _ := ffmpegCPU(rgba, w, h, "rgba", "-pix_fmt", "rgb24", "-f", "rawvideo")
				cpu, size = cpu+enc-base, sz
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*n), "cpu-ms/image")
			b.ReportMetric(float64(size/n), "bytes/image")
		})
	}
}

// selfCPU is this process's CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// frameBytes is the size of a w x h YCbCr 4:2:0 frame.
func frameBytes(w, h int) int {
	cw, ch := (w+1)/2, (h+1)/2
	return w*h + 2*cw*ch
}
