package main

// Crash tests: the real kvsgate binary, killed with SIGKILL at random moments
// of a PutMedia ingest, or stopped with SIGTERM, then restarted on the same
// data directory.
//
// What TestCrashKill9 asserts after every kill (a process crash: the page
// cache survives, so this tests crash consistency, not power loss):
//
//   - every fragment acked PERSISTED is in the index and listed by
//     ListFragments, with the number the acks gave it;
//   - a fragment may be in the index without its PERSISTED ack (the ack was
//     lost in the kill), but only a fragment whose last byte the client had
//     handed to the connection, and per PutMedia connection the stored
//     fragments are exactly a prefix of the fragments sent (nothing skipped,
//     nothing partial);
//   - every stored fragment is intact: its payload is byte for byte the
//     Cluster sent (minus the END_OF_FRAGMENT tag, which is not payload), it
//     parses with fragments/mkv behind its stored track header, and each
//     sample of its sample table has the size and the bytes of the source frame;
//   - ordinals are dense from 1 and fragment numbers strictly increase with
//     them, across every restart; ListFragments lists exactly what the index
//     holds.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/fragments/sqlindex"
)

// ---- the source clip and the fragments made of it ----

type srcCluster struct {
	tc     int64    // cluster timecode, relative to the clip's first
	blocks [][]byte // raw SimpleBlock/BlockGroup elements
	frames [][]byte // frame bytes, in storage order
}

type clipData struct {
	header   []byte // EBML header, Segment (unknown size), Info, Tracks
	clusters []srcCluster
	loopMS   int64 // timecode shift of one loop of the clip
}

// loadClip parses the bundled sample clip (sampleClip, embedded by demo.go).
func loadClip(t testing.TB) *clipData {
	t.Helper()
	rd := mkv.NewReader(bytes.NewReader(sampleClip))
	c := &clipData{}
	var first, last int64
	var cur *srcCluster
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case mkv.KindEBMLHeader:
			c.header = append(c.header, ev.Raw...)
			c.header = append(c.header, 0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
		case mkv.KindTracks:
			if ev.Header.TimecodeScale != 1e6 {
				t.Fatalf("sample clip TimecodeScale %d, want 1000000", ev.Header.TimecodeScale)
			}
			// Info with TimecodeScale 1000000 (1 ms), then Tracks as read.
			c.header = append(c.header, 0x15, 0x49, 0xA9, 0x66, 0x87, 0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40)
			c.header = append(c.header, ev.Raw...)
		case mkv.KindClusterStart:
			c.clusters = append(c.clusters, srcCluster{})
			cur = &c.clusters[len(c.clusters)-1]
		case mkv.KindTimecode:
			if len(c.clusters) == 1 {
				first = ev.Timecode
			}
			cur.tc = ev.Timecode - first
		case mkv.KindBlock:
			cur.blocks = append(cur.blocks, bytes.Clone(ev.Raw))
			for _, f := range ev.Block.Frames {
				cur.frames = append(cur.frames, bytes.Clone(ev.Raw[f.Off:f.Off+f.Len]))
			}
			last = max(last, cur.tc+int64(ev.Block.Timecode))
		}
	}
	if len(c.clusters) < 2 {
		t.Fatalf("sample clip has %d clusters", len(c.clusters))
	}
	c.loopMS = last + 100
	return c
}

// frag is fragment k of the endless stream made by looping the clip.
type frag struct {
	k       int
	tc      int64    // ABSOLUTE cluster timecode (ms)
	payload []byte   // what the server must store: Cluster, Timecode, blocks
	tail    []byte   // the END_OF_FRAGMENT tag that ends it
	frames  [][]byte // the frames, in order
}

var endOfFragmentTag = func() []byte {
	el := func(id []byte, body []byte) []byte {
		return append(append(slices.Clone(id), 0x80|byte(len(body))), body...)
	}
	name := el([]byte{0x45, 0xA3}, []byte("AWS_KINESISVIDEO_END_OF_FRAGMENT"))
	value := el([]byte{0x44, 0x87}, []byte{})
	simple := el([]byte{0x67, 0xC8}, append(name, value...))
	tag := el([]byte{0x73, 0x73}, simple)
	return el([]byte{0x12, 0x54, 0xC3, 0x67}, tag)
}()

// tc is the ABSOLUTE cluster timecode (ms) of fragment k.
func (c *clipData) tc(k int, t0 int64) int64 {
	return t0 + int64(k/len(c.clusters))*c.loopMS + c.clusters[k%len(c.clusters)].tc
}

