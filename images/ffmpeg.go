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
	"sync"
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
// names its sample; wanted ones start on a grid, see pad); scale converts
// them to the output size and to full-range BT.601 YCbCr 4:2:0 for JPEG or
// RGB for PNG; showinfo prints each output frame's position on stderr;
// mjpeg or png encodes them (see encode.go) and image2pipe writes them to
// stdout one after the other. Frames are matched to samples by those
// positions, not by their order or count, so a frame the decoder drops or
// a process that dies costs only the frames that did not come out. If a
// process fails with the frames of several GOPs still missing, each of
// those GOPs is decoded again on its own: a GOP that crashes the decoder
// costs its own images, not those of the GOPs it shared a process with.

// auRef is an access unit of the stream fed to the decoder.
type auRef struct {
	start int // byte offset in the stream
	want  *want
}

// eosHEVC ends a coded video sequence: the next GOP starts a new one even
// if it starts with a CRA picture, whose leading pictures are then not
// output (they would reference pictures of an unrelated GOP).
var eosHEVC = []byte{0, 0, 0, 1, 0x48, 0x01}

// kind is the kind of decoder a batch of GOPs needs.
func (spec Spec) kind(batch []*gop) decoderKind {
	ti := batch[0].ti
	w, h := OutputSize(ti.w, ti.h, spec.Width, spec.Height)
	k := decoderKind{codec: ti.cfg.codec, format: spec.Format, w: w, h: h, quality: spec.Quality,
		down: w <= ti.w && h <= ti.h && (w < ti.w || h < ti.h), keyOnly: true}
	for _, g := range batch {
		k.keyOnly = k.keyOnly && g.last == g.key
	}
	return k
}

// fed is what a batch's decoder has been given: the access units written
// to it so far, and the wanted frames not yet delivered. The feeding and
// the reading goroutines share it.
type fed struct {
	mu      sync.Mutex
	aus     []auRef // in stream order
	pending map[*want]bool
	first   []byte // the first access unit, a key frame (set before it is written; see warmup)
	firstOK bool   // whose image came out
}

// fail delivers a failure for those of wts still pending.
func (f *fed) fail(wts []*want, why string, deliver func(*want, *cacheEntry)) {
	f.mu.Lock()
	var failed []*want
	for _, wt := range wts {
		if f.pending[wt] {
			delete(f.pending, wt)
			failed = append(failed, wt)
		}
	}
	f.mu.Unlock()
	for _, wt := range failed {
		deliver(wt, &cacheEntry{key: wt.key, fail: why})
	}
}

// runBatch decodes one batch and delivers an entry for every wanted frame.
func (r *Renderer) runBatch(ctx context.Context, ffmpeg string, spec Spec, batch []*gop, deliver func(*want, *cacheEntry)) {
	f := &fed{pending: map[*want]bool{}}
	for _, g := range batch {
		for _, wt := range g.wants {
			f.pending[wt] = true
		}
	}
	k := spec.kind(batch)
	res := r.decode(ctx, ffmpeg, k, func(w io.Writer, cont int) { r.feed(batch, f, w, cont, deliver) }, f, deliver)
	// A key frame whose image did not come out (garbage, say) would make
	// every warm-up fail, or crash it.
	if cfg := batch[0].ti.cfg; k.keyOnly && f.firstOK && cfg.warmable(f.first) {
		r.spares.warmWith(k, &warmup{cfg: cfg, au: bytes.Clone(f.first)})
	}
	// Frames of more than one GOP missing after a failure that may be the
	// media's: each of those GOPs again, alone, for what is missing.
	pending := f.pending
	var again []*gop
	if res.retry && len(pending) > 0 {
		byGOP := map[*gop]*gop{}
		for _, g := range batch {
			for _, wt := range g.wants {
				if !pending[wt] {
					continue
				}
				a := byGOP[g]
				if a == nil {
					a = &gop{frag: g.frag, ti: g.ti, key: g.key, last: wt.sample}
					byGOP[g] = a
					again = append(again, a)
				}
				a.last = max(a.last, wt.sample)
				a.wants = append(a.wants, wt)
			}
		}
	}
	if len(again) > 1 {
		r.cfg.Logger.Debug("images: decoding GOPs again one by one", "gops", len(again), "why", res.why)
		for _, g := range again {
			r.runBatch(ctx, ffmpeg, spec, []*gop{g}, deliver)
		}
		return
	}
	for wt := range pending {
		deliver(wt, &cacheEntry{key: wt.key, fail: res.why})
	}
}

// feed writes the batch's stream to w GOP by GOP, each as soon as it is
// read, so that the decoder works on the first GOPs while the next are
// read. A GOP's access units are recorded in f before its bytes are
// written. Frames that cannot be fed fail here. It stops at the first
// write error (the decoder is gone). If cont > 0 the decoder was warmed
// (see decoder.warm) and has the first cont bytes of the stream already.
func (r *Renderer) feed(batch []*gop, f *fed, w io.Writer, cont int, deliver func(*want, *cacheEntry)) {
	ti := batch[0].ti
	var stream []byte // all of it so far: positions are offsets in it
	for _, g := range batch {
		data, base, err := g.read()
		if err != nil {
			f.fail(g.wants, transientPrefix+err.Error(), deliver)
			continue
		}
		wanted := map[int]*want{}
		for _, wt := range g.wants {
			wanted[wt.sample] = wt
		}
		written := len(stream)
		if written == 0 {
			written = cont
		}
		var aus []auRef
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
				var later []*want
				for j, wt := range wanted {
					if j >= i {
						later = append(later, wt)
					}
				}
				f.fail(later, fmt.Sprintf("sample %d of fragment %d has no well-formed slice NAL unit", i, g.frag.Number), deliver)
				break
			}
			// The key frame's access unit starts at the end-of-sequence NAL
			// unit before it: ffmpeg's parser starts access units there.
			stream = ti.cfg.pad(stream, wt != nil)
			start := len(stream)
			if i == g.key && (start > 0 || cont > 0) && ti.cfg.codec == codecHEVC {
				stream = append(stream, eosHEVC...)
			}
			stream = ti.cfg.appendAU(stream, b, i == g.key)
			aus = append(aus, auRef{start: start, want: wt})
		}
		if len(aus) == 0 {
			continue
		}
		f.mu.Lock()
		if f.first == nil {
			end := len(stream)
			if len(aus) > 1 {
				end = aus[1].start
			}
			f.first = stream[:end:end] // never written to again
			if ti.cfg.codec == codecHEVC && cont > 0 {
				f.first = f.first[len(eosHEVC):]
			}
		}
		f.aus = append(f.aus, aus...)
		f.mu.Unlock()
		r.fed.Add(int64(len(aus)))
		if _, err := w.Write(stream[written:]); err != nil {
			return
		}
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

