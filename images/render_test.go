package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/fragtest"
	"github.com/kvsgate/kvsgate/images/imagetest"
)

// requireFFmpeg returns ffmpeg's path, or skips (fails under
// KVSGATE_REQUIRE_TOOLS=1, as make test sets it).
func requireFFmpeg(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("KVSGATE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("ffmpeg is required: %v", err)
		}
		t.Skip("ffmpeg not installed")
	}
	return p
}

// makeIndexMKV encodes seconds of the index pattern (imagetest; frame
// indexes from first, the first frame at first/fps s) with 1 s GOPs and
// B-frames as Matroska.
func makeIndexMKV(t testing.TB, dir, name, enc string, fps, first, seconds int) string {
	t.Helper()
	path := filepath.Join(dir, name)
	imagetest.Encode(t, requireFFmpeg(t), path, enc, fps, first, seconds, fmt.Sprintf("%d.%03d", first/fps, first%fps*1000/fps))
	return path
}

// readIndex reads the index pattern back from an image of any size.
func readIndex(img image.Image) int { return imagetest.ReadIndex(img) }

// testStore is a store with one stream for the ingested files.
type testStore struct {
	s     *fragments.Store
	st    *fragments.Stream
	start map[*Fragment]int64 // producer timestamps
}

func newTestStore(t testing.TB) *testStore {
	t.Helper()
	s, st := fragtest.NewStore(t, "images", 24)
	return &testStore{s: s, st: st, start: map[*Fragment]int64{}}
}