func (c *clipData) frag(k int, t0 int64) frag {
	cl := &c.clusters[k%len(c.clusters)]
	tc := c.tc(k, t0)
	p := []byte{0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x88}
	for i := 7; i >= 0; i-- {
		p = append(p, byte(uint64(tc)>>(8*i)))
	}
	for _, b := range cl.blocks {
		p = append(p, b...)
	}
	return frag{k: k, tc: tc, payload: p, tail: endOfFragmentTag, frames: cl.frames}
}

// ---- the server process ----

type proc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, after done

	mu   sync.Mutex
	logs bytes.Buffer
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// kvsgateBinary builds the binary once per test run.
func kvsgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "kvsgate-crash-bin")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "kvsgate")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// listenRE finds the listen address in the start line, text or JSON.
var listenRE = regexp.MustCompile(`msg="kvsgate serving" listen=(\S+)|"msg":"kvsgate serving","listen":"([^"]+)"`)

// startServer runs `kvsgate serve` on dir (with more flags) with a
// kernel-chosen port and waits until /healthz answers 200.
func startServer(t *testing.T, dir string, flags ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(kvsgateBinary(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir}, flags...)...)
	p.cmd.Env = append(os.Environ(), "KVSGATE_ACCESS_KEY_ID=", "KVSGATE_SECRET_ACCESS_KEY=")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1] + m[2]:
				default:
				}
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("server log:\n%s", p.log())
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		t.Fatalf("kvsgate exited at start: %v\n%s", p.err, p.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("kvsgate did not log its listen address in 20 s\n%s", p.log())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not 200 within 20 s (last: %v)\n%s", err, p.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// kill9 kills the process with SIGKILL and waits for it.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("kvsgate still running 10 s after SIGKILL")
	}
}

func apiCall(t *testing.T, url, op string, in, out any) {
	t.Helper()
	body, _ := json.Marshal(in)
	resp, err := http.Post(url+"/"+op, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s: %s", op, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v: %s", op, err, b)
		}
	}
}

// listFragments lists every fragment of a stream through the API, in server
// timestamp order, paging with NextToken (small pages, to test paging).
func listFragments(t *testing.T, url, stream string) []uint64 {
	t.Helper()
	var nums []uint64
	var token *string
	for {
		var out struct {
			Fragments []struct{ FragmentNumber string }
			NextToken *string
		}
		apiCall(t, url, "listFragments", map[string]any{"StreamName": stream, "MaxResults": 7, "NextToken": token}, &out)
		for _, f := range out.Fragments {
			n, err := strconv.ParseUint(f.FragmentNumber, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			nums = append(nums, n)
		}
		if out.NextToken == nil {
			return nums
		}
		token = out.NextToken
	}
}

// ---- a PutMedia connection ----

type ackRec struct {
	EventType        string
	FragmentTimecode int64
	FragmentNumber   string
	ErrorId          int
}

// session is one PutMedia connection, fed fragments from..(until it is stopped).
type session struct {
	from int // first fragment index k it sends

	mu        sync.Mutex
	finalSent int              // fragments [from, finalSent) had their last write started
	numbers   map[int]uint64   // k -> number, from any ack
	events    map[int][]string // k -> ack types, in order
	persisted int              // PERSISTED acks
	errAcks   []ackRec         // ERROR acks
	respEnded chan struct{}    // the ack stream ended
	respErr   error            // why
	sendDone  chan struct{}    // the sender returned
	tc2k      func(int64) (int, bool)
}

type sendPlan struct {
	stopK   int // if >0: send [from, stopK) whole, then cut bytes of stopK, then wait
	cut     int
	closeAt int // if >0: send [from, closeAt) and end the body
}

// startSession opens a PutMedia connection and feeds it fragments without
// waiting for acks, as fast as the server reads them.
func startSession(ctx context.Context, t *testing.T, url, stream string, clip *clipData, t0 int64, from int, plan sendPlan, tc2k func(int64) (int, bool)) *session {
	s := &session{from: from, finalSent: from, numbers: map[int]uint64{}, events: map[int][]string{},
		respEnded: make(chan struct{}), sendDone: make(chan struct{}), tc2k: tc2k}
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/putMedia", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-amzn-stream-name", stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
	req.Header.Set("x-amzn-fragment-acknowledgment-required", "1")
	go func() {
		defer close(s.sendDone)
		pw.CloseWithError(s.send(ctx, pw, clip, t0, plan))
	}()
	go func() {
		defer close(s.respEnded)
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			pr.CloseWithError(err)
			s.respErr = err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			s.respErr = fmt.Errorf("putMedia: %s: %s", resp.Status, b)
			pr.CloseWithError(s.respErr)
			return
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var a ackRec
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				s.respErr = fmt.Errorf("bad ack %q: %v", sc.Bytes(), err)
				return
			}
			s.record(a)
		}
		s.respErr = sc.Err()
	}()
	return s
}