// decodeResult is why the frames still pending after decode were not
// made, and whether decoding them again could help.
type decodeResult struct {
	why string
	// retry: the process failed (crashed, or its output stopped making
	// sense) for a reason that may be one GOP's media; not a timeout or a
	// cancelled request.
	retry bool
}

// decode gives a decoder of kind k (one started in advance if there is
// one) the stream feed writes, and delivers the frames that come out,
// removing them from f.pending. Images of an unwanted access unit at
// position 0 (see pad) are dropped. It returns once the process has
// exited and feed has returned.
func (r *Renderer) decode(ctx context.Context, ffmpeg string, k decoderKind, feed func(w io.Writer, cont int), f *fed,
	deliver func(*want, *cacheEntry)) decodeResult {
	d := r.spares.take(k)
	if d != nil {
		r.prestarted.Add(1)
	} else {
		var err error
		if d, err = startDecoder(ffmpeg, k); err != nil {
			return decodeResult{why: transientPrefix + fmt.Sprintf("%v: %v", ErrNoDecoder, err)}
		}
	}
	r.processes.Add(1)
	read := readPNG
	if k.format == JPEG {
		read = readJPEG
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(dctx, func() {
		d.cmd.Process.Kill()
		// Its output ends here even if a child of it still holds the
		// pipes open.
		d.stdout.Close()
		d.stderr.Close()
	})
	defer stop()
	began := time.Now()
	fedAll := make(chan struct{})
	go func() {
		defer close(fedAll)
		if d.warmed != nil {
			<-d.warmed
		}
		feed(d.stdin, d.cont) // a write error is the process's end, seen below
		d.stdin.Close()
	}()

	// stderr: the position of every output frame, in output order; the
	// other lines are kept (the last few) to say why frames are missing.
	positions := make(chan [2]int64, 1024) // showinfo's frame count n and pos
	var tail []string
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		defer close(positions)
		sc := bufio.NewScanner(d.stderr)
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
		io.Copy(io.Discard, d.stderr)
	}()

	// stdout: the images, in the order of the positions on stderr.
	rd := bufio.NewReaderSize(d.stdout, 256<<10)
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
		wt, skip, why := f.take(np[1] - d.base)
		if why != "" {
			mismatch = why
			break
		}
		if skip {
			continue
		}
		r.decoded.Add(1)
		deliver(wt, &cacheEntry{key: wt.key, data: img})
	}
	io.Copy(io.Discard, d.stdout)
	<-logDone
	werr := d.cmd.Wait()
	<-fedAll
	pending := f.pending
	if len(pending) == 0 && mismatch == "" {
		return decodeResult{}
	}
	why := mismatch
	if why == "" {
		why = "the decoder did not output the frame"
	}
	if len(tail) > 0 {
		why += " (ffmpeg: " + strings.Join(tail, "; ") + ")"
	}
	res := decodeResult{retry: mismatch != "" || werr != nil}
	transient := false
	switch {
	case ctx.Err() != nil:
		why, transient, res.retry = ctx.Err().Error(), true, false
	case dctx.Err() != nil:
		why, transient, res.retry = fmt.Sprintf("decoding timed out after %s", time.Since(began).Round(time.Millisecond)), true, false
	case werr != nil:
		var ee *exec.ExitError
		if !errors.As(werr, &ee) || !ee.Exited() {
			transient = true // killed by a signal: maybe not the media's fault
		}
		why += fmt.Sprintf(" (%v)", werr)
	}
	r.cfg.Logger.Debug("images: frames not decoded", "frames", len(pending), "why", why)
	if transient {
		why = transientPrefix + why
	}
	res.why = why
	return res
}

// take removes from pending the wanted frame whose access unit starts at
// pos (give or take slack) and returns it; or skip for the first access
// unit when it is not wanted (see pad) and for the warm-up's image (before
// 0, see decoder.warm); or why the image matches no pending frame.
func (f *fed) take(pos int64) (wt *want, skip bool, why string) {
	if pos < 0 {
		return nil, true, ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	aus := f.aus
	i := sort.Search(len(aus), func(i int) bool { return int64(aus[i].start) > pos }) - 1
	switch {
	case i < 0 || pos-int64(aus[i].start) >= slack:
		return nil, false, fmt.Sprintf("an image came out from byte %d, where no frame starts", pos)
	case i == 0 && aus[0].want == nil:
		return nil, true, ""
	case aus[i].want == nil || !f.pending[aus[i].want]:
		return nil, false, fmt.Sprintf("an image came out from byte %d, which is no wanted frame", pos)
	}
	wt = aus[i].want
	delete(f.pending, wt)
	f.firstOK = f.firstOK || i == 0
	return wt, false, ""
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