// put ingests a Matroska file as PutMedia does (ABSOLUTE timecodes).
func (ts *testStore) put(t testing.TB, data []byte) {
	t.Helper()
	var mu sync.Mutex
	err := ts.s.Put(context.Background(), ts.st, fragments.PutOptions{Abort: func() {}}, bytes.NewReader(data), func(a fragments.Ack) error {
		mu.Lock()
		defer mu.Unlock()
		if a.EventType == fragments.AckError {
			return fmt.Errorf("ack %+v", a)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fragments returns the stream's fragments in producer time order, as the
// renderer takes them.
func (ts *testStore) fragments(t testing.TB) []*Fragment {
	t.Helper()
	rows, err := ts.s.Index.Fragments(fragments.FragmentQuery{StreamID: ts.st.ID, By: fragments.ByProducer, To: 1 << 62, AfterTS: -1, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*Fragment
	for i := range rows {
		row := rows[i]
		meta, err := ts.s.Index.Meta(row.StreamID, row.Ordinal)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ts.s.Index.Header(row.HeaderID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &Fragment{StreamID: row.StreamID, Number: row.Number, Header: h, Samples: meta.Samples,
			Open: func() (io.ReaderAt, io.Closer, error) {
				fr, err := ts.s.OpenFragment(&row)
				if err != nil {
					return nil, nil, err
				}
				return fr, fr, nil
			}})
		ts.start[out[len(out)-1]] = row.ProducerNS
	}
	return out
}

func decodeImage(t testing.TB, b []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("image does not decode: %v", err)
	}
	return img
}

// newTestRenderer returns a renderer that logs nothing and is closed
// (its waiting processes stopped) at the end of the test.
func newTestRenderer(t testing.TB, cfg Config) *Renderer {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	r := New(cfg)
	t.Cleanup(r.Close)
	return r
}

// TestRenderEveryFrame renders every frame of 4 s of the index pattern
// (10 fps, 1 s GOPs, B-frames in decode order) at once and one by one, in
// H.264 and H.265, and reads each frame's index back from its pixels.
func TestRenderEveryFrame(t *testing.T) {
	for _, enc := range []string{"h264", "hevc"} {
		t.Run(enc, func(t *testing.T) {
			dir := t.TempDir()
			ts := newTestStore(t)
			ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", enc, 10, 0, 4)))
			frags := ts.fragments(t)
			if len(frags) != 4 {
				t.Fatalf("%d fragments, want 4 (one per GOP)", len(frags))
			}
			var reqs []Request
			var want []int
			reordered := false
			for _, f := range frags {
				for i, s := range f.Samples {
					if s.Track != 0 {
						continue
					}
					reqs = append(reqs, Request{Frag: f, Sample: i})
					want = append(want, int((ts.start[f]+s.PTS)/100e6))
					if i > 0 && s.PTS < f.Samples[i-1].PTS {
						reordered = true
					}
				}
			}
			if len(reqs) != 40 || !reordered {
				t.Fatalf("%d frames, reordered %v: want 40 frames stored in decode order", len(reqs), reordered)
			}
			r := newTestRenderer(t, Config{CacheBytes: -1})
			res, err := r.Render(context.Background(), Spec{Format: JPEG}, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, rs := range res {
				if rs.Err != nil {
					t.Fatalf("frame %d: %v", want[i], rs.Err)
				}
				if got := readIndex(decodeImage(t, rs.Image)); got != want[i] {
					t.Errorf("image %d shows frame %d, want %d", i, got, want[i])
				}
			}
			st := r.Stats()
			if st.Images != 40 || st.FramesFed != 40 || st.Processes < 1 || st.Processes > int64(r.cfg.Concurrency) {
				t.Fatalf("stats %+v: want 40 frames fed and returned by 1 to %d processes", st, r.cfg.Concurrency)
			}
			// One at a time (a GOP decoded up to each frame), in reverse.
			for i := len(reqs) - 1; i >= 0; i -= 3 {
				res, err := r.Render(context.Background(), Spec{Format: PNG, Width: 64}, reqs[i:i+1])
				if err != nil || res[0].Err != nil {
					t.Fatalf("frame %d: %v %v", want[i], err, res[0].Err)
				}
				img := decodeImage(t, res[0].Image)
				if img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
					t.Fatalf("size %v, want 64x48", img.Bounds())
				}
				if got := readIndex(img); got != want[i] {
					t.Errorf("alone: image shows frame %d, want %d", got, want[i])
				}
			}
		})
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corruptFrames overwrites the frames of the given Matroska clusters
// with garbage (imagetest.Corrupt).
func corruptFrames(t testing.TB, data []byte, clusters []int, keep bool) []byte {
	return imagetest.Corrupt(t, data, clusters, keep, 7)
}

// TestRenderGarbage: frames that are garbage, with or without NAL framing,
// are ErrMedia; the good frames of the same call and later calls decode.
func TestRenderGarbage(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("framing=%v", keep), func(t *testing.T) {
			dir := t.TempDir()
			ts := newTestStore(t)
			ts.put(t, corruptFrames(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 3)), []int{1}, keep))
			frags := ts.fragments(t)
			if len(frags) != 3 {
				t.Fatalf("%d fragments", len(frags))
			}
			r := newTestRenderer(t, Config{})
			var reqs []Request
			for _, f := range frags {
				for _, rel := range []int64{0, 450e6, 950e6} {
					reqs = append(reqs, Request{Frag: f, Sample: FrameAt(f.Samples, rel)})
				}
			}
			for range 2 { // the second time from the cache, failures included
				res, err := r.Render(context.Background(), Spec{Format: JPEG}, reqs)
				if err != nil {
					t.Fatal(err)
				}
				for i, rs := range res {
					bad := i/3 == 1
					switch {
					case bad && !errors.Is(rs.Err, ErrMedia):
						t.Errorf("garbage frame %d: err %v, want ErrMedia", i, rs.Err)
					case !bad && rs.Err != nil:
						t.Errorf("good frame %d: %v", i, rs.Err)
					case !bad:
						if got, want := readIndex(decodeImage(t, rs.Image)), []int{0, 4, 9}[i%3]+10*(i/3); got != want {
							t.Errorf("frame %d shows %d, want %d", i, got, want)
						}
					}
				}
			}
			if st := r.CacheStats(); st.Hits != int64(len(reqs)) {
				t.Errorf("cache %+v: want %d hits on the second call", st, len(reqs))
			}
		})
	}
}

// TestRenderNoFFmpeg: a missing ffmpeg is ErrNoDecoder, once decoding is
// needed.
func TestRenderNoFFmpeg(t *testing.T) {
	dir := t.TempDir()
	ts := newTestStore(t)
	ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 1)))
	f := ts.fragments(t)[0]
	r := newTestRenderer(t, Config{FFmpeg: filepath.Join(dir, "no-ffmpeg")})
	_, err := r.Render(context.Background(), Spec{Format: JPEG}, []Request{{Frag: f, Sample: 0}})
	if !errors.Is(err, ErrNoDecoder) || !strings.Contains(err.Error(), "ffmpeg") {
		t.Fatalf("err %v, want ErrNoDecoder", err)
	}
	// Nothing to decode (a frame that is not of the first track): no error.
	res, err := r.Render(context.Background(), Spec{Format: JPEG}, []Request{{Frag: f, Sample: len(f.Samples)}})
	if err != nil || !errors.Is(res[0].Err, ErrMedia) {
		t.Fatalf("err %v, result %v", err, res[0].Err)
	}
}