func (s *session) send(ctx context.Context, w io.Writer, clip *clipData, t0 int64, plan sendPlan) error {
	if _, err := w.Write(clip.header); err != nil {
		return err
	}
	for k := s.from; ; k++ {
		if plan.closeAt > 0 && k == plan.closeAt {
			return nil
		}
		f := clip.frag(k, t0)
		if plan.stopK > 0 && k == plan.stopK {
			if _, err := w.Write(f.payload[:min(plan.cut, len(f.payload))]); err != nil {
				return err
			}
			if plan.cut > len(f.payload) {
				if _, err := w.Write(f.tail[:plan.cut-len(f.payload)]); err != nil {
					return err
				}
			}
			<-ctx.Done()
			return ctx.Err()
		}
		// A write per block, as a camera sends frames.
		if _, err := w.Write(f.payload[:15]); err != nil {
			return err
		}
		for p := 15; p < len(f.payload); p += 32 << 10 {
			if _, err := w.Write(f.payload[p:min(p+32<<10, len(f.payload))]); err != nil {
				return err
			}
		}
		s.mu.Lock()
		s.finalSent = k + 1 // from here on the server may complete it
		s.mu.Unlock()
		if _, err := w.Write(f.tail); err != nil {
			return err
		}
	}
}

func (s *session) record(a ackRec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.EventType == "ERROR" {
		s.errAcks = append(s.errAcks, a)
	}
	if a.FragmentNumber == "" {
		return
	}
	n, _ := strconv.ParseUint(a.FragmentNumber, 10, 64)
	k, ok := s.tc2k(a.FragmentTimecode)
	if !ok {
		s.errAcks = append(s.errAcks, ackRec{EventType: "UNKNOWN-TIMECODE", FragmentTimecode: a.FragmentTimecode, FragmentNumber: a.FragmentNumber})
		return
	}
	if old, ok := s.numbers[k]; ok && old != n {
		s.errAcks = append(s.errAcks, ackRec{EventType: "NUMBER-CHANGED " + strconv.FormatUint(old, 10), FragmentTimecode: a.FragmentTimecode, FragmentNumber: a.FragmentNumber})
	}
	s.numbers[k] = n
	s.events[k] = append(s.events[k], a.EventType)
	if a.EventType == "PERSISTED" {
		s.persisted++
	}
}

func (s *session) persistedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persisted
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// end waits for both goroutines of the session.
func (s *session) end(t *testing.T) {
	t.Helper()
	for _, c := range []chan struct{}{s.respEnded, s.sendDone} {
		select {
		case <-c:
		case <-time.After(20 * time.Second):
			t.Fatal("PutMedia client did not end within 20 s")
		}
	}
}

// ---- checking the data directory ----

type history struct {
	clip     *clipData
	t0       int64
	sessions []*session
	tcs      map[int64]int // cluster timecode -> k
}

func newHistory(clip *clipData) *history {
	h := &history{clip: clip, t0: time.Now().UnixMilli(), tcs: map[int64]int{}}
	// Every timecode the test can send maps back to its fragment index.
	for k := 0; k < 100000; k++ {
		h.tcs[clip.tc(k, h.t0)] = k
	}
	return h
}

func (h *history) tc2k(tc int64) (int, bool) {
	k, ok := h.tcs[tc]
	return k, ok
}

