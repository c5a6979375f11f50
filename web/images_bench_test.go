package web

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/images"
)

// BenchmarkImages: one page of 25 JPEG thumbnails (640x360, quality 80)
// sampled every second from 26 s of 1080p30 H.264 (testsrc2, libx264
// veryfast, 1 s GOPs, 3 B-frames), through the HTTP API with a cold
// cache; the same 25 frames extracted from an MP4 of the same media by
// single ffmpeg commands (several ways; the fastest is the one to beat);
// and the same page again from the cache.
//
// Besides wall time, CPU time: of the test process (server and client)
// and its children (the ffmpeg processes) for kvsgate, of the ffmpeg
// process for the commands. On a machine other work shares, CPU time is
// the steadier comparison.
//
// Two pages: "keyframes" samples on the key frames (t = 0, 1, ... 24 s),
// "midgop" half a second later (frame 15 of each GOP, the 16th in
// presentation order: 11 P-frames, 2 reference B-frames and 12
// non-reference B-frames on this page).
//
//	go test ./web -run '^$' -bench BenchmarkImages -benchtime 5x
func BenchmarkImages(b *testing.B) {
	ffmpeg := requireTool(b, "ffmpeg")
	dir := b.TempDir()
	mp4 := filepath.Join(dir, "src.mp4")
	mkv := filepath.Join(dir, "src.mkv")
	run := func(args ...string) {
		b.Helper()
		cmd := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	run("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "26", "-c:v", "libx264", "-preset", "veryfast",
		"-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "3", "-pix_fmt", "yuv420p", mp4)
	off := fmt.Sprintf("%d", imBase/1e9)
	run("-i", mp4, "-c", "copy", "-output_ts_offset", off, mkv)

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ts := newTestServer(b, nil, fragments.Config{})
	if nums := gmIngestBytes(b, ts, "hd", readAll(b, mkv), false, 24); len(nums) != 26 {
		b.Fatalf("%d fragments, want 26 (one per GOP)", len(nums))
	}
	// fetch gets one page: the request and the whole response, which is
	// what a client (or an HTTP load tool) waits for. check then decodes
	// and checks it, outside the timed part: decoding the JSON (450 kB,
	// mostly base64, on these pages: 3-4 ms with encoding/json) is the
	// client's own work, as reading the 25 files they write is not in the
	// ffmpeg commands' time.
	// decode also decodes an image.
	fetch := func(b *testing.B, offMS int64) []byte {
		b.Helper()
		body := imBody("hd", imBase+offMS*1e6, imBase+(24000+offMS)*1e6, 1000, "WidthPixels", 640, "HeightPixels", 360)
		code, raw := imFetch(b, ts.URL, body)
		if code != 200 {
			b.Fatalf("%d: %.300s", code, raw)
		}
		return raw
	}
	check := func(b *testing.B, raw []byte, decode bool) {
		b.Helper()
		out := imParse(b, raw)
		if len(out.Images) != 25 || out.NextToken != "" {
			b.Fatalf("%d images %.300s", len(out.Images), raw)
		}
		for i, im := range out.Images {
			if im.Error != "" {
				b.Fatalf("image %d: %s", i, im.Error)
			}
		}
		if !decode {
			return
		}
		if sz := imDecode(b, out.Images[24].ImageContent).Bounds().Size(); sz.X != 640 || sz.Y != 360 {
			b.Fatalf("size %v", sz)
		}
	}
	page := func(b *testing.B, offMS int64, decode bool) { check(b, fetch(b, offMS), decode) }

	// The ffmpeg commands, for sample offset off (seconds into each GOP).
	// They scale as kvsgate does (bilinear to scale down), so that the
	// comparison is of the same work.
	baselines := func(off float64) map[string][]string {
		out := filepath.Join(dir, "out")
		// Seek in front of every input: ffmpeg jumps to the key frame
		// before each time and decodes from there to it.
		seek := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}
		for k := range 25 {
			seek = append(seek, "-ss", fmt.Sprintf("%.3f", float64(k)+off), "-i", mp4)
		}
		for k := range 25 {
			seek = append(seek, "-map", fmt.Sprintf("%d:v", k), "-frames:v", "1", "-vf", "scale=640:360:flags=bilinear", "-q:v", "3", fmt.Sprintf("%s-%02d.jpg", out, k))
		}
		// One pass, the frames picked by number (decodes everything).
		n0 := int(off * 30)
		sel := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", mp4,
			"-vf", fmt.Sprintf("select='eq(mod(n\\,30)\\,%d)',scale=640:360:flags=bilinear", n0), "-fps_mode", "passthrough",
			"-frames:v", "25", "-q:v", "3", out + "-%02d.jpg"}
		seek1 := append([]string{}, seek[:5]...)
		for k := range 25 {
			seek1 = append(seek1, "-threads", "1", "-ss", fmt.Sprintf("%.3f", float64(k)+off), "-i", mp4)
		}
		seek1 = append(seek1, seek[5+4*25:]...)
		m := map[string][]string{"seek-per-input": seek, "seek-per-input-1-thread": seek1, "select": sel}
		if off == 0 {
			// Key frames only: the decoder skips every other frame.
			nokey := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-skip_frame", "nokey", "-i", mp4,
				"-vf", "scale=640:360:flags=bilinear", "-fps_mode", "passthrough", "-frames:v", "25", "-q:v", "3", out + "-%02d.jpg"}
			m["skip-nokey"] = nokey
			m["skip-nokey-1-thread"] = slices.Insert(slices.Clone(nokey), 5, "-threads", "1")
		}
		// Not here: -skip_frame noref (skip the non-reference pictures).
		// It is faster but gives the wrong picture for 12 of the 25
		// mid-GOP times, which are non-reference B-frames.
		return m
	}
	runBaseline := func(args []string) (time.Duration, time.Duration) {
		began := time.Now()
		cmd := exec.Command(ffmpeg, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		d := time.Since(began)
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if _, err := os.Stat(filepath.Join(dir, "out-24.jpg")); err != nil {
			b.Fatalf("ffmpeg %s wrote no 25th image", strings.Join(args, " "))
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "out-*"))
		for _, m := range matches {
			os.Remove(m)
		}
		return d, cpu
	}

	for _, c := range []struct {
		name  string
		offMS int64
	}{{"keyframes", 0}, {"midgop", 500}} {
		means := map[string]time.Duration{} // median wall time of each command's last (the measured) run
		for name, args := range baselines(float64(c.offMS) / 1000) {
			b.Run(c.name+"/ffmpeg-"+name, func(b *testing.B) {
				var walls, cpus []time.Duration
				for range b.N {
					d, c := runBaseline(args)
					walls, cpus = append(walls, d), append(cpus, c)
				}
				b.ReportMetric(ms(median(walls)), "p50-ms/page")
				b.ReportMetric(ms(median(cpus)), "p50-cpu-ms/page")
				means[name] = median(walls)
			})
		}
		var best time.Duration
		var bestName string
		for name, d := range means {
			if best == 0 || d < best {
				best, bestName = d, name
			}
		}
		// kvsgate: the server's renderer, without its cache, so that
		// every page decodes. Between pages a pause (not timed) lets the
		// decoder processes started after a page load, as they do between
		// the polls of a dashboard; their start-up CPU time is counted in
		// the page that uses them. kvsgate-cold: a fresh renderer that
		// starts none in advance, as for the first page after a start or
		// an idle minute.
		for _, warm := range []bool{true, false} {
			name := c.name + "/kvsgate"
			if !warm {
				name += "-cold"
			}
			b.Run(name, func(b *testing.B) {
				newRenderer := func() *images.Renderer {
					cfg := images.Config{Logger: quiet, CacheBytes: -1}
					if !warm {
						cfg.Prestart = -1
					}
					r := images.New(cfg)
					ts.Server.images = r
					return r
				}
				r := newRenderer()
				if warm {
					page(b, c.offMS, false)
				}
				var walls, cpus []time.Duration
				var fed, procs, pre, size int64
				for range b.N {
					b.StopTimer()
					if warm {
						time.Sleep(500 * time.Millisecond)
					} else {
						r = newRenderer()
					}
					st0 := r.Stats()
					c0, w0 := cpuTime(), time.Now()
					b.StartTimer()
					raw := fetch(b, c.offMS)
					b.StopTimer()
					walls, cpus = append(walls, time.Since(w0)), append(cpus, cpuTime()-c0)
					check(b, raw, false)
					size += int64(len(raw))
					st := r.Stats()
					fed, procs, pre = fed+st.FramesFed-st0.FramesFed, procs+st.Processes-st0.Processes, pre+st.Prestarted-st0.Prestarted
					b.StartTimer()
				}
				b.StopTimer()
				r.Close()
				b.ReportMetric(float64(fed)/float64(b.N)/25, "frames-decoded/image")
				b.ReportMetric(float64(procs)/float64(b.N), "ffmpeg-processes/page")
				b.ReportMetric(float64(pre)/float64(b.N), "prestarted/page")
				b.ReportMetric(float64(size)/float64(b.N)/1000, "response-kB")
				b.ReportMetric(ms(median(walls)), "p50-ms/page")
				b.ReportMetric(ms(median(cpus)), "p50-cpu-ms/page")
				if best > 0 {
					b.ReportMetric(float64(median(walls))/float64(best), "x-fastest-ffmpeg")
					b.Logf("fastest single ffmpeg command: %s, p50 %s", bestName, best.Round(time.Millisecond))
				}
			})
		}
		b.Run(c.name+"/cached", func(b *testing.B) {
			ts.Server.images = images.New(images.Config{Logger: quiet, Prestart: -1})
			page(b, c.offMS, true) // warm, and a look at an image
			var walls, cpus []time.Duration
			b.ResetTimer()
			for range b.N {
				for range 20 {
					c0, w0 := cpuTime(), time.Now()
					raw := fetch(b, c.offMS)
					walls, cpus = append(walls, time.Since(w0)), append(cpus, cpuTime()-c0)
					check(b, raw, false)
				}
			}
			b.ReportMetric(ms(median(walls)), "p50-ms/page")
			b.ReportMetric(ms(median(cpus)), "p50-cpu-ms/page")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// cpuTime is the CPU time of this process and of its waited-for children.
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
}