// TestRenderTimeout: a decoder that does not finish in time fails its
// frames (not cached), and the renderer keeps working.
func TestRenderTimeout(t *testing.T) {
	dir := t.TempDir()
	ts := newTestStore(t)
	ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 1)))
	f := ts.fragments(t)[0]
	// The second script's sleep outlives the killed shell and holds its
	// output open.
	for i, script := range []string{"#!/bin/sh\nexec sleep 30\n", "#!/bin/sh\nsleep 30\n"} {
		slow := filepath.Join(dir, fmt.Sprintf("slow-ffmpeg-%d", i))
		if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		r := newTestRenderer(t, Config{FFmpeg: slow, Timeout: 300 * time.Millisecond, Prestart: -1})
		began := time.Now()
		res, err := r.Render(context.Background(), Spec{Format: JPEG}, []Request{{Frag: f, Sample: 0}})
		if err != nil || !errors.Is(res[0].Err, ErrMedia) || !strings.Contains(res[0].Err.Error(), "timed out") {
			t.Fatalf("script %d: err %v, result %v", i, err, res[0].Err)
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Fatalf("script %d: took %s", i, d)
		}
		if st := r.CacheStats(); st.Entries != 0 {
			t.Fatalf("a timeout was cached: %+v", st)
		}
	}
}

func TestRenderQualityAndFormats(t *testing.T) {
	dir := t.TempDir()
	ts := newTestStore(t)
	ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 1)))
	f := ts.fragments(t)[0]
	r := newTestRenderer(t, Config{})
	req := []Request{{Frag: f, Sample: FrameAt(f.Samples, 500e6)}}
	prev := 0
	for _, q := range []int{1, 30, 80, 100} {
		res, err := r.Render(context.Background(), Spec{Format: JPEG, Quality: q}, req)
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
		if _, err := jpeg.Decode(bytes.NewReader(res[0].Image)); err != nil {
			t.Fatal(err)
		}
		if len(res[0].Image) <= prev {
			t.Errorf("quality %d: %d bytes, not more than %d at the lower quality", q, len(res[0].Image), prev)
		}
		prev = len(res[0].Image)
	}
	res, err := r.Render(context.Background(), Spec{Format: PNG}, req)
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	img, err := png.Decode(bytes.NewReader(res[0].Image))
	if err != nil {
		t.Fatal(err)
	}
	if readIndex(img) != 5 || img.Bounds() != image.Rect(0, 0, imagetest.Width, imagetest.Height) {
		t.Fatalf("PNG shows %d at %v", readIndex(img), img.Bounds())
	}
	// Full range: black blocks are black, white blocks white.
	for _, p := range []image.Point{{32, 60}, {32 + 64, 60}} {
		sum := 0
		for y := p.Y - 4; y < p.Y+4; y++ {
			for x := p.X - 4; x < p.X+4; x++ {
				sum += int(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
			}
		}
		if g := sum / 64; g > 10 && g < 245 {
			t.Errorf("block at %v is %d on average: want about 0 or 255 (full range)", p, g)
		}
	}
	if _, err := r.Render(context.Background(), Spec{Format: JPEG, Quality: 101}, req); err == nil {
		t.Error("quality 101 accepted")
	}
}