// checkDataDir opens the stopped server's index and payloads and checks
// every fragment of the stream against what was sent and acked. It returns
// the fragment numbers in ordinal order.
func (h *history) checkDataDir(t *testing.T, dir, stream string) []uint64 {
	t.Helper()
	idx, err := sqlindex.Open(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	payloads := fragments.DiskPayloads{Dir: filepath.Join(dir, "payload")}
	st, err := idx.Stream(stream, "")
	if err != nil {
		t.Fatal(err)
	}
	var all []fragments.Fragment
	q := fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByServer, To: 1<<63 - 1, AfterTS: -1, Limit: 1000}
	for {
		page, err := idx.Fragments(q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < q.Limit {
			break
		}
		q.AfterTS, q.AfterOrdinal = page[len(page)-1].ServerNS, page[len(page)-1].Ordinal
	}

	stored := map[int]fragments.Fragment{} // k -> fragment
	var nums []uint64
	prevK := -1
	for i, f := range all {
		if f.Ordinal != int64(i+1) {
			t.Fatalf("fragment %d has ordinal %d: ordinals not dense", i, f.Ordinal)
		}
		if i > 0 && f.Number <= all[i-1].Number {
			t.Fatalf("ordinal %d: number %d not after %d", f.Ordinal, f.Number, all[i-1].Number)
		}
		k, ok := h.tc2k(f.Timecode)
		if !ok {
			t.Fatalf("ordinal %d: timecode %d was never sent", f.Ordinal, f.Timecode)
		}
		if k <= prevK {
			t.Fatalf("ordinal %d holds fragment %d after fragment %d", f.Ordinal, k, prevK)
		}
		prevK = k
		stored[k] = f
		nums = append(nums, f.Number)
		h.checkFragment(t, idx, payloads, &f, k)
	}

	for si, s := range h.sessions {
		s.mu.Lock()
		// The stored fragments of this connection are a prefix of what it sent.
		m := s.from
		for ; m < s.finalSent; m++ {
			if _, ok := stored[m]; !ok {
				break
			}
		}
		for k := range stored {
			if k >= s.from && k >= m && (si+1 == len(h.sessions) || k < h.sessions[si+1].from) {
				s.mu.Unlock()
				t.Fatalf("session %d (fragments %d..%d sent whole): fragment %d stored but %d is not (or was never sent whole)", si, s.from, s.finalSent-1, k, m)
			}
		}
		for k, ev := range s.events {
			n := s.numbers[k]
			f, ok := stored[k]
			if ok && f.Number != n {
				s.mu.Unlock()
				t.Fatalf("fragment %d: acked as number %d, stored as %d", k, n, f.Number)
			}
			if slices.Contains(ev, "PERSISTED") && !ok {
				s.mu.Unlock()
				t.Fatalf("session %d: fragment %d (number %d) was acked PERSISTED but is not in the index (acks %v)", si, k, n, ev)
			}
		}
		if len(s.errAcks) > 0 {
			s.mu.Unlock()
			t.Fatalf("session %d: unexpected acks %+v", si, s.errAcks)
		}
		t.Logf("session %d: sent %d whole, %d acked PERSISTED, %d stored", si, s.finalSent-s.from, s.persisted, m-s.from)
		s.mu.Unlock()
	}
	return nums
}

// checkFragment checks one stored fragment against fragment k as sent.
func (h *history) checkFragment(t *testing.T, idx *sqlindex.Index, payloads fragments.DiskPayloads, f *fragments.Fragment, k int) {
	t.Helper()
	want := h.clip.frag(k, h.t0)
	if f.Size != int64(len(want.payload)) {
		t.Fatalf("fragment %d: stored size %d, sent %d", k, f.Size, len(want.payload))
	}
	r, err := payloads.Open(f.StreamID, f.SegmentID)
	if err != nil {
		t.Fatalf("fragment %d: %v", k, err)
	}
	got := make([]byte, f.Size)
	_, err = r.ReadAt(got, f.Offset)
	r.Close()
	if err != nil {
		t.Fatalf("fragment %d: reading %d bytes at %d of segment %d: %v", k, f.Size, f.Offset, f.SegmentID, err)
	}
	if !bytes.Equal(got, want.payload) {
		t.Fatalf("fragment %d: stored payload differs from the Cluster sent", k)
	}
	meta, err := idx.Meta(f.StreamID, f.Ordinal)
	if err != nil {
		t.Fatalf("fragment %d: meta: %v", k, err)
	}
	if len(meta.Samples) != len(want.frames) {
		t.Fatalf("fragment %d: %d samples, sent %d frames", k, len(meta.Samples), len(want.frames))
	}
	for i, s := range meta.Samples {
		if s.Size != int64(len(want.frames[i])) || s.Offset < 0 || s.Offset+s.Size > f.Size {
			t.Fatalf("fragment %d sample %d: offset %d size %d, frame is %d bytes of a %d-byte payload", k, i, s.Offset, s.Size, len(want.frames[i]), f.Size)
		}
		if !bytes.Equal(got[s.Offset:s.Offset+s.Size], want.frames[i]) {
			t.Fatalf("fragment %d sample %d: bytes differ from the source frame", k, i)
		}
	}
	hdr, err := idx.Header(f.HeaderID)
	if err != nil {
		t.Fatalf("fragment %d: header %d: %v", k, f.HeaderID, err)
	}
	rd := mkv.NewReader(io.MultiReader(bytes.NewReader(hdr.Raw), bytes.NewReader(got)))
	var kinds []mkv.Kind
	blocks := 0
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("fragment %d: stored cluster does not parse: %v", k, err)
		}
		switch ev.Kind {
		case mkv.KindEBMLHeader, mkv.KindSegment, mkv.KindTracks:
			continue
		case mkv.KindTimecode:
			if ev.Timecode != want.tc {
				t.Fatalf("fragment %d: stored Timecode %d, sent %d", k, ev.Timecode, want.tc)
			}
		case mkv.KindBlock:
			blocks++
			continue
		}
		kinds = append(kinds, ev.Kind)
	}
	if wantKinds := []mkv.Kind{mkv.KindClusterStart, mkv.KindTimecode, mkv.KindClusterEnd}; !slices.Equal(kinds, wantKinds) || blocks != len(h.clip.clusters[k%len(h.clip.clusters)].blocks) {
		t.Fatalf("fragment %d: stored cluster reads as %v with %d blocks", k, kinds, blocks)
	}
}

