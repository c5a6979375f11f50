package images

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// One decoder process decodes a batch of GOPs of one track header. It is
// fed the GOPs one after the other as one Annex B stream on stdin: per GOP
// its key frame, then in decode order every frame up to the last wanted
// one that is wanted or may be referenced (non-reference pictures and
// leading pictures, which are not needed to decode the others, are left
// out unless wanted). ffmpeg's select filter keeps the wanted frames by
// their byte position in that stream (each access unit starts with our own
// delimiter, so ffmpeg's parser cuts where we do and a frame's position
// names its sample); scale converts them to the output size and to
// full-range BT.601 YCbCr 4:2:0 for JPEG or RGB for PNG; showinfo prints
// each output frame's position on stderr; mjpeg or png encodes them (see
// encode.go) and image2pipe writes them to stdout one after the other. Frames are matched to samples by
// those positions, not by their order or count, so a frame the decoder
// drops or a process that dies costs only the frames that did not come
// out.

// auRef is an access unit of the stream fed to the decoder.
type auRef struct {
	start int // byte offset in the stream
	want  *want
}

// eosHEVC ends a coded video sequence: the next GOP starts a new one even
// if it starts with a CRA picture, whose leading pictures are then not
// output (they would reference pictures of an unrelated GOP).
var eosHEVC = []byte{0, 0, 0, 1, 0x48, 0x01}

// runBatch decodes one batch and delivers an entry for every wanted frame.
func (r *Renderer) runBatch(ctx context.Context, ffmpeg string, spec Spec, batch []*gop, deliver func(*want, *cacheEntry)) {
	ti := batch[0].ti
	w, h := OutputSize(ti.w, ti.h, spec.Width, spec.Height)
	var stream []byte
	var aus []auRef
	var sel strings.Builder
	pending := map[*want]bool{}
	for gi, g := range batch {
		// The key frame's access unit starts at the end-of-sequence NAL
		// unit before it: ffmpeg's parser starts access units there.
		gopStart := len(stream)
		if gi > 0 && ti.cfg.codec == codecHEVC {
			stream = append(stream, eosHEVC...)
		}
		data, base, err := g.read()
		if err != nil {
			for _, wt := range g.wants {
				deliver(wt, &cacheEntry{key: wt.key, fail: transientPrefix + err.Error()})
			}
			continue
		}
		wanted := map[int]*want{}
		for _, wt := range g.wants {
			wanted[wt.sample] = wt
		}
		samples := g.frag.Samples
		keyPTS := samples[g.key].PTS
		for i := g.key; i <= g.last; i++ {
			s := &samples[i]
			if s.Track != 0 {
				continue
			}
			b := data[s.Offset-base:][:s.Size]
			info := ti.cfg.inspect(b)
			wt := wanted[i]
			if i != g.key && wt == nil && (s.PTS < keyPTS || !info.ref) {
				continue
			}
			if info.vcl == 0 {
				// Nothing to decode: this frame and every wanted one after
				// it in decode order (they may reference it) fail.
				msg := fmt.Sprintf("sample %d of fragment %d has no well-formed slice NAL unit", i, g.frag.Number)
				for j, wt := range wanted {
					if j >= i {
						deliver(wt, &cacheEntry{key: wt.key, fail: msg})
						delete(wanted, j)
					}
				}
				break
			}
			start := len(stream)
			if i == g.key {
				start = gopStart
			}
			stream = ti.cfg.appendAU(stream, b, i == g.key)
			aus = append(aus, auRef{start: start, want: wt})
			if wt != nil {
				pending[wt] = true
				if sel.Len() > 0 {
					sel.WriteByte('+')
				}
				fmt.Fprintf(&sel, `between(pos\,%d\,%d)`, start, len(stream)-1)
			}
		}
	}
	if len(pending) == 0 {
		return
	}
	r.processes.Add(1)
	r.fed.Add(int64(len(aus)))
	fails := r.decode(ctx, ffmpeg, spec, ti.cfg.codec, w, h, stream, aus, sel.String(), pending, deliver)
	for wt := range pending {
		deliver(wt, &cacheEntry{key: wt.key, fail: fails})
	}
}

// read reads the part of the payload the GOP's frames are in. Sample
// offsets are checked against it: a sample table that does not fit is
// an error, not a panic.
func (g *gop) read() ([]byte, int64, error) {
	lo, hi := int64(-1), int64(0)
	for i := g.key; i <= g.last; i++ {
		s := &g.frag.Samples[i]
		if s.Track != 0 {
			continue
		}
		if s.Offset < 0 || s.Size < 0 || s.Size > 1<<30 || s.Offset > 1<<50 {
			return nil, 0, fmt.Errorf("sample %d: bad byte range %d+%d", i, s.Offset, s.Size)
		}
		if lo < 0 || s.Offset < lo {
			lo = s.Offset
		}
		hi = max(hi, s.Offset+s.Size)
	}
	if hi-lo > 1<<30 {
		return nil, 0, fmt.Errorf("GOP of %d bytes", hi-lo)
	}
	if g.frag.Open == nil {
		return nil, 0, errors.New("no payload")
	}
	ra, c, err := g.frag.Open()
	if err != nil {
		return nil, 0, fmt.Errorf("opening fragment %d: %w", g.frag.Number, err)
	}
	defer c.Close()
	buf := make([]byte, hi-lo)
	if n, err := ra.ReadAt(buf, lo); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, fmt.Errorf("reading fragment %d: %w", g.frag.Number, err)
	}
	return buf, lo, nil
}