// TestRenderFeedsOnlyWhatIsNeeded: a frame is decoded from its GOP's key
// frame without the frames after it in decode order and without the
// non-reference pictures before it; several frames of one GOP take one
// pass.
func TestRenderFeedsOnlyWhatIsNeeded(t *testing.T) {
	for _, enc := range []string{"h264", "hevc"} {
		t.Run(enc, func(t *testing.T) {
			dir := t.TempDir()
			ts := newTestStore(t)
			ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", enc, 10, 0, 1)))
			f := ts.fragments(t)[0]
			cfg, err := parseTrack(&f.Header.Tracks[0])
			if err != nil {
				t.Fatal(err)
			}
			payload, closer, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			// The last frame in decode order: everything before it that is
			// a reference, and itself.
			last, refs, nonRefs := -1, 0, 0
			for i, s := range f.Samples {
				if s.Track != 0 {
					continue
				}
				last = i
				b := make([]byte, s.Size)
				payload.ReadAt(b, s.Offset)
				if cfg.inspect(b).ref {
					refs++
				} else {
					nonRefs++
				}
			}
			lastRef := 0
			if b := make([]byte, f.Samples[last].Size); true {
				payload.ReadAt(b, f.Samples[last].Offset)
				if cfg.inspect(b).ref {
					lastRef = 1
				}
			}
			if nonRefs < 3 {
				t.Fatalf("%d non-reference frames: the stream does not test this", nonRefs)
			}
			r := newTestRenderer(t, Config{})
			want := refs + 1 - lastRef // the references (the key frame among them) and the frame
			res, err := r.Render(context.Background(), Spec{Format: JPEG, Width: 32}, []Request{{Frag: f, Sample: last}})
			if err != nil || res[0].Err != nil {
				t.Fatal(err, res[0].Err)
			}
			if st := r.Stats(); st.FramesFed != int64(want) || st.Processes != 1 {
				t.Fatalf("stats %+v: want %d frames fed (the key frame, the references after it and the frame) by one process", st, want)
			}
			// The key frame and the frame after it in decode order, in one
			// request: one process, two frames.
			r = newTestRenderer(t, Config{})
			k := -1
			for i, s := range f.Samples {
				if s.Track == 0 && i > 0 {
					k = i
					break
				}
			}
			res, err = r.Render(context.Background(), Spec{Format: JPEG, Width: 32}, []Request{{Frag: f, Sample: 0}, {Frag: f, Sample: k}})
			if err != nil || res[0].Err != nil || res[1].Err != nil {
				t.Fatal(err, res)
			}
			if st := r.Stats(); st.FramesFed != 2 || st.Processes != 1 || st.Images != 2 {
				t.Fatalf("stats %+v: want 2 frames fed and returned by one process", st)
			}
		})
	}
}

// wrapFFmpeg writes a script that runs before (and around) the real
// ffmpeg and returns its path.
func wrapFFmpeg(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "ffmpeg-wrapper")
	script := "#!/bin/sh\nREAL=" + requireFFmpeg(t) + "\nD=" + dir + "\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRenderConcurrencyBound: however many requests come at once, at most