// ---- the tests ----

func crashSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KVSGATE_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with KVSGATE_CRASH_SEED=%d)", seed, seed)
	return seed
}

// TestCrashKill9 kills kvsgate with SIGKILL during PutMedia, several times
// on one data directory, and checks what survives.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rng := rand.New(rand.NewPCG(crashSeed(t), 1))
	clip := loadClip(t)
	h := newHistory(clip)
	dir := t.TempDir()
	const stream = "crash"

	srv := startServer(t, dir)
	apiCall(t, srv.url, "createStream", map[string]any{"StreamName": stream, "DataRetentionInHours": 24}, nil)
	next := 0
	var listed []uint64
	for iter := 0; iter < 6; iter++ {
		ctx, cancel := context.WithCancel(context.Background())
		var s *session
		if iter%2 == 0 {
			// Free running: kill after n PERSISTED acks and a random delay,
			// landing anywhere: mid-body, mid-fsync, mid-commit, mid-ack.
			n := 2 + rng.IntN(25)
			delay := time.Duration(rng.IntN(20000)) * time.Microsecond
			t.Logf("iteration %d: kill after %d PERSISTED acks + %s", iter, n, delay)
			s = startSession(ctx, t, srv.url, stream, clip, h.t0, next, sendPlan{}, h.tc2k)
			h.sessions = append(h.sessions, s)
			waitFor(t, fmt.Sprintf("%d PERSISTED acks", n), 60*time.Second, func() bool { return s.persistedCount() >= n })
			time.Sleep(delay)
		} else {
			// Kill with a fragment cut at a random byte, the ones before it
			// all acked.
			whole := 1 + rng.IntN(20)
			stopK := next + whole
			f := clip.frag(stopK, h.t0)
			cut := 1 + rng.IntN(len(f.payload)+len(f.tail)-1)
			t.Logf("iteration %d: kill with fragment %d cut after %d of %d bytes", iter, stopK, cut, len(f.payload)+len(f.tail))
			s = startSession(ctx, t, srv.url, stream, clip, h.t0, next, sendPlan{stopK: stopK, cut: cut}, h.tc2k)
			h.sessions = append(h.sessions, s)
			waitFor(t, fmt.Sprintf("%d PERSISTED acks", whole), 60*time.Second, func() bool { return s.persistedCount() >= whole })
			time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
		}
		srv.kill9(t)
		cancel()
		s.end(t)
		s.mu.Lock()
		next = s.finalSent + 1 // skip the one that may be partial
		s.mu.Unlock()

		nums := h.checkDataDir(t, dir, stream)
		if len(nums) < len(listed) || !slices.Equal(nums[:len(listed)], listed) {
			t.Fatalf("after kill %d the index lost or changed fragments listed before: had %d, now %d", iter, len(listed), len(nums))
		}
		srv = startServer(t, dir)
		if api := listFragments(t, srv.url, stream); !slices.Equal(api, nums) {
			t.Fatalf("after restart %d ListFragments lists %d fragments %v, the index holds %d", iter, len(api), api, len(nums))
		}
		listed = nums
	}

	// After the last restart: a clean connection of 5 fragments, then SIGTERM.
	s := startSession(context.Background(), t, srv.url, stream, clip, h.t0, next, sendPlan{closeAt: next + 5}, h.tc2k)
	h.sessions = append(h.sessions, s)
	s.end(t)
	if s.respErr != nil || s.persistedCount() != 5 {
		t.Fatalf("clean connection after restarts: %d PERSISTED acks of 5, err %v", s.persistedCount(), s.respErr)
	}
	api := listFragments(t, srv.url, stream)
	if len(api) != len(listed)+5 || !slices.Equal(api[:len(listed)], listed) {
		t.Fatalf("after the clean connection ListFragments lists %d fragments, want %d before + 5", len(api), len(listed))
	}
	for i := len(listed); i < len(api); i++ {
		if i > 0 && api[i] <= api[i-1] {
			t.Fatalf("fragment number %d after restart is not above %d", api[i], api[i-1])
		}
	}
	stopServer(t, srv)
	if nums := h.checkDataDir(t, dir, stream); !slices.Equal(nums, api) {
		t.Fatalf("index after SIGTERM holds %d fragments, ListFragments listed %d", len(nums), len(api))
	}
}

