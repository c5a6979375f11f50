package images

import (
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// An ffmpeg process costs some 70 ms of CPU (and as much wall time) to
// start: it loads and relocates over 200 shared libraries before it reads
// a byte. A page of 25 thumbnails decodes in two processes on two cores,
// so starting them is a third to half of a key-frame page's work. The
// command line of a decoder depends only on its kind (codec, format, size,
// quality), not on the frames it is fed: the frames to output are chosen
// by where their access units start in the stream (see grid). So
// processes can be started before they are needed: after a request, as
// many processes as it used are started for its kind and wait, blocked
// reading stdin, for the next request of that kind. Each still decodes one
// batch and exits at the end of its input, so a crash costs one batch and
// the end of input flushes the decoder.

// decoderKind is what a decoder's command line depends on.
type decoderKind struct {
	codec   codec
	format  Format
	w, h    int
	quality int  // 0 for PNG
	down    bool // scaling down: bilinear, else bicubic (see args)
	// keyOnly: every access unit of the batch is a key frame, so the
	// order the decoder outputs them in does not depend on a reorder
	// delay it would have to find by probing (see args).
	keyOnly bool
}

// args are the ffmpeg arguments of a decoder: Annex B on stdin, the
// selected frames scaled and encoded one after the other on stdout, and
// each output frame's position in the input on stderr (showinfo).
func (k decoderKind) args() []string {
	// JPEG: full-range BT.601 YCbCr 4:2:0 (JFIF's) encoded by mjpeg; PNG:
	// RGB encoded by png.
	// The scaler: bilinear to scale down, which swscale widens by the
	// ratio (a 1080p frame to 640x360 takes 1.6 ms of CPU instead of
	// bicubic's 3.2 ms); bicubic to scale up or convert at the same size.
	scaler := "bicubic"
	if k.down {
		scaler = "bilinear"
	}
	filter := fmt.Sprintf(`select='lt(mod(pos\,%d)\,%d)',scale=%d:%d:flags=%s`, grid, slack, k.w, k.h, scaler)
	out := pngArgs()
	if k.format == JPEG {
		filter += ":out_range=full:out_color_matrix=bt601,format=yuvj420p"
		out = jpegArgs(k.quality)
	} else {
		filter += ",format=rgb24"
	}
	filter += ",showinfo=checksum=0"
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-threads", "1"}
	if k.keyOnly {
		// By default ffmpeg reads up to 5 MB of its input (a whole
		// batch) before it decodes, and decodes some of it to probe the
		// stream: among other things how many frames the decoder must
		// hold back to output B-frames in order, which an H.264 SPS
		// without VUI bitstream_restriction does not say. Key frames
		// alone need no reordering, so a key-only decoder probes 32
		// bytes and starts on the first frame while the next are still
		// being read (see feed).
		args = append(args, "-probesize", "32", "-analyzeduration", "0")
	}
	args = append(args, "-f", k.codec.ffmpegFormat(), "-i", "pipe:0",
		"-an", "-sn", "-dn", "-filter_threads", "1", "-vf", filter, "-fps_mode", "passthrough", "-threads", "1")
	return append(append(args, out...), "pipe:1")
}

// decoder is a started ffmpeg process that has not been given its batch.
type decoder struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr io.ReadCloser
	expire         *time.Timer // while it waits among the spares

	// A warmed decoder (see warm) has been given a warm-up stream: cont
	// is how many bytes of the batch's first access unit it ends with,
	// base the position in the input where that access unit starts, and
	// warmed is closed once the warm-up stream is written.
	base   int64
	cont   int
	warmed chan struct{}
}

// warmup is a key frame to warm decoders of a key-only kind with: its
// access unit as feed writes it (parameter sets included), of a track
// with cfg.
type warmup struct {
	cfg *trackConfig
	au  []byte
}

// A decoder's first image costs some 40 ms more than the next ones, even
// when the process was started in advance: ffmpeg probes its input, sets
// up the decoder, the scaler and the encoder and faults in their buffers
// when the first frame comes. A decoder of key frames alone (keyOnly) can
// be given a key frame of the kind's last track before the request, as
// many times as it holds frames back plus one, so that one image comes out
// and all of that is done in advance. The image (at position 0, before
// base) is read and dropped with the batch's images. The warm-up ends
// with the first bytes of the next access unit (the trailer: the
// delimiter for H.264, the end-of-sequence NAL unit for H.265), without
// which ffmpeg's parser would hold the last copy until the batch comes;
// the batch's stream starts with those bytes, and they are not written
// again. The frames it holds back are off the grid, so they are not
// selected when the batch's frames push them out.
func (d *decoder) warm(w *warmup) {
	c := w.cfg
	trailer := audH264
	if c.codec == codecHEVC {
		trailer = eosHEVC
	}
	stream := append([]byte(nil), w.au...)
	for range c.reorder {
		stream = c.pad(stream, false)
		if c.codec == codecHEVC {
			stream = append(stream, eosHEVC...)
		}
		stream = append(stream, w.au...)
	}
	stream = append(c.pad(stream, true), trailer...)
	d.base, d.cont = int64(len(stream)-len(trailer)), len(trailer)
	d.warmed = make(chan struct{})
	go func() {
		defer close(d.warmed)
		d.stdin.Write(stream) // an error is the process's end, seen when it is used
	}()
}