// Concurrency decoder processes run, and every image is still right.
func TestRenderConcurrencyBound(t *testing.T) {
	dir := t.TempDir()
	frags := indexFragments(t, dir, "h264", 6)
	// Each process leaves a marker while it runs (held a while, so that
	// overlapping ones see each other) and logs how many it saw.
	wrapper := wrapFFmpeg(t, dir, `touch $D/run.$$
ls $D | grep -c '^run\.' >> $D/counts
sleep 0.3
$REAL "$@"; rc=$?
rm -f $D/run.$$
exit $rc`)
	r := newTestRenderer(t, Config{FFmpeg: wrapper, Concurrency: 2, Prestart: -1}) // every process counted is one that decodes
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for c := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reqs []Request
			var want []int
			for i, f := range frags {
				k := FrameAt(f.Samples, int64(c+3)*100e6)
				reqs = append(reqs, Request{Frag: f, Sample: k})
				want = append(want, 10*i+c+3)
			}
			res, err := r.Render(context.Background(), Spec{Format: JPEG, Width: 80}, reqs)
			if err != nil {
				errs <- err
				return
			}
			for i, rs := range res {
				if rs.Err != nil {
					errs <- rs.Err
					return
				}
				if got := readIndex(decodeImage(t, rs.Image)); got != want[i] {
					errs <- fmt.Errorf("request %d image %d shows %d, want %d", c, i, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	counts := strings.Fields(string(readFile(t, filepath.Join(dir, "counts"))))
	peak := 0
	for _, c := range counts {
		var n int
		fmt.Sscan(c, &n)
		peak = max(peak, n)
	}
	if len(counts) != 6 || peak != 2 {
		t.Fatalf("%d processes, at most %d at once: want 6 (3 requests of 2 batches), 2 at once", len(counts), peak)
	}
}

// TestTrackShared: requests racing to describe the same header all get
// one *trackInfo, since batches group GOPs by it (two would split one
// request's batches further and start more processes than needed).
func TestTrackShared(t *testing.T) {
	frags := indexFragments(t, t.TempDir(), "h264", 1)
	for range 20 {
		r := newTestRenderer(t, Config{})
		got := make([]*trackInfo, 8)
		var wg sync.WaitGroup
		for i := range got {
			wg.Go(func() { got[i] = r.track(frags[0].Header) })
		}
		wg.Wait()
		for _, ti := range got[1:] {
			if ti != got[0] {
				t.Fatalf("one header described as %p and %p", got[0], ti)
			}
		}
		if got[0] != r.track(frags[0].Header) {
			t.Fatal("a later call gets another description")
		}
	}
}

// TestRenderDecoderCrash: a decoder that dies of a signal fails its
// frames (not cached: it may not be the media's fault); the next call
// decodes.
func TestRenderDecoderCrash(t *testing.T) {
	dir := t.TempDir()
	ts := newTestStore(t)
	ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 1)))
	f := ts.fragments(t)[0]
	// The first run crashes; later ones are the real ffmpeg.
	wrapper := wrapFFmpeg(t, dir, `if [ ! -e $D/crashed ]; then touch $D/crashed; kill -SEGV $$; fi
exec $REAL "$@"`)
	r := newTestRenderer(t, Config{FFmpeg: wrapper})
	req := []Request{{Frag: f, Sample: FrameAt(f.Samples, 300e6)}}
	res, err := r.Render(context.Background(), Spec{Format: JPEG}, req)
	if err != nil || !errors.Is(res[0].Err, ErrMedia) {
		t.Fatalf("crash: %v %v", err, res[0].Err)
	}
	res, err = r.Render(context.Background(), Spec{Format: JPEG}, req)
	if err != nil || res[0].Err != nil {
		t.Fatalf("after the crash: %v %v", err, res[0].Err)
	}
	if got := readIndex(decodeImage(t, res[0].Image)); got != 3 {
		t.Fatalf("shows %d, want 3", got)
	}
}

// TestRenderLostPosition: if a frame's showinfo line goes missing, the
// frames from there fail; none is given another frame's picture.
func TestRenderLostPosition(t *testing.T) {
	dir := t.TempDir()
	ts := newTestStore(t)
	ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 1)))
	f := ts.fragments(t)[0]
	// ffmpeg's stdout goes through fd 3; its stderr loses the first frame line.
	wrapper := wrapFFmpeg(t, dir, `{ $REAL "$@" 2>&1 1>&3 3>&- | sed '0,/Parsed_showinfo.*\] n:/{//d}' 1>&2; } 3>&1`)
	r := newTestRenderer(t, Config{FFmpeg: wrapper})
	var reqs []Request
	for _, rel := range []int64{200e6, 500e6, 800e6} {
		reqs = append(reqs, Request{Frag: f, Sample: FrameAt(f.Samples, rel)})
	}
	res, err := r.Render(context.Background(), Spec{Format: JPEG}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, rs := range res {
		if rs.Err == nil {
			t.Errorf("image %d (frame %d) came back, showing %d: want ErrMedia", i, []int{2, 5, 8}[i], readIndex(decodeImage(t, rs.Image)))
		}
	}
}