// stopServer sends SIGTERM and checks that kvsgate exits 0 in time.
func stopServer(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("kvsgate still running 20 s after SIGTERM\n%s", p.log())
	}
	if p.err != nil {
		t.Fatalf("kvsgate exited with %v after SIGTERM\n%s", p.err, p.log())
	}
}

// TestSIGTERMDuringIngest stops kvsgate with SIGTERM during a PutMedia that
// keeps sending: kvsgate must finish the fragment in flight, ack it
// PERSISTED, end the connection and exit 0; every PERSISTED fragment is
// listed after a restart, and nothing else.
func TestSIGTERMDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rng := rand.New(rand.NewPCG(crashSeed(t), 2))
	clip := loadClip(t)
	for iter := 0; iter < 3; iter++ {
		h := newHistory(clip)
		dir := t.TempDir()
		const stream = "term"
		srv := startServer(t, dir)
		apiCall(t, srv.url, "createStream", map[string]any{"StreamName": stream, "DataRetentionInHours": 24}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		s := startSession(ctx, t, srv.url, stream, clip, h.t0, 0, sendPlan{}, h.tc2k)
		h.sessions = append(h.sessions, s)
		n := 2 + rng.IntN(15)
		delay := time.Duration(rng.IntN(10000)) * time.Microsecond
		t.Logf("iteration %d: SIGTERM after %d PERSISTED acks + %s", iter, n, delay)
		waitFor(t, fmt.Sprintf("%d PERSISTED acks", n), 60*time.Second, func() bool { return s.persistedCount() >= n })
		time.Sleep(delay)
		stopServer(t, srv)
		// The ack stream must end by itself (the client keeps sending).
		select {
		case <-s.respEnded:
		case <-time.After(10 * time.Second):
			t.Fatal("the PutMedia response did not end after kvsgate exited")
		}
		cancel()
		s.end(t)

		s.mu.Lock()
		var persisted []uint64
		for k, ev := range s.events {
			// A fragment is acked PERSISTED, or it got no ack at all: one
			// that got BUFFERING was started before the drain and must be
			// completed.
			if !slices.Equal(ev, []string{"BUFFERING", "RECEIVED", "PERSISTED"}) {
				s.mu.Unlock()
				t.Fatalf("fragment %d got acks %v: want BUFFERING, RECEIVED, PERSISTED (or none)", k, ev)
			}
			persisted = append(persisted, s.numbers[k])
		}
		s.mu.Unlock()
		slices.Sort(persisted)
		nums := h.checkDataDir(t, dir, stream)
		if !slices.Equal(nums, persisted) {
			t.Fatalf("after SIGTERM the index holds %v, the fragments acked PERSISTED are %v", nums, persisted)
		}
		srv = startServer(t, dir)
		if api := listFragments(t, srv.url, stream); !slices.Equal(api, persisted) {
			t.Fatalf("after restart ListFragments lists %v, acked PERSISTED %v", api, persisted)
		}
		stopServer(t, srv)
	}
}