// startDecoder starts a decoder of a kind.
func startDecoder(ffmpeg string, k decoderKind) (*decoder, error) {
	cmd := exec.Command(ffmpeg, k.args()...)
	d := &decoder{cmd: cmd}
	var err error
	if d.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if d.stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if d.stderr, err = cmd.StderrPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil { // closes the pipes
		return nil, err
	}
	return d, nil
}

// discard stops a decoder that was never given work: it ends at the end
// of its (empty) input, or is killed if it has not after a few seconds.
func (d *decoder) discard() {
	d.stdin.Close()
	kill := time.AfterFunc(5*time.Second, func() { d.cmd.Process.Kill() })
	go func() {
		d.cmd.Wait() // reaps it; closes the pipes
		kill.Stop()
	}()
}

// maxSpareKinds is how many kinds of decoders (the most recently used)
// are kept started.
const maxSpareKinds = 4

// spares are started decoders waiting for work, for the kinds used last.
// A nil *spares keeps none.
type spares struct {
	per  int           // per kind
	idle time.Duration // how long one waits before it is stopped

	mu     sync.Mutex
	kinds  []decoderKind // most recent first
	ready  map[decoderKind][]*decoder
	warm   map[decoderKind]*warmup // the last key frame of each key-only kind
	closed bool
}

func newSpares(per int, idle time.Duration) *spares {
	if per <= 0 {
		return nil
	}
	return &spares{per: per, idle: idle, ready: map[decoderKind][]*decoder{}, warm: map[decoderKind]*warmup{}}
}

// take returns a waiting decoder of kind k, or nil.
func (s *spares) take(k decoderKind) *decoder {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.ready[k]
	if len(list) == 0 {
		return nil
	}
	d := list[len(list)-1]
	s.ready[k] = list[:len(list)-1]
	d.expire.Stop()
	return d
}

// warmWith makes w the key frame that decoders of the key-only kind k
// started from now on are warmed with.
func (s *spares) warmWith(k decoderKind, w *warmup) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.warm[k] = w
	s.mu.Unlock()
}

// fill makes k the most recently used kind and starts decoders of it
// until n (at most per) wait, warmed if k is key-only (see warm).
// Decoders of kinds no longer among the last maxSpareKinds are stopped.
func (s *spares) fill(ffmpeg string, k decoderKind, n int) {
	if s == nil {
		return
	}
	n = min(n, s.per)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.kinds = slices.DeleteFunc(s.kinds, func(x decoderKind) bool { return x == k })
	s.kinds = slices.Insert(s.kinds, 0, k)
	var stale []*decoder
	if len(s.kinds) > maxSpareKinds {
		for _, old := range s.kinds[maxSpareKinds:] {
			stale = append(stale, s.ready[old]...)
			delete(s.ready, old)
			delete(s.warm, old)
		}
		s.kinds = s.kinds[:maxSpareKinds]
	}
	missing := n - len(s.ready[k])
	w := s.warm[k]
	s.mu.Unlock()
	for _, d := range stale {
		d.expire.Stop()
		d.discard()
	}
	for range missing {
		d, err := startDecoder(ffmpeg, k)
		if err != nil {
			return
		}
		if w != nil && k.keyOnly {
			d.warm(w)
		}
		s.mu.Lock()
		if s.closed || len(s.ready[k]) >= s.per || !slices.Contains(s.kinds, k) {
			s.mu.Unlock()
			d.discard()
			return
		}
		d.expire = time.AfterFunc(s.idle, func() { s.remove(k, d) })
		s.ready[k] = append(s.ready[k], d)
		s.mu.Unlock()
	}
}

// remove stops a waiting decoder whose time is up (unless it was taken).
func (s *spares) remove(k decoderKind, d *decoder) {
	s.mu.Lock()
	list := s.ready[k]
	i := slices.Index(list, d)
	if i >= 0 {
		s.ready[k] = slices.Delete(list, i, i+1)
	}
	s.mu.Unlock()
	if i >= 0 {
		d.discard()
	}
}

// close stops every waiting decoder and starts no more.
func (s *spares) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	all := s.ready
	s.ready = map[decoderKind][]*decoder{}
	s.mu.Unlock()
	for _, list := range all {
		for _, d := range list {
			d.expire.Stop()
			d.discard()
		}
	}
}

// count is the number of waiting decoders.
func (s *spares) count() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, list := range s.ready {
		n += len(list)
	}
	return n
}