// indexFragments stores seconds of the index pattern (10 fps, 1 s GOPs)
// made in dir and returns its fragments, one per GOP.
func indexFragments(t testing.TB, dir, enc string, seconds int) []*Fragment {
	t.Helper()
	ts := newTestStore(t)
	ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", enc, 10, 0, seconds)))
	frags := ts.fragments(t)
	if len(frags) != seconds {
		t.Fatalf("%d fragments, want %d (one per GOP)", len(frags), seconds)
	}
	return frags
}

// markFrames writes a marker into the slice data of every frame of the
// given Matroska clusters (NAL unit framing kept), so that a wrapper can
// tell which decoder process is fed them.
func markFrames(t testing.TB, data []byte, cluster int, marker string) []byte {
	t.Helper()
	out := bytes.Clone(data)
	n := 0
	for _, f := range imagetest.Frames(t, data) {
		if f.Cluster != cluster {
			continue
		}
		b := out[f.Off : f.Off+f.Size]
		for p := 0; p+4 < len(b); {
			l := int(uint32(b[p])<<24 | uint32(b[p+1])<<16 | uint32(b[p+2])<<8 | uint32(b[p+3]))
			if l <= 0 || p+4+l > len(b) {
				break
			}
			if l > len(marker)+8 {
				copy(b[p+4+l/2:], marker)
				n++
			}
			p += 4 + l
		}
	}
	if n == 0 {
		t.Fatal("no frames marked")
	}
	return out
}