// decode runs ffmpeg over the stream and delivers the frames that come
// out (removing them from pending). It returns the failure of the frames
// still pending.
func (r *Renderer) decode(ctx context.Context, ffmpeg string, spec Spec, c codec, w, h int, stream []byte, aus []auRef,
	sel string, pending map[*want]bool, deliver func(*want, *cacheEntry)) string {
	// JPEG: full-range BT.601 YCbCr 4:2:0 (JFIF's) encoded by mjpeg; PNG:
	// RGB encoded by png.
	filter := "select='" + sel + "',scale=" + strconv.Itoa(w) + ":" + strconv.Itoa(h) + ":flags=bicubic"
	out, read := pngArgs(), readPNG
	if spec.Format == JPEG {
		filter += ":out_range=full:out_color_matrix=bt601,format=yuvj420p"
		out, read = jpegArgs(spec.Quality), readJPEG
	} else {
		filter += ",format=rgb24"
	}
	filter += ",showinfo=checksum=0"
	dctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
		"-threads", "1", "-f", c.ffmpegFormat(), "-i", "pipe:0",
		"-an", "-sn", "-dn", "-filter_threads", "1", "-vf", filter, "-fps_mode", "passthrough", "-threads", "1"}
	args = append(append(args, out...), "pipe:1")
	cmd := exec.CommandContext(dctx, ffmpeg, args...)
	cmd.WaitDelay = 2 * time.Second
	cmd.Stdin = bytes.NewReader(stream)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return transientPrefix + err.Error()
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return transientPrefix + err.Error()
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return transientPrefix + fmt.Sprintf("%v: %v", ErrNoDecoder, err)
	}

	// stderr: the position of every output frame, in output order; the
	// other lines are kept (the last few) to say why frames are missing.
	positions := make(chan [2]int64, 1024) // showinfo's frame count n and pos
	var tail []string
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		defer close(positions)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if n, pos, ok := showinfoPos(line); ok {
				positions <- [2]int64{n, pos}
				continue
			}
			if strings.Contains(line, "Parsed_showinfo") || strings.HasPrefix(line, " ") {
				continue
			}
			if len(tail) == 8 {
				tail = append(tail[:0], tail[1:]...)
			}
			tail = append(tail, line)
		}
		io.Copy(io.Discard, stderr)
	}()

	// stdout: the images, in the order of the positions on stderr.
	rd := bufio.NewReaderSize(stdout, 256<<10)
	var mismatch string
	for count := int64(0); ; count++ {
		img, err := read(rd)
		if err != nil {
			if err != io.EOF {
				mismatch = "reading the decoder's output: " + err.Error()
			}
			break
		}
		np, ok := <-positions
		if !ok || np[0] != count {
			// A line lost or garbled: positions no longer name images.
			mismatch = "an image came out without its position"
			break
		}
		pos := np[1]
		i := sort.Search(len(aus), func(i int) bool { return int64(aus[i].start) > pos }) - 1
		if i < 0 || aus[i].want == nil || !pending[aus[i].want] {
			mismatch = fmt.Sprintf("an image came out from byte %d, which is no wanted frame", pos)
			break
		}
		wt := aus[i].want
		delete(pending, wt)
		r.decoded.Add(1)
		deliver(wt, &cacheEntry{key: wt.key, data: img})
	}
	io.Copy(io.Discard, stdout)
	<-logDone
	werr := cmd.Wait()
	if len(pending) == 0 && mismatch == "" {
		return ""
	}
	why := mismatch
	if why == "" {
		why = "the decoder did not output the frame"
	}
	if len(tail) > 0 {
		why += " (ffmpeg: " + strings.Join(tail, "; ") + ")"
	}
	transient := false
	switch {
	case ctx.Err() != nil:
		why, transient = ctx.Err().Error(), true
	case dctx.Err() != nil:
		why, transient = fmt.Sprintf("decoding timed out after %s", time.Since(began).Round(time.Millisecond)), true
	case werr != nil:
		var ee *exec.ExitError
		if !errors.As(werr, &ee) || !ee.Exited() {
			transient = true // killed by a signal: maybe not the media's fault
		}
		why += fmt.Sprintf(" (%v)", werr)
	}
	r.cfg.Logger.Debug("images: frames not decoded", "frames", len(pending), "why", why)
	if transient {
		return transientPrefix + why
	}
	return why
}

// showinfoPos reads the frame count (n, from 0) and the pos field of a
// showinfo frame line:
//
//	[Parsed_showinfo_3 @ 0x5558] n:   0 pts:  79999 pts_time:0.0666 pos:    63895 fmt:yuv420p ...
func showinfoPos(line string) (n, pos int64, ok bool) {
	if !strings.Contains(line, "Parsed_showinfo") {
		return 0, 0, false
	}
	_, rest, found := strings.Cut(line, "] n:")
	if !found {
		return 0, 0, false
	}
	field := func(s string) (int64, string, bool) {
		s = strings.TrimLeft(s, " ")
		end := strings.IndexByte(s, ' ')
		if end < 0 {
			end = len(s)
		}
		v, err := strconv.ParseInt(s[:end], 10, 64)
		return v, s[end:], err == nil && v >= 0
	}
	n, rest, ok = field(rest)
	if !ok {
		return 0, 0, false
	}
	if _, rest, found = strings.Cut(rest, " pos:"); !found {
		return 0, 0, false
	}
	if pos, _, ok = field(rest); !ok {
		return 0, 0, false
	}
	return n, pos, true
}
