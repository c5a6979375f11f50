package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/hls"
)

// Format is an image encoding.
type Format uint8

// Image formats of GetImages.
const (
	JPEG Format = iota + 1
	PNG
)

func (f Format) String() string {
	switch f {
	case JPEG:
		return "JPEG"
	case PNG:
		return "PNG"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// Limits of the requested size (GetImages WidthPixels / HeightPixels).
const (
	MaxWidth  = 3840
	MaxHeight = 2160
)

// DefaultQuality is the JPEG quality when none is asked for.
const DefaultQuality = 80

// Spec says how a request's images are rendered.
type Spec struct {
	Format Format
	// Quality is the JPEG quality, 1 (smallest) to 100 (best); 0 means
	// DefaultQuality. Ignored for PNG.
	Quality int
	// Width and Height are the requested size: both given, the image is
	// stretched to them; one given, the other follows the source's aspect
	// ratio; neither, the source size. See OutputSize.
	Width, Height int
}

// Config configures a Renderer.
type Config struct {
	// FFmpeg is the ffmpeg executable: a path, or a name looked up in PATH
	// when it is needed. Default "ffmpeg".
	FFmpeg string
	// Concurrency is how many decoder processes run at once, across all
	// requests. Default runtime.NumCPU().
	Concurrency int
	// Timeout bounds one decoder process. Default 30 s.
	Timeout time.Duration
	// Prestart is how many decoder processes are kept started, waiting for
	// work, for each of the last few kinds of images asked for (codec,
	// format, size, quality): starting ffmpeg takes some 70 ms, which a
	// request then does not wait for. 0 means Concurrency; negative starts
	// none in advance.
	Prestart int
	// PrestartIdle is how long a process started in advance waits for
	// work before it is stopped. Default 1 minute.
	PrestartIdle time.Duration
	// CacheBytes bounds the cache of encoded images. 0 means 64 MiB;
	// negative disables the cache.
	CacheBytes int64
	Logger     *slog.Logger
}

// Renderer turns stored frames into JPEG or PNG images. It decodes with
// ffmpeg, run as a separate process per batch of GOPs, so a decoder crash
// on hostile input costs the images of that batch, never the server; it
// knows nothing of HTTP. Close stops the processes it keeps started.
type Renderer struct {
	cfg    Config
	slots  chan struct{}
	cache  *lru
	spares *spares
	tracks sync.Map // header ID -> *trackInfo (headers never change)

	processes, prestarted, fed, decoded atomic.Int64
}

// Stats are a Renderer's counters.
type Stats struct {
	Cache CacheStats
	// Processes is the decoder processes given frames to decode,
	// Prestarted those of them that were started before they were needed,
	// FramesFed the frames they were given, Images the images they
	// returned. Waiting is the processes started in advance that wait for
	// work now.
	Processes, Prestarted, FramesFed, Images int64
	Waiting                                  int
}

// Stats returns the counters.
func (r *Renderer) Stats() Stats {
	return Stats{Cache: r.cache.stats(), Processes: r.processes.Load(), Prestarted: r.prestarted.Load(),
		FramesFed: r.fed.Load(), Images: r.decoded.Load(), Waiting: r.spares.count()}
}

// Close stops the decoder processes waiting for work and starts no more
// in advance. Render still works after Close.
func (r *Renderer) Close() { r.spares.close() }

// New returns a Renderer.
func New(cfg Config) *Renderer {
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = "ffmpeg"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = runtime.NumCPU()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Prestart == 0 {
		cfg.Prestart = cfg.Concurrency
	}
	if cfg.PrestartIdle <= 0 {
		cfg.PrestartIdle = time.Minute
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Renderer{cfg: cfg, slots: make(chan struct{}, cfg.Concurrency), cache: newLRU(cfg.CacheBytes),
		spares: newSpares(cfg.Prestart, cfg.PrestartIdle)}
}

// Errors of Render.
var (
	// ErrMedia wraps the error of an image that cannot be made: the frame
	// does not decode, its track is not H.264 or H.265, its GOP has no key
	// frame in the fragment (GetImages' MEDIA_ERROR).
	ErrMedia = errors.New("images: the frame cannot be decoded")
	// ErrNoDecoder is returned by Render when images must be decoded and
	// the ffmpeg executable cannot be found or started.
	ErrNoDecoder = errors.New("images: ffmpeg is not available; GetImages decodes frames with it (install it, e.g. apt-get install ffmpeg, or point kvsgate serve --ffmpeg at it)")
)

// FFmpegPath resolves the configured ffmpeg executable, or returns an
// error wrapping ErrNoDecoder.
func (r *Renderer) FFmpegPath() (string, error) {
	p, err := exec.LookPath(r.cfg.FFmpeg)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoDecoder, err)
	}
	return p, nil
}

// CacheStats returns the cache's counters.
func (r *Renderer) CacheStats() CacheStats { return r.cache.stats() }

// Fragment is a stored fragment frames are taken from.
type Fragment struct {
	StreamID int64
	Number   uint64 // unique per stream: with StreamID, the cache key
	Header   *fragments.Header
	Samples  []fragments.Sample
	// Open opens the payload that Sample offsets index into; it is called
	// only when a frame of the fragment is not in the cache.
	Open func() (io.ReaderAt, io.Closer, error)
}

// Request is one image to make: a frame of the fragment's first track.
type Request struct {
	Frag   *Fragment
	Sample int // index into Frag.Samples
}

// Result is one image, or Err (wrapping ErrMedia).
type Result struct {
	Image []byte
	Err   error
}

// FrameAt returns the index of the first track's frame on screen at rel
// (nanoseconds relative to the fragment's start, the time base of Sample
// PTS): the frame with the greatest presentation time at or before rel,
// -1 if there is none.
func FrameAt(samples []fragments.Sample, rel int64) int {
	best := -1
	for i := range samples {
		s := &samples[i]
		if s.Track == 0 && s.PTS <= rel && (best < 0 || s.PTS > samples[best].PTS) {
			best = i
		}
	}
	return best
}

// OutputSize is the size of images of a srcW x srcH source for a
// requested size w x h (0: not given): both given, w x h; one given, the
// other follows the source's aspect ratio (rounded, at least 1, at most
// MaxWidth or MaxHeight); neither, the source size.
func OutputSize(srcW, srcH, w, h int) (int, int) {
	switch {
	case w > 0 && h > 0:
		return w, h
	case w > 0 && srcW > 0:
		return w, min(max(1, int((int64(w)*int64(srcH)+int64(srcW)/2)/int64(srcW))), MaxHeight)
	case h > 0 && srcH > 0:
		return min(max(1, int((int64(h)*int64(srcW)+int64(srcH)/2)/int64(srcH))), MaxWidth), h
	}
	return srcW, srcH
}

// trackInfo is the first track of a header as the renderer needs it.
type trackInfo struct {
	cfg  *trackConfig
	w, h int
	err  error
}

func (r *Renderer) track(h *fragments.Header) *trackInfo {
	if h != nil && h.ID != 0 {
		if ti, ok := r.tracks.Load(h.ID); ok {
			return ti.(*trackInfo)
		}
	}
	ti := &trackInfo{}
	switch {
	case h == nil || len(h.Tracks) == 0:
		ti.err = fmt.Errorf("%w: no tracks", ErrUnsupported)
	default:
		ti.cfg, ti.err = parseTrack(&h.Tracks[0])
		if ti.err == nil {
			// Width and height from the SPS (cropped), else the track's.
			info, err := hls.Describe(&fragments.Header{Tracks: h.Tracks[:1]}, nil)
			switch {
			case err != nil:
				ti.err = fmt.Errorf("%w: %v", ErrUnsupported, err)
			case info.Width <= 0 || info.Height <= 0 || info.Width > 16384 || info.Height > 16384:
				ti.err = fmt.Errorf("%w: picture size %dx%d", ErrUnsupported, info.Width, info.Height)
			default:
				ti.w, ti.h = info.Width, info.Height
			}
		}
	}
	if h != nil && h.ID != 0 {
		// The first stored wins: batches group GOPs by this pointer, so
		// requests racing here must all end up with the same one.
		got, _ := r.tracks.LoadOrStore(h.ID, ti)
		return got.(*trackInfo)
	}
	return ti
}

// want is one distinct frame a Render call must decode, and the results
// that receive it.
type want struct {
	key    cacheKey
	sample int
	out    []int
}

// gop is the frames wanted from one GOP: decoding starts at its key frame.
type gop struct {
	frag  *Fragment
	ti    *trackInfo
	key   int // sample index of the key frame
	last  int // the last wanted sample in decode (storage) order
	wants []*want
}

// cost estimates the decoding work of a GOP: the frames up to its last
// wanted one.
func (g *gop) cost() int {
	n := 1
	for i := g.key + 1; i <= g.last; i++ {
		if g.frag.Samples[i].Track == 0 {
			n++
		}
	}
	return n
}

// Render makes the images of reqs, rendered as spec says. Images in the
// cache are not decoded again; the others are decoded GOP by GOP, each
// GOP at most once, from its key frame up to its last wanted frame. A
// frame that cannot be made has Err wrapping ErrMedia. Render itself fails
// only for a bad spec, a cancelled ctx, or ErrNoDecoder.
func (r *Renderer) Render(ctx context.Context, spec Spec, reqs []Request) ([]Result, error) {
	switch spec.Format {
	case JPEG:
		if spec.Quality == 0 {
			spec.Quality = DefaultQuality
		}
		if spec.Quality < 1 || spec.Quality > 100 {
			return nil, fmt.Errorf("images: JPEG quality %d is not between 1 and 100", spec.Quality)
		}
	case PNG:
		spec.Quality = 0
	default:
		return nil, fmt.Errorf("images: unknown format %d", spec.Format)
	}
	if spec.Width < 0 || spec.Width > MaxWidth || spec.Height < 0 || spec.Height > MaxHeight {
		return nil, fmt.Errorf("images: size %dx%d out of range", spec.Width, spec.Height)
	}
	res := make([]Result, len(reqs))
	var gops []*gop
	byGOP := map[*Fragment]map[int]*gop{}
	byKey := map[cacheKey]*want{}
	for i, rq := range reqs {
		f := rq.Frag
		if f == nil || rq.Sample < 0 || rq.Sample >= len(f.Samples) || f.Samples[rq.Sample].Track != 0 {
			res[i].Err = fmt.Errorf("%w: no such frame", ErrMedia)
			continue
		}
		ti := r.track(f.Header)
		if ti.err != nil {
			res[i].Err = fmt.Errorf("%w: %v", ErrMedia, ti.err)
			continue
		}
		w, h := OutputSize(ti.w, ti.h, spec.Width, spec.Height)
		k := cacheKey{stream: f.StreamID, number: f.Number, sample: rq.Sample, format: spec.Format, w: w, h: h, quality: spec.Quality}
		if e, ok := r.cache.get(k); ok {
			res[i] = e.result()
			continue
		}
		if wt := byKey[k]; wt != nil {
			wt.out = append(wt.out, i)
			continue
		}
		key := -1
		for j := rq.Sample; j >= 0; j-- {
			if s := &f.Samples[j]; s.Track == 0 && s.Key {
				key = j
				break
			}
		}
		if key < 0 {
			e := &cacheEntry{key: k, fail: "no key frame before the frame in its fragment"}
			r.cache.put(e)
			res[i] = e.result()
			continue
		}
		wt := &want{key: k, sample: rq.Sample, out: []int{i}}
		byKey[k] = wt
		m := byGOP[f]
		if m == nil {
			m = map[int]*gop{}
			byGOP[f] = m
		}
		g := m[key]
		if g == nil {
			g = &gop{frag: f, ti: ti, key: key, last: rq.Sample}
			m[key] = g
			gops = append(gops, g)
		}
		g.last = max(g.last, rq.Sample)
		g.wants = append(g.wants, wt)
	}
	if len(gops) == 0 {
		return res, nil
	}
	ffmpeg, err := r.FFmpegPath()
	if err != nil {
		return nil, err
	}

	// Batches: GOPs of the same track header (so of one codec and size),
	// in order, cut into as many runs of about equal work as processes may
	// run at once: few process starts (each costs tens of milliseconds),
	// all cores busy.
	var batches [][]*gop
	used := map[decoderKind]int{} // batches of each kind
	for start := 0; start < len(gops); {
		end := start + 1
		for end < len(gops) && gops[end].ti == gops[start].ti {
			end++
		}
		for _, b := range split(gops[start:end], cap(r.slots)) {
			batches = append(batches, b)
			used[spec.kind(b)]++
		}
		start = end
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	deliver := func(wt *want, e *cacheEntry) {
		if e.data != nil || e.fail != "" && !e.transient() {
			r.cache.put(e)
		}
		mu.Lock()
		for _, i := range wt.out {
			res[i] = e.result()
		}
		mu.Unlock()
	}
	for _, b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case r.slots <- struct{}{}:
			case <-ctx.Done():
				for _, g := range b {
					for _, wt := range g.wants {
						deliver(wt, &cacheEntry{key: wt.key, fail: transientPrefix + ctx.Err().Error()})
					}
				}
				return
			}
			defer func() { <-r.slots }()
			r.runBatch(ctx, ffmpeg, spec, b, deliver)
		}()
	}
	wg.Wait()
	// As many processes as this request used wait for the next one of
	// its kind.
	for k, n := range used {
		go r.spares.fill(ffmpeg, k, n)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// split cuts GOPs into at most n contiguous runs of about equal cost: the
// k-th cut goes where the cost so far is closest to k/n of the total.
func split(gops []*gop, n int) [][]*gop {
	n = max(1, min(n, len(gops)))
	total := 0
	for _, g := range gops {
		total += g.cost()
	}
	abs := func(v int) int { return max(v, -v) }
	var out [][]*gop
	start, acc := 0, 0
	for i, g := range gops {
		acc += g.cost()
		k := len(out) + 1 // the cut being placed
		if k >= n || i+1 == len(gops) {
			break
		}
		next := acc + gops[i+1].cost()
		if abs(acc*n-total*k) <= abs(next*n-total*k) {
			out = append(out, gops[start:i+1])
			start = i + 1
		}
	}
	return append(out, gops[start:])
}

// transientPrefix marks failures that say nothing of the media (a
// timeout, a cancelled request, a read error): they are not cached.
const transientPrefix = "transient: "

func (e *cacheEntry) transient() bool {
	return len(e.fail) >= len(transientPrefix) && e.fail[:len(transientPrefix)] == transientPrefix
}

func (e *cacheEntry) result() Result {
	if e.data != nil {
		return Result{Image: e.data}
	}
	return Result{Err: fmt.Errorf("%w: %s", ErrMedia, e.fail)}
}