// TestRenderOneGOPCrash: six GOPs decoded by two processes at once; the
// decoder dies on the frames of one GOP. That GOP's images fail, every
// other image is its own frame, in order, none twice: the GOPs that shared
// the dead process are decoded again, each on its own.
func TestRenderOneGOPCrash(t *testing.T) {
	dir := t.TempDir()
	ts := newTestStore(t)
	const marker = "KVSGATE-CRASH-HERE"
	ts.put(t, markFrames(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 6)), 2, marker))
	frags := ts.fragments(t)
	if len(frags) != 6 {
		t.Fatalf("%d fragments", len(frags))
	}
	// Each process takes all its input first; one fed the marker dies of
	// a signal before it decodes anything.
	wrapper := wrapFFmpeg(t, dir, `cat > $D/in.$$
if grep -qa `+marker+` $D/in.$$; then rm -f $D/in.$$; kill -SEGV $$; fi
$REAL "$@" < $D/in.$$; rc=$?
rm -f $D/in.$$
exit $rc`)
	r := newTestRenderer(t, Config{FFmpeg: wrapper, Concurrency: 2, Prestart: -1})
	var reqs []Request
	var want []int
	for i, f := range frags {
		for _, rel := range []int64{0, 450e6, 900e6} {
			reqs = append(reqs, Request{Frag: f, Sample: FrameAt(f.Samples, rel)})
			want = append(want, 10*i+int(rel/100e6))
		}
	}
	res, err := r.Render(context.Background(), Spec{Format: JPEG, Width: 80}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for i, rs := range res {
		if i/3 == 2 {
			if !errors.Is(rs.Err, ErrMedia) {
				t.Errorf("image %d of the crashing GOP: err %v, want ErrMedia", i, rs.Err)
			}
			continue
		}
		if rs.Err != nil {
			t.Errorf("image %d (frame %d): %v", i, want[i], rs.Err)
			continue
		}
		got := readIndex(decodeImage(t, rs.Image))
		if got != want[i] || seen[got] {
			t.Errorf("image %d shows frame %d (seen before: %v), want %d", i, got, seen[got], want[i])
		}
		seen[got] = true
	}
	// Two processes of three GOPs; the dead one's three GOPs again alone.
	if st := r.Stats(); st.Processes != 5 || st.Images != 15 {
		t.Errorf("stats %+v: want 5 processes, 15 images", st)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRenderPrestart: after a request, as many decoders as it used wait
// for the next request of the same kind, which uses them and gets the
// right frames; a request of another kind starts its own; waiting
// decoders stop when their time is up and on Close, and none is left
// running.
func TestRenderPrestart(t *testing.T) {
	dir := t.TempDir()
	frags := indexFragments(t, dir, "hevc", 4)
	// Each process leaves a marker while it runs.
	wrapper := wrapFFmpeg(t, dir, `touch $D/run.$$
$REAL "$@"; rc=$?
rm -f $D/run.$$
exit $rc`)
	running := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "run.*"))
		return len(m)
	}
	r := newTestRenderer(t, Config{FFmpeg: wrapper, Concurrency: 2, PrestartIdle: time.Hour})
	render := func(spec Spec, rel int64) {
		t.Helper()
		var reqs []Request
		for _, f := range frags {
			reqs = append(reqs, Request{Frag: f, Sample: FrameAt(f.Samples, rel)})
		}
		res, err := r.Render(context.Background(), spec, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for i, rs := range res {
			if rs.Err != nil {
				t.Fatalf("image %d: %v", i, rs.Err)
			}
			if got, want := readIndex(decodeImage(t, rs.Image)), 10*i+int(rel/100e6); got != want {
				t.Fatalf("image %d shows frame %d, want %d", i, got, want)
			}
		}
	}
	// (Not on key frames: a batch of key frames alone is a kind of its
	// own, see decoderKind.keyOnly.)
	render(Spec{Format: JPEG, Width: 80}, 200e6)
	if st := r.Stats(); st.Processes != 2 || st.Prestarted != 0 {
		t.Fatalf("first request: %+v, want 2 processes started for it", st)
	}
	waitFor(t, "2 decoders waiting", func() bool { return r.Stats().Waiting == 2 && running() == 2 })
	// The same kind (other frames, another quality is another kind).
	render(Spec{Format: JPEG, Width: 80}, 500e6)
	if st := r.Stats(); st.Processes != 4 || st.Prestarted != 2 {
		t.Fatalf("second request: %+v, want the 2 waiting processes used", st)
	}
	waitFor(t, "2 decoders waiting again", func() bool { return r.Stats().Waiting == 2 })
	render(Spec{Format: PNG, Width: 40}, 700e6)
	if st := r.Stats(); st.Processes != 6 || st.Prestarted != 2 {
		t.Fatalf("PNG request: %+v, want 2 processes started for it", st)
	}
	waitFor(t, "4 decoders waiting (2 kinds)", func() bool { return r.Stats().Waiting == 4 && running() == 4 })
	r.Close()
	waitFor(t, "no decoder left after Close", func() bool { return r.Stats().Waiting == 0 && running() == 0 })
	render(Spec{Format: JPEG, Width: 80}, 300e6) // still works, starts none in advance
	time.Sleep(100 * time.Millisecond)
	if st := r.Stats(); st.Waiting != 0 || running() != 0 {
		t.Fatalf("after Close: %+v, %d running", st, running())
	}

	// Idle decoders stop by themselves.
	r2 := newTestRenderer(t, Config{FFmpeg: wrapper, Concurrency: 2, PrestartIdle: 300 * time.Millisecond})
	r = r2
	render(Spec{Format: JPEG, Width: 80}, 0)
	waitFor(t, "the waiting decoders to stop when idle", func() bool { return r2.Stats().Waiting == 0 && running() == 0 })
}

// TestRenderWarm: after a request of key frames alone, the decoders that
// wait for the next one have been given one of its key frames (as many
// times as the stream holds frames back, plus one), and the next request
// of that kind gets the right frames from them, in H.264 and H.265 (both
// with B-frames, so held-back warm-up frames come out among the
// request's), also for a track with another SPS.
func TestRenderWarm(t *testing.T) {
	for _, enc := range []string{"h264", "hevc"} {
		t.Run(enc, func(t *testing.T) {
			dir := t.TempDir()
			frags := indexFragments(t, dir, enc, 4)
			if ti := newTestRenderer(t, Config{}).track(frags[0].Header); ti.err != nil || ti.cfg.reorder < 1 {
				t.Fatalf("track %+v: want a reorder delay of at least 1 (B-frames)", ti)
			}
			r := newTestRenderer(t, Config{Concurrency: 2, PrestartIdle: time.Hour, CacheBytes: -1})
			spec := Spec{Format: JPEG, Width: 80}
			render := func(frags []*Fragment, fps int, what string) {
				t.Helper()
				var reqs []Request
				for _, f := range frags {
					reqs = append(reqs, Request{Frag: f, Sample: FrameAt(f.Samples, 0)})
				}
				res, err := r.Render(context.Background(), spec, reqs)
				if err != nil {
					t.Fatal(err)
				}
				for i, rs := range res {
					if rs.Err != nil {
						t.Fatalf("%s: image %d: %v", what, i, rs.Err)
					}
					if got := readIndex(decodeImage(t, rs.Image)); got != fps*i {
						t.Fatalf("%s: image %d shows frame %d, want %d", what, i, got, fps*i)
					}
				}
			}
			warmed := func() int {
				r.spares.mu.Lock()
				defer r.spares.mu.Unlock()
				n := 0
				for k, list := range r.spares.ready {
					for _, d := range list {
						if k.keyOnly && d.warmed != nil && d.base > 0 && d.base%grid == 0 {
							n++
						}
					}
				}
				return n
			}
			render(frags, 10, "first request")
			waitFor(t, "2 warmed decoders waiting", func() bool { return warmed() == 2 })
			render(frags, 10, "from warmed decoders")
			if st := r.Stats(); st.Processes != 4 || st.Prestarted != 2 || st.Images != 8 {
				t.Fatalf("%+v, want the 2 warmed decoders used, 8 images", st)
			}
			// Another track of the same kind (5 fps: another SPS).
			waitFor(t, "2 warmed decoders waiting again", func() bool { return warmed() == 2 })
			ts := newTestStore(t)
			ts.put(t, readFile(t, makeIndexMKV(t, dir, "idx5.mkv", enc, 5, 0, 3)))
			render(ts.fragments(t), 5, "another track")
			if st := r.Stats(); st.Prestarted != 4 {
				t.Fatalf("%+v, want the warmed decoders used", st)
			}
		})
	}
}

// TestRenderWarmNotFromGarbage: a key frame whose image did not come out
// (garbage) does not become the warm-up of the kind; a good one does.
func TestRenderWarmNotFromGarbage(t *testing.T) {
	dir := t.TempDir()
	ts := newTestStore(t)
	ts.put(t, corruptFrames(t, readFile(t, makeIndexMKV(t, dir, "idx.mkv", "h264", 10, 0, 3)), []int{0}, true))
	frags := ts.fragments(t)
	r := newTestRenderer(t, Config{Concurrency: 1, PrestartIdle: time.Hour})
	warm := func() *warmup {
		r.spares.mu.Lock()
		defer r.spares.mu.Unlock()
		for k, w := range r.spares.warm {
			if k.keyOnly {
				return w
			}
		}
		return nil
	}
	render := func(frags []*Fragment, width int) []Result {
		var reqs []Request
		for _, f := range frags {
			reqs = append(reqs, Request{Frag: f, Sample: FrameAt(f.Samples, 0)})
		}
		res, err := r.Render(context.Background(), Spec{Format: JPEG, Width: width}, reqs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// One batch (one process), whose first key frame is garbage.
	res := render(frags, 64)
	if !errors.Is(res[0].Err, ErrMedia) || res[1].Err != nil || res[2].Err != nil {
		t.Fatalf("results %v, %v, %v: want the garbage one ErrMedia, the others images", res[0].Err, res[1].Err, res[2].Err)
	}
	if w := warm(); w != nil {
		t.Fatal("the garbage key frame became the warm-up")
	}
	render(frags[1:], 48) // (another size: not from the cache)
	if w := warm(); w == nil {
		t.Fatal("a good key frame did not become the warm-up")
	}
}
