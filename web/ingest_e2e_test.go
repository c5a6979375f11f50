package web

// End-to-end PutMedia ingest tests: real producer captures, live GStreamer
// and ffmpeg output, and bad input, sent over loopback HTTP with chunked
// bodies the way the KVS C producer sends them, then checked against the
// index, the payload files and ListFragments.
//
// Helpers here are prefixed "ie" to keep clear of other tests in package web.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// ieWait bounds every wait for the server (an ack, a write, the end of a
// response), so that a server that never answers fails the test instead of
// hanging it.
const ieWait = 30 * time.Second

// The producer captures and the start timestamp the C producer sent with them.
var (
	ieCaptureABS = filepath.Join(testRepo, "testdata/producer/producer-c-video-absolute-tags.mkv")
	ieCaptureREL = filepath.Join(testRepo, "testdata/producer/producer-c-av-relative.mkv")
)

const (
	ieProducerStart   = "1795289339.636"
	ieProducerStartNS = int64(1795289339636) * int64(time.Millisecond)
	ieEndOfFragment   = "AWS_KINESISVIDEO_END_OF_FRAGMENT"
)

// ---------------------------------------------------------------------------
// A PutMedia client that behaves like the KVS C producer.

// ieAck is one ack line as received.
type ieAck struct {
	Raw              string
	EventType        string
	FragmentTimecode int64
	FragmentNumber   string
	ErrorID          int64
	ErrorCode        string
	fields           map[string]any // decoded with UseNumber: json.Number or string
}

func (a ieAck) String() string { return strings.TrimSpace(a.Raw) }

func (a ieAck) number(t testing.TB) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(a.FragmentNumber, 10, 64)
	if err != nil {
		t.Fatalf("ack %s: FragmentNumber %q is not a number", a, a.FragmentNumber)
	}
	return n
}

// iePutHeaders are the PutMedia request headers a test sends.
type iePutHeaders struct {
	Stream        string
	TimecodeType  string // ABSOLUTE, RELATIVE, or anything to test validation; "-" leaves it out
	ProducerStart string // "" leaves it out
}

// iePut is one PutMedia request in flight: a chunked body written through a
// pipe and a stream of acks read as they arrive.
type iePut struct {
	t      testing.TB
	pw     *io.PipeWriter
	respCh chan ieResult
	res    *ieResult
	acks   chan ieAck
	// lastWrite is when the last body write completed.
	lastWrite time.Time
	// bodyReads counts reads of the request body by the transport.
	bodyReads *ieCountingReader
}

type ieResult struct {
	resp    *http.Response
	errBody []byte
	err     error
}

type ieCountingReader struct {
	r     io.ReadCloser
	reads chan struct{} // one token per Read call, buffered
}

func (c *ieCountingReader) Read(p []byte) (int, error) {
	select {
	case c.reads <- struct{}{}:
	default:
	}
	return c.r.Read(p)
}

func (c *ieCountingReader) Close() error { return c.r.Close() }

func (c *ieCountingReader) readCount() int { return len(c.reads) }

// ieClient is an HTTP client that waits for "100 Continue" before sending a
// body with Expect: 100-continue, as curl (the C producer's HTTP stack) does.
func ieClient(t testing.TB) *http.Client {
	tr := &http.Transport{ExpectContinueTimeout: ieWait, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// ieStartPut starts POST /putMedia. The request goes out at once; the
// server answers (200 and acks) once the first body bytes arrive.
func ieStartPut(t testing.TB, ts *testServer, h iePutHeaders) *iePut {
	t.Helper()
	pr, pw := io.Pipe()
	body := &ieCountingReader{r: pr, reads: make(chan struct{}, 1<<20)}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/putMedia", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked
	req.Host = "127.0.0.1" // the C producer sends the host without the port
	req.Header.Set("x-amzn-stream-name", h.Stream)
	if h.TimecodeType != "-" {
		req.Header.Set("x-amzn-fragment-timecode-type", h.TimecodeType)
	}
	if h.ProducerStart != "" {
		req.Header.Set("x-amzn-producer-start-timestamp", h.ProducerStart)
	}
	req.Header.Set("x-amzn-fragment-acknowledgment-required", "1")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connection", "keep-alive")
	req.Header.Set("User-Agent", "AWS-SDK-KVS-CPP-CLIENT/3.4.2 GCC/11 Linux/6 x86_64")
	req.Header.Set("Expect", "100-continue")

	p := &iePut{t: t, pw: pw, respCh: make(chan ieResult, 1), acks: make(chan ieAck, 1<<14), bodyReads: body}
	client := ieClient(t)
	go func() {
		defer close(p.acks)
		resp, err := client.Do(req)
		if err != nil {
			p.respCh <- ieResult{err: err}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, err := io.ReadAll(resp.Body)
			p.respCh <- ieResult{resp: resp, errBody: b, err: err}
			return
		}
		p.respCh <- ieResult{resp: resp}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				p.acks <- ieParseAck(line)
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		pw.CloseWithError(errors.New("test over"))
		cancel()
	})
	return p
}

func ieParseAck(line []byte) ieAck {
	a := ieAck{Raw: string(line)}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&a.fields); err != nil {
		a.EventType = "UNPARSABLE"
		return a
	}
	a.EventType, _ = a.fields["EventType"].(string)
	if n, ok := a.fields["FragmentTimecode"].(json.Number); ok {
		a.FragmentTimecode, _ = n.Int64()
	}
	a.FragmentNumber, _ = a.fields["FragmentNumber"].(string)
	if n, ok := a.fields["ErrorId"].(json.Number); ok {
		a.ErrorID, _ = n.Int64()
	}
	a.ErrorCode, _ = a.fields["ErrorCode"].(string)
	return a
}

// write sends bytes of the body (one chunk per call); it fails the test if
// the server does not take them in time.
func (p *iePut) write(b []byte) {
	p.t.Helper()
	if err := p.tryWrite(b); err != nil {
		p.t.Fatalf("writing %d body bytes: %v", len(b), err)
	}
}

func (p *iePut) tryWrite(b []byte) error {
	done := make(chan error, 1)
	go func() {
		_, err := p.pw.Write(b)
		done <- err
	}()
	select {
	case err := <-done:
		p.lastWrite = time.Now()
		return err
	case <-time.After(ieWait):
		p.pw.CloseWithError(errors.New("write timed out"))
		return fmt.Errorf("the server did not read the body for %s", ieWait)
	}
}

// writeSplit sends b in chunks of random sizes (some tiny), cut at random
// points.
func (p *iePut) writeSplit(b []byte, rng *rand.Rand) {
	p.t.Helper()
	for len(b) > 0 {
		n := 1 + rng.Intn(16)
		if rng.Intn(4) != 0 {
			n = 1 + rng.Intn(16<<10)
		}
		n = min(n, len(b))
		p.write(b[:n])
		b = b[n:]
	}
}

// writeAsync sends b then ends the body, without waiting: for input after
// which the server stops reading.
func (p *iePut) writeAsync(parts ...[]byte) {
	go func() {
		for _, b := range parts {
			if _, err := p.pw.Write(b); err != nil {
				return
			}
		}
		p.pw.Close()
	}()
}

// closeBody ends the request body.
func (p *iePut) closeBody() { p.pw.Close() }

// response waits for the response headers.
func (p *iePut) response() *ieResult {
	p.t.Helper()
	if p.res != nil {
		return p.res
	}
	select {
	case r := <-p.respCh:
		p.res = &r
		return p.res
	case <-time.After(ieWait):
		p.t.Fatalf("no PutMedia response within %s", ieWait)
		return nil
	}
}

// requireOK fails unless the response is 200.
func (p *iePut) requireOK() {
	p.t.Helper()
	r := p.response()
	if r.err != nil {
		p.t.Fatalf("PutMedia: %v", r.err)
	}
	if r.resp.StatusCode != http.StatusOK {
		p.t.Fatalf("PutMedia: %s %s", r.resp.Status, r.errBody)
	}
}

// next returns the next ack; ok is false when the response ended.
func (p *iePut) next() (a ieAck, ok bool) {
	p.t.Helper()
	select {
	case a, ok = <-p.acks:
		return a, ok
	case <-time.After(ieWait):
		p.t.Fatalf("no ack and no end of the response within %s", ieWait)
		return a, false
	}
}

// until reads acks up to and including the first one for which stop is
// true. It fails if the response ends first.
func (p *iePut) until(what string, stop func(ieAck) bool) []ieAck {
	p.t.Helper()
	var got []ieAck
	for {
		a, ok := p.next()
		if !ok {
			p.t.Fatalf("response ended before %s; acks: %v", what, got)
		}
		got = append(got, a)
		if stop(a) {
			return got
		}
	}
}

// untilPersisted reads acks up to the n-th PERSISTED one; an ERROR fails.
func (p *iePut) untilPersisted(n int) []ieAck {
	p.t.Helper()
	seen := 0
	return p.until(fmt.Sprintf("%d PERSISTED acks", n), func(a ieAck) bool {
		if a.EventType == fragments.AckError {
			p.t.Fatalf("unexpected error ack %s", a)
		}
		if a.EventType == fragments.AckPersisted {
			seen++
		}
		return seen == n
	})
}

// rest reads the acks left until the response ends.
func (p *iePut) rest() []ieAck {
	p.t.Helper()
	var got []ieAck
	for {
		a, ok := p.next()
		if !ok {
			return got
		}
		got = append(got, a)
	}
}

// ieWithoutIdle drops IDLE acks: a slow machine may send one between
// fragments; they are tested on their own.
func ieWithoutIdle(acks []ieAck) []ieAck {
	return slices.DeleteFunc(slices.Clone(acks), func(a ieAck) bool { return a.EventType == fragments.AckIdle })
}

// ieCheckAckJSON checks the JSON types of an ack's fields, as producers
// parse them.
func ieCheckAckJSON(t testing.TB, a ieAck) {
	t.Helper()
	if !strings.HasSuffix(a.Raw, "\n") {
		t.Errorf("ack %q does not end with a newline", a.Raw)
	}
	for k, v := range a.fields {
		var ok bool
		switch k {
		case "EventType", "FragmentNumber", "ErrorCode":
			_, ok = v.(string)
		case "FragmentTimecode", "ErrorId":
			_, ok = v.(json.Number)
		}
		if !ok {
			t.Errorf("ack %s: field %s has the wrong JSON type (%T) or is unknown", a, k, v)
		}
	}
	switch a.EventType {
	case fragments.AckBuffering, fragments.AckReceived, fragments.AckPersisted:
		if _, ok := a.fields["FragmentTimecode"]; !ok || a.FragmentNumber == "" {
			t.Errorf("ack %s lacks FragmentTimecode or FragmentNumber", a)
		}
	case fragments.AckError:
		if _, ok := a.fields["ErrorId"].(json.Number); !ok {
			t.Errorf("error ack %s lacks a numeric ErrorId", a)
		}
		if a.ErrorCode != fragments.ErrorCode(int(a.ErrorID)) || a.ErrorCode == "" {
			t.Errorf("error ack %s: ErrorCode %q, want %q", a, a.ErrorCode, fragments.ErrorCode(int(a.ErrorID)))
		}
	case fragments.AckIdle:
	default:
		t.Errorf("ack %s: unknown EventType", a)
	}
}

// ---------------------------------------------------------------------------
// Control plane and archive over HTTP.

// iePost calls one AWS JSON operation and returns the status, the
// x-amzn-ErrorType header and the body.
func iePost(t testing.TB, ts *testServer, path string, in any) (int, string, []byte) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), ieWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := ieClient(t).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), body
}

// ieCreateStream creates a stream and returns its ARN.
func ieCreateStream(t testing.TB, ts *testServer, name string, retentionHours int) string {
	t.Helper()
	status, typ, body := iePost(t, ts, "/createStream", map[string]any{
		"DeviceName": "test-device", "StreamName": name, "MediaType": "video/h264", "DataRetentionInHours": retentionHours,
	})
	if status != http.StatusOK {
		t.Fatalf("createStream %s: %d %s %s", name, status, typ, body)
	}
	var out struct{ StreamARN string }
	if err := json.Unmarshal(body, &out); err != nil || out.StreamARN == "" {
		t.Fatalf("createStream: %s (%v)", body, err)
	}
	return out.StreamARN
}

// ieListedFragment is a ListFragments entry with its timestamps as sent.
type ieListedFragment struct {
	FragmentNumber               string
	FragmentSizeInBytes          int64
	ProducerTimestamp            json.Number
	ServerTimestamp              json.Number
	FragmentLengthInMilliseconds int64
}

// ieListFragments calls POST /listFragments and follows NextToken.
func ieListFragments(t testing.TB, ts *testServer, stream string) []ieListedFragment {
	t.Helper()
	var all []ieListedFragment
	in := map[string]any{"StreamName": stream, "MaxResults": 4}
	for range 1000 {
		status, typ, body := iePost(t, ts, "/listFragments", in)
		if status != http.StatusOK {
			t.Fatalf("listFragments %s: %d %s %s", stream, status, typ, body)
		}
		var out struct {
			Fragments []ieListedFragment
			NextToken *string
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("listFragments: %s: %v", body, err)
		}
		all = append(all, out.Fragments...)
		if out.NextToken == nil {
			return all
		}
		in["NextToken"] = *out.NextToken
	}
	t.Fatal("listFragments never ended")
	return nil
}

// ieEpoch formats unix ns as the API's epoch seconds with milliseconds.
func ieEpoch(ns int64) string {
	return fmt.Sprintf("%d.%03d", ns/1e9, ns%1e9/1e6)
}

func ieStream(t testing.TB, ts *testServer, name string) *fragments.Stream {
	t.Helper()
	st, err := ts.Store.Stream(name, "")
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st
}

// ieIndexed returns every fragment of a stream in the index, in ingest order.
func ieIndexed(t testing.TB, ts *testServer, streamID int64) []fragments.Fragment {
	t.Helper()
	frags, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: streamID, To: math.MaxInt64, AfterTS: -1, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return frags
}

// iePayloadDir is where DiskPayloads keeps a stream's segments.
func iePayloadDir(ts *testServer, streamID int64) string {
	return filepath.Join(ts.Dir, "payload", strconv.FormatInt(streamID, 10))
}

// iePayloadBytes sums the sizes of a stream's payload files.
func iePayloadBytes(t testing.TB, ts *testServer, streamID int64) int64 {
	t.Helper()
	entries, err := os.ReadDir(iePayloadDir(ts, streamID))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// ieReadPayload reads a fragment's stored bytes.
func ieReadPayload(t testing.TB, ts *testServer, f *fragments.Fragment) []byte {
	t.Helper()
	r, err := ts.Store.Payloads.Open(f.StreamID, f.SegmentID)
	if err != nil {
		t.Fatalf("open segment %d: %v", f.SegmentID, err)
	}
	defer r.Close()
	b := make([]byte, f.Size)
	if _, err := r.ReadAt(b, f.Offset); err != nil {
		t.Fatalf("read fragment %d payload: %v", f.Number, err)
	}
	return b
}

// ieSnap is what a stream holds: the fragment numbers in the index and the
// bytes in its payload files.
type ieSnap struct {
	numbers []uint64
	sizes   int64
	onDisk  int64
}

func ieSnapshot(t testing.TB, ts *testServer, streamID int64) ieSnap {
	t.Helper()
	var s ieSnap
	for _, f := range ieIndexed(t, ts, streamID) {
		s.numbers = append(s.numbers, f.Number)
		s.sizes += f.Size
	}
	s.onDisk = iePayloadBytes(t, ts, streamID)
	return s
}

// ---------------------------------------------------------------------------
// Parsing the input the way a fragment store should see it.

// ieFrame is one frame of the input.
type ieFrame struct {
	track    uint64
	trackIdx int
	key      bool
	tc       int64 // cluster Timecode + block timecode, timecode units
	data     []byte
}

// ieFragment is one cluster of the input and what goes with it.
type ieFragment struct {
	start, end int64 // the Cluster's bytes in the input
	finishAt   int64 // input bytes the server needs before it can end the fragment
	endsAtEOF  bool  // only the end of the body ends it
	timecode   int64
	frames     []ieFrame
	tags       []mkv.SimpleTag
}

// ieInput is a Matroska stream split into what the server should store.
type ieInput struct {
	data   []byte
	scale  int64
	tracks []mkv.Track
	frags  []ieFragment
}

// ieParse reads a PutMedia body with the mkv reader: clusters, their
// frames, and the metadata tags each fragment gets (tags seen while a
// fragment is open belong to it; tags before a cluster to the next one).
func ieParse(t testing.TB, data []byte) *ieInput {
	t.Helper()
	in := &ieInput{data: data}
	r := mkv.NewReader(bytes.NewReader(data))
	var pending []mkv.SimpleTag
	open := -1
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("input is not valid Matroska: %v", err)
		}
		switch ev.Kind {
		case mkv.KindEBMLHeader:
			if open >= 0 {
				in.frags[open].finishAt = ev.Offset + int64(len(ev.Raw))
				open = -1
			}
		case mkv.KindTracks:
			in.scale = ev.Header.TimecodeScale
			in.tracks = slices.Clone(ev.Header.Tracks)
		case mkv.KindClusterStart:
			if open >= 0 {
				in.frags[open].finishAt = ev.Offset + int64(len(ev.Raw))
			}
			in.frags = append(in.frags, ieFragment{start: ev.Offset, tags: pending})
			pending = nil
			open = len(in.frags) - 1
		case mkv.KindTimecode:
			in.frags[len(in.frags)-1].timecode = ev.Timecode
		case mkv.KindBlock:
			f := &in.frags[len(in.frags)-1]
			b := ev.Block
			idx := slices.IndexFunc(in.tracks, func(tr mkv.Track) bool { return tr.Number == b.Track })
			for _, fr := range b.Frames {
				f.frames = append(f.frames, ieFrame{track: b.Track, trackIdx: idx, key: b.Key, tc: f.timecode + int64(b.Timecode), data: bytes.Clone(ev.Raw[fr.Off : fr.Off+fr.Len])})
			}
		case mkv.KindClusterEnd:
			in.frags[len(in.frags)-1].end = ev.Offset
		case mkv.KindTags:
			end := false
			for _, tag := range ev.Tags {
				switch {
				case tag.Name == ieEndOfFragment:
					end = true
				case open >= 0:
					in.frags[open].tags = append(in.frags[open].tags, tag)
				default:
					pending = append(pending, tag)
				}
			}
			if end && open >= 0 {
				in.frags[open].finishAt = ev.Offset + int64(len(ev.Raw))
				open = -1
			}
		}
	}
	if open >= 0 {
		in.frags[open].finishAt = int64(len(data))
		in.frags[open].endsAtEOF = true
	}
	return in
}

// minTC is the earliest presentation time of a fragment, timecode units.
func (f *ieFragment) minTC() int64 {
	m := int64(math.MaxInt64)
	for _, fr := range f.frames {
		m = min(m, fr.tc)
	}
	return m
}

func (f *ieFragment) maxTC() int64 {
	m := int64(math.MinInt64)
	for _, fr := range f.frames {
		m = max(m, fr.tc)
	}
	return m
}

// trackSpan is the time from a track's first to its last frame, timecode units.
func (f *ieFragment) trackSpan(track uint64) int64 {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, fr := range f.frames {
		if fr.track == track {
			lo, hi = min(lo, fr.tc), max(hi, fr.tc)
		}
	}
	return hi - lo
}

func (f *ieFragment) count(track uint64) int {
	n := 0
	for _, fr := range f.frames {
		if fr.track == track {
			n++
		}
	}
	return n
}

// ieCheck says how to check a stored stream against its input.
type ieCheck struct {
	stream   string
	relative bool
	startNS  int64     // producer start (RELATIVE)
	t0, t1   time.Time // the ingest happened between these
}

// ieVerify checks that acks, index, sample tables, payloads and
// ListFragments all match the input, fragment by fragment. It returns the
// stored fragments.
// ieCheckAckOrder checks the acks of n fragments: each fragment gets
// BUFFERING, RECEIVED and (if persisted) PERSISTED, in that order and with
// one FragmentNumber; fragments follow each other (a fragment's BUFFERING
// comes after the previous one's RECEIVED); PERSISTED acks come in fragment
// order; numbers increase. PERSISTED of fragment i may come after the
// BUFFERING or RECEIVED of later fragments: the server persists one
// fragment while it receives the next. It returns the fragment numbers.
func ieCheckAckOrder(t testing.TB, acks []ieAck, n int, persisted bool) []uint64 {
	t.Helper()
	per := 3
	if !persisted {
		per = 2
	}
	if len(acks) != per*n {
		t.Fatalf("%d acks for %d fragments, want %d each: %v", len(acks), n, per, acks)
	}
	var numbers []uint64
	seen := map[uint64][]string{}
	lastPersisted := -1
	for _, a := range acks {
		ieCheckAckJSON(t, a)
		num := a.number(t)
		if a.EventType == fragments.AckBuffering {
			if k := len(numbers); k > 0 && len(seen[numbers[k-1]]) < 2 {
				t.Fatalf("fragment %d began before fragment %d was RECEIVED: %v", k, k-1, acks)
			}
			if k := len(numbers); k > 0 && num <= numbers[k-1] {
				t.Errorf("fragment %d: number %d not after %d", k, num, numbers[k-1])
			}
			numbers = append(numbers, num)
		}
		seen[num] = append(seen[num], a.EventType)
		if a.EventType == fragments.AckPersisted {
			i := slices.Index(numbers, num)
			if i != lastPersisted+1 {
				t.Fatalf("PERSISTED for fragment %d after fragment %d's: %v", i, lastPersisted, acks)
			}
			lastPersisted = i
		}
	}
	want := []string{fragments.AckBuffering, fragments.AckReceived, fragments.AckPersisted}[:per]
	for i, num := range numbers {
		if !slices.Equal(seen[num], want) {
			t.Fatalf("fragment %d (%d): acks %v, want %v", i, num, seen[num], want)
		}
	}
	if len(numbers) != n {
		t.Fatalf("%d fragments acked, want %d", len(numbers), n)
	}
	return numbers
}

func ieVerify(t testing.TB, ts *testServer, in *ieInput, acks []ieAck, c ieCheck) []fragments.Fragment {
	t.Helper()
	acks = ieWithoutIdle(acks)
	numbers := ieCheckAckOrder(t, acks, len(in.frags), true)
	for i, f := range in.frags {
		for _, a := range acks {
			if a.number(t) == numbers[i] && a.FragmentTimecode != f.timecode {
				t.Errorf("fragment %d: %s ack FragmentTimecode %d, want the cluster Timecode %d", i, a.EventType, a.FragmentTimecode, f.timecode)
			}
		}
	}

	st := ieStream(t, ts, c.stream)
	frags := ieIndexed(t, ts, st.ID)
	if len(frags) != len(in.frags) {
		t.Fatalf("%d fragments indexed, want %d", len(frags), len(in.frags))
	}
	var prevServer int64
	for i := range frags {
		fr, f := &frags[i], &in.frags[i]
		if fr.Number != numbers[i] {
			t.Errorf("fragment %d: indexed number %d, acked %d", i, fr.Number, numbers[i])
		}
		if fr.Ordinal != int64(i+1) {
			t.Errorf("fragment %d: ordinal %d", i, fr.Ordinal)
		}
		if fr.Timecode != f.timecode {
			t.Errorf("fragment %d: timecode %d, want %d", i, fr.Timecode, f.timecode)
		}
		// The payload is the Cluster exactly as sent.
		if fr.Size != f.end-f.start {
			t.Errorf("fragment %d: %d bytes, the cluster has %d", i, fr.Size, f.end-f.start)
		}
		payload := ieReadPayload(t, ts, fr)
		if !bytes.Equal(payload, in.data[f.start:f.start+min(fr.Size, f.end-f.start)]) {
			t.Errorf("fragment %d: stored payload differs from the cluster bytes sent", i)
		}
		// Producer timestamp: the earliest presentation time.
		wantProducer := f.minTC() * in.scale
		if c.relative {
			wantProducer += c.startNS
		}
		if fr.ProducerNS != wantProducer {
			t.Errorf("fragment %d: producer timestamp %d, want %d", i, fr.ProducerNS, wantProducer)
		}
		if fr.ServerNS <= prevServer || fr.ServerNS < c.t0.UnixNano() || fr.ServerNS > c.t1.UnixNano() {
			t.Errorf("fragment %d: server timestamp %s not increasing within the ingest (%s..%s)", i, time.Unix(0, fr.ServerNS), c.t0, c.t1)
		}
		prevServer = fr.ServerNS
		// Duration: the first track's, from its first frame shown to the
		// end of its last one, which lasts at most 100 ms in these inputs.
		span := f.trackSpan(in.tracks[0].Number) * in.scale
		if fr.DurationNS <= span || fr.DurationNS > span+int64(100*time.Millisecond) {
			t.Errorf("fragment %d: duration %s, frames span %s", i, time.Duration(fr.DurationNS), time.Duration(span))
		}

		h, err := ts.Store.Index.Header(fr.HeaderID)
		if err != nil {
			t.Fatalf("fragment %d: header: %v", i, err)
		}
		if h.TimecodeScale != in.scale || len(h.Tracks) != len(in.tracks) {
			t.Fatalf("fragment %d: header scale %d tracks %d, want %d, %d", i, h.TimecodeScale, len(h.Tracks), in.scale, len(in.tracks))
		}
		for k := range h.Tracks {
			if h.Tracks[k].Number != in.tracks[k].Number || h.Tracks[k].CodecID != in.tracks[k].CodecID || !bytes.Equal(h.Tracks[k].CodecPrivate, in.tracks[k].CodecPrivate) {
				t.Errorf("fragment %d: stored track %d %+v, sent %+v", i, k, h.Tracks[k], in.tracks[k])
			}
		}

		m, err := ts.Store.Index.Meta(st.ID, fr.Ordinal)
		if err != nil {
			t.Fatalf("fragment %d: meta: %v", i, err)
		}
		ieVerifySamples(t, i, fr, f, m, in, payload)
		if !ieTagsEqual(m.Tags, f.tags) {
			t.Errorf("fragment %d: metadata %v, want %v", i, m.Tags, f.tags)
		}
	}

	// ListFragments over HTTP lists the same fragments.
	listed := ieListFragments(t, ts, c.stream)
	if len(listed) != len(frags) {
		t.Fatalf("ListFragments returned %d fragments, want %d", len(listed), len(frags))
	}
	for i, l := range listed {
		fr := &frags[i]
		want := ieListedFragment{
			FragmentNumber: strconv.FormatUint(fr.Number, 10), FragmentSizeInBytes: fr.Size,
			ProducerTimestamp: json.Number(ieEpoch(fr.ProducerNS)), ServerTimestamp: json.Number(ieEpoch(fr.ServerNS)),
			FragmentLengthInMilliseconds: fr.DurationNS / 1e6,
		}
		if l != want {
			t.Errorf("ListFragments entry %d: %+v, want %+v", i, l, want)
		}
	}
	return frags
}

// ieVerifySamples checks a fragment's sample table against its frames.
func ieVerifySamples(t testing.TB, i int, fr *fragments.Fragment, f *ieFragment, m *fragments.Meta, in *ieInput, payload []byte) {
	t.Helper()
	if len(m.Samples) != len(f.frames) {
		t.Errorf("fragment %d: %d samples, %d frames sent", i, len(m.Samples), len(f.frames))
		return
	}
	var sum int64
	firstVideo := true
	lastDTS := map[uint8]int64{}
	for k, s := range m.Samples {
		fm := f.frames[k]
		sum += s.Size
		if int(s.Track) != fm.trackIdx || s.Key != fm.key || s.Size != int64(len(fm.data)) {
			t.Errorf("fragment %d sample %d: track %d key %v size %d, sent track %d key %v size %d", i, k, s.Track, s.Key, s.Size, fm.trackIdx, fm.key, len(fm.data))
			continue
		}
		if in.tracks[fm.trackIdx].Type == 1 && firstVideo {
			firstVideo = false
			if !s.Key {
				t.Errorf("fragment %d: first video frame (sample %d) is not a key frame", i, k)
			}
		}
		if s.Offset < 0 || s.Offset+s.Size > fr.Size || !bytes.Equal(payload[s.Offset:s.Offset+s.Size], fm.data) {
			t.Errorf("fragment %d sample %d: bytes at offset %d (%d bytes) are not the frame sent", i, k, s.Offset, s.Size)
		}
		if want := (fm.tc - f.minTC()) * in.scale; s.PTS != want {
			t.Errorf("fragment %d sample %d: pts %d, want %d", i, k, s.PTS, want)
		}
		if s.DTS > s.PTS {
			t.Errorf("fragment %d sample %d: dts %d after pts %d", i, k, s.DTS, s.PTS)
		}
		if d, ok := lastDTS[s.Track]; ok && s.DTS < d {
			t.Errorf("fragment %d sample %d: dts %d goes back from %d", i, k, s.DTS, d)
		}
		lastDTS[s.Track] = s.DTS
		if s.Dur <= 0 || s.Dur > int64(time.Second) {
			t.Errorf("fragment %d sample %d: duration %d", i, k, s.Dur)
		}
	}
	if sum >= fr.Size {
		t.Errorf("fragment %d: samples sum to %d bytes, the fragment has %d", i, sum, fr.Size)
	}
}

func ieTagsEqual(a, b []mkv.SimpleTag) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return slices.Equal(a, b)
}

// ---------------------------------------------------------------------------
// Building test streams with the mkv writer.

var (
	ieVideoTrack = mkv.Track{Number: 1, UID: 1, Type: 1, Name: "kvs_video_track", CodecID: "V_MPEG4/ISO/AVC",
		CodecPrivate: []byte{1, 0x64, 0, 0x1E, 0xFF, 0xE1, 0, 4, 0x67, 0x64, 0, 0x1E, 1, 0, 2, 0x68, 0xEB}, Width: 640, Height: 480}
	ieAudioTrack = mkv.Track{Number: 2, UID: 2, Type: 2, Name: "kvs_audio_track", CodecID: "A_AAC",
		CodecPrivate: []byte{0x11, 0x90}, SamplingFreq: 48000, Channels: 2}
)

// ieBaseTC is a cluster timecode in epoch milliseconds, as ABSOLUTE
// producers send them.
const ieBaseTC = 1795289339636

// ieHeader is a stream header: EBML header, Segment of unknown size, Info
// (millisecond timecodes), Tracks.
func ieHeader(tracks ...mkv.Track) []byte {
	var b []byte
	b = append(b, mkv.EBMLHeader()...)
	b = mkv.AppendUnknownSizeHeader(b, mkv.IDSegment)
	b = append(b, mkv.Info(1_000_000)...)
	return append(b, mkv.Tracks(tracks)...)
}

// ieFrameData is a recognizable frame payload.
func ieFrameData(track uint64, tc int64, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(int64(i) + tc*7 + int64(track)*31)
	}
	return b
}

// ieVideo returns n SimpleBlocks of track 1 every step ms from reltc, the
// first a key frame.
func ieVideo(reltc, n, step, size int) []byte {
	var b []byte
	for i := range n {
		tc := reltc + i*step
		b = append(b, mkv.SimpleBlock(1, int16(tc), i == 0, ieFrameData(1, int64(tc), size))...)
	}
	return b
}

// ieAudio returns n SimpleBlocks of track 2 every step ms from reltc.
func ieAudio(reltc, n, step, size int) []byte {
	var b []byte
	for i := range n {
		tc := reltc + i*step
		b = append(b, mkv.SimpleBlock(2, int16(tc), true, ieFrameData(2, int64(tc), size))...)
	}
	return b
}

// ieCluster is an unknown-size Cluster with its Timecode and blocks.
func ieCluster(tc int64, blocks ...[]byte) []byte {
	b := mkv.ClusterStart(uint64(tc))
	for _, x := range blocks {
		b = append(b, x...)
	}
	return b
}

// ieEnd is the Tags element that ends a fragment.
func ieEnd() []byte { return mkv.Tags([]mkv.SimpleTag{{Name: ieEndOfFragment}}) }

// ieJoin concatenates byte slices.
func ieJoin(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// ieReadFile reads a producer capture.
func ieReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---------------------------------------------------------------------------
// Real producer captures.

// ieCaptureCase is a producer capture and what it must become.
type ieCaptureCase struct {
	name, path, timecodeType string
	frags                    int
}

var ieCaptures = []ieCaptureCase{
	{"absolute", ieCaptureABS, "ABSOLUTE", 6},
	{"relative", ieCaptureREL, "RELATIVE", 3},
}

// ieCheckCapture checks what is particular to each capture, on top of
// ieVerify: the timestamps the producer meant, the fragment lengths, the
// metadata and the frame counts.
func ieCheckCapture(t testing.TB, c ieCaptureCase, in *ieInput, frags []fragments.Fragment) {
	t.Helper()
	if len(frags) != c.frags {
		t.Fatalf("%d fragments, want %d", len(frags), c.frags)
	}
	for i, f := range frags {
		step := int64(i) * 1800 * int64(time.Millisecond)
		switch c.timecodeType {
		case "ABSOLUTE":
			// The cluster timecodes are epoch milliseconds 1800 ms apart.
			if want := ieBaseTC*int64(time.Millisecond) + step; f.ProducerNS != want {
				t.Errorf("fragment %d: producer timestamp %s, want %s", i, ieEpoch(f.ProducerNS), ieEpoch(want))
			}
			if want := int64(ieBaseTC + 1800*i); f.Timecode != want {
				t.Errorf("fragment %d: timecode %d, want %d", i, f.Timecode, want)
			}
		default:
			// The producer start header plus 0, 1.8 and 3.6 s.
			if want := ieProducerStartNS + step; f.ProducerNS != want {
				t.Errorf("fragment %d: producer timestamp %s, want %s", i, ieEpoch(f.ProducerNS), ieEpoch(want))
			}
			if want := int64(1800 * i); f.Timecode != want {
				t.Errorf("fragment %d: timecode %d, want %d", i, f.Timecode, want)
			}
		}
		// 25 fps video: the fragment lasts 40 ms per video frame.
		video := in.frags[i].count(1)
		if want := int64(video) * 40; f.LengthMS() < want-5 || f.LengthMS() > want+25 {
			t.Errorf("fragment %d: %d ms long, %d video frames", i, f.LengthMS(), video)
		}
		if i < len(frags)-1 && (f.LengthMS() < 1795 || f.LengthMS() > 1825) {
			t.Errorf("fragment %d: %d ms long, want about 1800", i, f.LengthMS())
		}
	}
	// Frames per track, as the C producer sent them.
	wantCounts := map[string][][2]int{
		"absolute": {{45, 0}, {45, 0}, {45, 0}, {45, 0}, {45, 0}, {15, 0}},
		"relative": {{45, 90}, {45, 90}, {27, 54}},
	}[c.name]
	for i, f := range in.frags {
		if got := [2]int{f.count(1), f.count(2)}; got != wantCounts[i] {
			t.Errorf("fragment %d: %v video/audio frames, want %v", i, got, wantCounts[i])
		}
	}
	if c.timecodeType == "ABSOLUTE" {
		// Nine TEST_KEY_n tags per fragment, numbered on across fragments.
		for i := range in.frags {
			var want []mkv.SimpleTag
			for n := 1; n <= 9; n++ {
				want = append(want, mkv.SimpleTag{Name: fmt.Sprintf("TEST_KEY_%d", n), Value: fmt.Sprintf("TEST_VALUE_%d", 45*i+n)})
			}
			if !slices.Equal(in.frags[i].tags, want) {
				t.Errorf("fragment %d: capture tags %v, want %v", i, in.frags[i].tags, want)
			}
		}
	}
}

// TestIngestCapturesChunked sends both C producer captures as chunked
// bodies cut at random points, and checks every ack, the index, the sample
// tables, the payload bytes and ListFragments.
func TestIngestCapturesChunked(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	for _, c := range ieCaptures {
		data := ieReadFile(t, c.path)
		in := ieParse(t, data)
		for _, seed := range []int64{1, 2, 3} {
			t.Run(fmt.Sprintf("%s/seed%d", c.name, seed), func(t *testing.T) {
				name := fmt.Sprintf("%s-seed%d", c.name, seed)
				ieCreateStream(t, ts, name, 24)
				t0 := time.Now()
				p := ieStartPut(t, ts, iePutHeaders{Stream: name, TimecodeType: c.timecodeType, ProducerStart: ieProducerStart})
				p.writeSplit(data, rand.New(rand.NewSource(seed)))
				p.closeBody()
				p.requireOK()
				acks := p.rest()
				t1 := time.Now()
				frags := ieVerify(t, ts, in, acks, ieCheck{stream: name, relative: c.timecodeType == "RELATIVE", startNS: ieProducerStartNS, t0: t0, t1: t1})
				ieCheckCapture(t, c, in, frags)
			})
		}
	}
}

// TestIngestAcksBeforeBodyEnds sends one fragment at a time and waits for
// its PERSISTED ack before sending more, as the C producer does: a server
// that held acks back until the body ended would deadlock here (and fail
// on the timeout).
func TestIngestAcksBeforeBodyEnds(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	for _, c := range ieCaptures {
		t.Run(c.name, func(t *testing.T) {
			data := ieReadFile(t, c.path)
			in := ieParse(t, data)
			ieCreateStream(t, ts, c.name, 24)
			t0 := time.Now()
			p := ieStartPut(t, ts, iePutHeaders{Stream: c.name, TimecodeType: c.timecodeType, ProducerStart: ieProducerStart})
			rng := rand.New(rand.NewSource(7))
			var acks []ieAck
			sent := int64(0)
			for i, f := range in.frags {
				if f.endsAtEOF {
					t.Fatalf("fragment %d only ends with the body: the capture cannot test this", i)
				}
				p.writeSplit(data[sent:f.finishAt], rng)
				sent = f.finishAt
				if i == 0 {
					p.requireOK()
				}
				got := p.untilPersisted(1)
				last := got[len(got)-1]
				if last.FragmentTimecode != f.timecode {
					t.Fatalf("fragment %d: PERSISTED for timecode %d, want %d", i, last.FragmentTimecode, f.timecode)
				}
				acks = append(acks, got...)
			}
			p.writeSplit(data[sent:], rng)
			p.closeBody()
			acks = append(acks, p.rest()...)
			ieVerify(t, ts, in, acks, ieCheck{stream: c.name, relative: c.timecodeType == "RELATIVE", startNS: ieProducerStartNS, t0: t0, t1: time.Now()})
		})
	}
}

// TestIngestNoRetention: a stream that keeps no data acks BUFFERING and
// RECEIVED, never PERSISTED, and stores nothing.
func TestIngestNoRetention(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	ieCreateStream(t, ts, "live-only", 0)
	data := ieReadFile(t, ieCaptureABS)
	in := ieParse(t, data)
	p := ieStartPut(t, ts, iePutHeaders{Stream: "live-only", TimecodeType: "ABSOLUTE", ProducerStart: ieProducerStart})
	p.writeSplit(data, rand.New(rand.NewSource(1)))
	p.closeBody()
	p.requireOK()
	acks := ieWithoutIdle(p.rest())
	if len(acks) != 2*len(in.frags) {
		t.Fatalf("%d acks for %d fragments, want BUFFERING and RECEIVED each: %v", len(acks), len(in.frags), acks)
	}
	for i, f := range in.frags {
		b, r := acks[2*i], acks[2*i+1]
		ieCheckAckJSON(t, b)
		ieCheckAckJSON(t, r)
		if b.EventType != fragments.AckBuffering || r.EventType != fragments.AckReceived || b.FragmentNumber != r.FragmentNumber ||
			b.FragmentTimecode != f.timecode || r.FragmentTimecode != f.timecode {
			t.Errorf("fragment %d: acks %s, %s", i, b, r)
		}
	}
	st := ieStream(t, ts, "live-only")
	if frags := ieIndexed(t, ts, st.ID); len(frags) != 0 {
		t.Errorf("%d fragments indexed for a stream without retention", len(frags))
	}
	if _, err := os.Stat(iePayloadDir(ts, st.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("payload directory of a stream without retention: %v", err)
	}
	status, typ, body := iePost(t, ts, "/listFragments", map[string]any{"StreamName": "live-only"})
	if status != http.StatusBadRequest || typ != "NoDataRetentionException" {
		t.Errorf("listFragments on a stream without retention: %d %s %s", status, typ, body)
	}
}

// ---------------------------------------------------------------------------
// Live GStreamer output and ffmpeg files.

// iePipeCommand runs a command and sends its stdout into a PutMedia body as
// it is produced. It returns the bytes sent.
func iePipeCommand(t *testing.T, p *iePut, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var sent []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := out.Read(buf)
		if n > 0 {
			sent = append(sent, buf[:n]...)
			p.write(bytes.Clone(buf[:n]))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s output: %v", name, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.Bytes())
	}
	return sent
}

// ieGstHas reports whether a GStreamer element is installed.
func ieGstHas(t *testing.T, element string) bool {
	inspect, err := exec.LookPath("gst-inspect-1.0")
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(t.Context(), ieWait)
	defer cancel()
	return exec.CommandContext(ctx, inspect, "--exists", element).Run() == nil
}

// TestIngestGStreamerLive pipes a live GStreamer pipeline (matroskamux,
// streamable: unknown sizes, timecodes from 0, NUL-padded strings) into
// PutMedia with RELATIVE timecodes, as a camera would.
func TestIngestGStreamerLive(t *testing.T) {
	gst := requireTool(t, "gst-launch-1.0")
	video := "videotestsrc is-live=true num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc key-int-max=30 tune=zerolatency ! h264parse ! mux."
	// With B-frames, matroskamux opens a cluster at a key frame's
	// presentation time while audio up to it is still to come: that audio
	// goes into the new cluster with negative relative timecodes.
	videoB := "videotestsrc is-live=true num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc key-int-max=30 bframes=2 ! h264parse ! mux."
	cases := []struct {
		name, pipeline string
		audio          bool
	}{
		{"video", video, false},
	}
	for _, enc := range []string{"avenc_aac", "voaacenc"} {
		if ieGstHas(t, enc) {
			cases = append(cases, struct {
				name, pipeline string
				audio          bool
			}{"audio+video", videoB + " audiotestsrc is-live=true num-buffers=130 ! " + enc + " ! aacparse ! mux.", true})
			break
		}
	}
	if len(cases) == 1 {
		t.Log("no AAC encoder element (avenc_aac, voaacenc): audio case not run")
	}
	ts := newTestServer(t, nil, fragments.Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := strings.ReplaceAll(c.name, "+", "-")
			ieCreateStream(t, ts, name, 24)
			t0 := time.Now()
			start := t0.UnixMilli() * int64(time.Millisecond)
			p := ieStartPut(t, ts, iePutHeaders{Stream: name, TimecodeType: "RELATIVE", ProducerStart: ieEpoch(start)})
			args := append([]string{"-q", "matroskamux", "name=mux", "streamable=true", "!", "fdsink", "fd=1"}, strings.Fields(c.pipeline)...)
			sent := iePipeCommand(t, p, gst, args...)
			p.closeBody()
			p.requireOK()
			acks := p.rest()
			in := ieParse(t, sent)
			if n := len(in.frags); n < 2 || n > 4 {
				t.Fatalf("GStreamer wrote %d clusters for 3 s of video with a key frame every second", n)
			}
			frags := ieVerify(t, ts, in, acks, ieCheck{stream: name, relative: true, startNS: start, t0: t0, t1: time.Now()})
			h, err := ts.Store.Index.Header(frags[0].HeaderID)
			if err != nil {
				t.Fatal(err)
			}
			if h.Tracks[0].CodecID != "V_MPEG4/ISO/AVC" {
				t.Errorf("codec id %q", h.Tracks[0].CodecID)
			}
			if !bytes.Contains(h.Raw, []byte("V_MPEG4/ISO/AVC\x00")) {
				t.Errorf("matroskamux did not pad the codec id with a NUL: this test no longer covers that")
			}
			negative := 0
			for i, f := range in.frags {
				if c.audio && (f.count(1) == 0 || f.count(2) == 0) {
					t.Errorf("fragment %d: %d video and %d audio frames", i, f.count(1), f.count(2))
				}
				for _, fr := range f.frames {
					if fr.tc < f.timecode {
						negative++
					}
				}
			}
			t.Logf("%d fragments, %d frames before their cluster timecode", len(frags), negative)
			if c.audio && negative == 0 {
				t.Errorf("no block with a negative relative timecode: the test no longer covers them")
			}
		})
	}
}

// ieElem is one EBML element of a file: where it is and how big.
type ieElem struct {
	id         uint32
	size       int64 // -1: unknown
	off, body  int64
	firstChild uint32
}

// ieElemAt decodes the element header at off.
func ieElemAt(t testing.TB, data []byte, off int64) ieElem {
	t.Helper()
	p := data[off:]
	vlen := func(b byte) int {
		for n := 1; n <= 8; n++ {
			if b&(0x80>>(n-1)) != 0 {
				return n
			}
		}
		t.Fatalf("bad vint at %d", off)
		return 0
	}
	n := vlen(p[0])
	var id uint32
	for i := range n {
		id = id<<8 | uint32(p[i])
	}
	m := vlen(p[n])
	v := uint64(p[n]) & (0xFF >> m)
	ones := v == 0xFF>>m
	for i := 1; i < m; i++ {
		v = v<<8 | uint64(p[n+i])
		ones = ones && p[n+i] == 0xFF
	}
	e := ieElem{id: id, size: int64(v), off: off, body: off + int64(n+m)}
	if ones {
		e.size = -1
	}
	return e
}

// ieSegmentChildren lists the top-level elements of a file's Segment.
func ieSegmentChildren(t testing.TB, data []byte) (seg ieElem, children []ieElem) {
	t.Helper()
	ebml := ieElemAt(t, data, 0)
	if ebml.id != mkv.IDEBML {
		t.Fatalf("file starts with 0x%X", ebml.id)
	}
	seg = ieElemAt(t, data, ebml.body+ebml.size)
	if seg.id != mkv.IDSegment {
		t.Fatalf("Segment expected, found 0x%X", seg.id)
	}
	end := int64(len(data))
	if seg.size >= 0 {
		end = seg.body + seg.size
	}
	for off := seg.body; off < end; {
		e := ieElemAt(t, data, off)
		if e.size < 0 {
			t.Fatalf("element 0x%X of unknown size", e.id)
		}
		if e.id == mkv.IDCluster && e.size > 0 {
			e.firstChild = ieElemAt(t, data, e.body).id
		}
		children = append(children, e)
		off = e.body + e.size
	}
	return seg, children
}

// TestIngestFFmpegFile posts an MKV file written by ffmpeg as-is: known
// sizes, SeekHead, Cues, CRC-32 elements, and H.264 with B-frames, so
// blocks are stored in decode order with presentation timecodes.
func TestIngestFFmpegFile(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	path := filepath.Join(t.TempDir(), "bframes.mkv")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-bf", "2", "-pix_fmt", "yuv420p", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	data := ieReadFile(t, path)

	// The file has what this test is about.
	seg, children := ieSegmentChildren(t, data)
	if seg.size < 0 || seg.body+seg.size != int64(len(data)) {
		t.Fatalf("Segment size %d: want a known size ending the file", seg.size)
	}
	has := map[uint32]int{}
	for _, e := range children {
		has[e.id]++
		if e.id == mkv.IDCluster && e.firstChild != mkv.IDCRC32 {
			t.Errorf("cluster at %d starts with 0x%X, not CRC-32", e.off, e.firstChild)
		}
	}
	if has[mkv.IDSeekHead] == 0 || has[mkv.IDCues] == 0 || has[mkv.IDCluster] != 4 {
		t.Fatalf("ffmpeg file layout: %v (want SeekHead, Cues, 4 Clusters)", has)
	}

	in := ieParse(t, data)
	reordered := 0
	for _, f := range in.frags {
		for k := 1; k < len(f.frames); k++ {
			if f.frames[k].tc < f.frames[k-1].tc {
				reordered++
			}
		}
	}
	if reordered == 0 {
		t.Fatal("no B-frames in the ffmpeg output: the test no longer covers decode order")
	}

	ts := newTestServer(t, nil, fragments.Config{})
	ieCreateStream(t, ts, "ffmpeg", 24)
	t0 := time.Now()
	start := t0.UnixMilli() * int64(time.Millisecond)
	p := ieStartPut(t, ts, iePutHeaders{Stream: "ffmpeg", TimecodeType: "RELATIVE", ProducerStart: ieEpoch(start)})
	p.writeSplit(data, rand.New(rand.NewSource(3)))
	p.closeBody()
	p.requireOK()
	acks := p.rest()
	frags := ieVerify(t, ts, in, acks, ieCheck{stream: "ffmpeg", relative: true, startNS: start, t0: t0, t1: time.Now()})
	st := ieStream(t, ts, "ffmpeg")
	for i, f := range frags {
		// 25 frames at 25 fps: 1 s, whatever order they were stored in.
		if f.LengthMS() != 1000 {
			t.Errorf("fragment %d: %d ms long, want 1000", i, f.LengthMS())
		}
		if want := start + int64(i)*int64(time.Second); f.ProducerNS != want {
			t.Errorf("fragment %d: producer timestamp %s, want %s", i, ieEpoch(f.ProducerNS), ieEpoch(want))
		}
		m, err := ts.Store.Index.Meta(st.ID, f.Ordinal)
		if err != nil {
			t.Fatal(err)
		}
		// Decode times: increasing in storage order, never after the
		// presentation time, and the earliest is at most the fragment start.
		shifted := false
		for k, s := range m.Samples {
			if s.DTS != s.PTS {
				shifted = true
			}
			if k > 0 && s.DTS <= m.Samples[k-1].DTS {
				t.Errorf("fragment %d sample %d: dts %d not after %d", i, k, s.DTS, m.Samples[k-1].DTS)
			}
		}
		if !shifted {
			t.Errorf("fragment %d: every dts equals its pts in a B-frame stream", i)
		}
	}
}

// TestIngestNegativeBlockTimecodes: GStreamer puts audio that started
// before a video key frame at the start of the cluster that key frame
// opens, with negative relative timecodes. They are accepted, and the
// fragment starts at the earliest of them.
func TestIngestNegativeBlockTimecodes(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	ieCreateStream(t, ts, "negative", 24)
	body := ieJoin(ieHeader(ieVideoTrack, ieAudioTrack),
		ieCluster(0, mkv.SimpleBlock(2, 0, true, ieFrameData(2, 0, 300)), ieVideo(0, 25, 40, 600), ieAudio(21, 46, 21, 300)),
		// Audio at 987 and 1008 ms (after the last audio of cluster 1 at
		// 966 ms) ahead of the key frame at 1000 ms.
		ieCluster(1000, mkv.SimpleBlock(2, -13, true, ieFrameData(2, 987, 300)), mkv.SimpleBlock(1, 0, true, ieFrameData(1, 1000, 600)),
			mkv.SimpleBlock(2, 8, true, ieFrameData(2, 1008, 300)), ieVideo(40, 24, 40, 600), ieAudio(29, 45, 21, 300)),
		ieEnd())
	t0 := time.Now()
	p := ieStartPut(t, ts, iePutHeaders{Stream: "negative", TimecodeType: "RELATIVE", ProducerStart: ieProducerStart})
	p.writeSplit(body, rand.New(rand.NewSource(1)))
	p.closeBody()
	p.requireOK()
	in := ieParse(t, body)
	frags := ieVerify(t, ts, in, p.rest(), ieCheck{stream: "negative", relative: true, startNS: ieProducerStartNS, t0: t0, t1: time.Now()})
	if want := ieProducerStartNS + 987*int64(time.Millisecond); frags[1].ProducerNS != want {
		t.Errorf("second fragment starts at %s, want the first audio frame at %s", ieEpoch(frags[1].ProducerNS), ieEpoch(want))
	}
}

// ieBadCase is input that PutMedia must reject with an error ack.
type ieBadCase struct {
	name string
	cfg  fragments.Config
	hdr  iePutHeaders // Stream is filled in
	// good is sent first: goodN complete fragments, each PERSISTED.
	good     []byte
	goodN    int
	goodTags []mkv.SimpleTag // metadata the first good fragment keeps
	// between runs after the good fragments are persisted.
	between func(t *testing.T, ts *testServer, arn string)
	// bad is the rejected input; trailer a good fragment after it, which
	// must not be stored since the error ends the request. The body ends
	// after them.
	bad, trailer []byte
	errID        int
	// errTC is the FragmentTimecode of an error ack that names the
	// fragment; -1 if the error comes before any fragment.
	errTC   int64
	deleted bool // the stream is gone afterwards
}

func ieBadCases() []ieBadCase {
	v := ieHeader(ieVideoTrack)
	av := ieHeader(ieVideoTrack, ieAudioTrack)
	abs := iePutHeaders{TimecodeType: "ABSOLUTE", ProducerStart: ieProducerStart}
	rel := iePutHeaders{TimecodeType: "RELATIVE", ProducerStart: ieProducerStart}
	good := ieJoin(v, ieCluster(ieBaseTC, ieVideo(0, 3, 40, 500)), ieEnd())
	next := int64(ieBaseTC + 1000)
	trailer := ieJoin(ieCluster(ieBaseTC+2000, ieVideo(0, 3, 40, 500)), ieEnd())
	// KVS limits: 10 tags, names of 128 bytes, values of 256.
	var tenTags []mkv.SimpleTag
	for i := range 10 {
		tenTags = append(tenTags, mkv.SimpleTag{Name: fmt.Sprintf("KEY_%d", i), Value: fmt.Sprintf("value %d", i)})
	}
	tenTags[3].Name = strings.Repeat("n", 128)
	tenTags[4].Value = strings.Repeat("v", 256)
	goodTagged := ieJoin(v, ieCluster(ieBaseTC, ieVideo(0, 3, 40, 500)), mkv.Tags(tenTags), ieEnd())
	elevenTags := append(slices.Clone(tenTags), mkv.SimpleTag{Name: "KEY_10", Value: "one too many"})
	var elevenElements []byte // as the C producer sends them: one Tags element per tag
	for _, tag := range elevenTags {
		elevenElements = append(elevenElements, mkv.Tags([]mkv.SimpleTag{tag})...)
	}
	badCluster := ieCluster(next, ieVideo(0, 3, 40, 500))
	truncated := ieCluster(next, ieVideo(0, 3, 40, 500))
	truncated = truncated[:len(truncated)-200] // inside the last SimpleBlock

	return []ieBadCase{
		{name: "garbage", hdr: abs, bad: []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\nthis is not Matroska"), errID: fragments.ErrInvalidMKV, errTC: -1},
		{name: "garbage after a fragment", hdr: abs, good: good, goodN: 1, bad: bytes.Repeat([]byte{0x00, 0x42}, 100), errID: fragments.ErrInvalidMKV, errTC: -1},
		{name: "truncated cluster", hdr: abs, good: good, goodN: 1, bad: truncated, errID: fragments.ErrInvalidMKV, errTC: next},
		{name: "fragment over the max size", cfg: fragments.Config{MaxFragmentSize: 4096}, hdr: abs, good: good, goodN: 1,
			bad: ieJoin(ieCluster(next, ieVideo(0, 3, 40, 2000)), ieEnd()), trailer: trailer, errID: fragments.ErrMaxFragmentSize, errTC: next},
		{name: "fragment over the max duration", cfg: fragments.Config{MaxFragmentDuration: time.Second}, hdr: abs, good: good, goodN: 1,
			bad: ieJoin(ieCluster(next, ieVideo(0, 13, 100, 100)), ieEnd()), trailer: trailer, errID: fragments.ErrMaxFragmentDuration, errTC: next},
		{name: "timecode equal to the previous last frame", hdr: abs, good: good, goodN: 1,
			bad: ieJoin(ieCluster(ieBaseTC+80, ieVideo(0, 3, 40, 500)), ieEnd()), trailer: trailer, errID: fragments.ErrTimecodeOrder, errTC: ieBaseTC + 80},
		{name: "timecode before the previous last frame", hdr: abs, good: good, goodN: 1,
			bad: ieJoin(ieCluster(ieBaseTC+50, ieVideo(0, 3, 40, 500)), ieEnd()), trailer: trailer, errID: fragments.ErrTimecodeOrder, errTC: ieBaseTC + 50},
		{name: "relative without producer start", hdr: iePutHeaders{TimecodeType: "RELATIVE"},
			bad: ieJoin(v, ieCluster(0, ieVideo(0, 3, 40, 500)), ieEnd()), trailer: trailer, errID: fragments.ErrProducerTimestamp, errTC: 0},
		{name: "relative with a bad producer start", hdr: iePutHeaders{TimecodeType: "RELATIVE", ProducerStart: "yesterday"},
			bad: ieJoin(v, ieCluster(0, ieVideo(0, 3, 40, 500)), ieEnd()), trailer: trailer, errID: fragments.ErrProducerTimestamp, errTC: 0},
		{name: "stream deleted", hdr: abs, good: good, goodN: 1,
			between: func(t *testing.T, ts *testServer, arn string) {
				if status, typ, body := iePost(t, ts, "/deleteStream", map[string]any{"StreamARN": arn}); status != http.StatusOK {
					t.Fatalf("deleteStream: %d %s %s", status, typ, body)
				}
			},
			bad: ieJoin(badCluster, ieEnd()), trailer: trailer, errID: fragments.ErrStreamNotActive, errTC: next, deleted: true},
		{name: "11 tags", hdr: abs, good: goodTagged, goodN: 1, goodTags: tenTags,
			bad: ieJoin(badCluster, mkv.Tags(elevenTags), ieEnd()), trailer: trailer, errID: fragments.ErrMetadataLimit, errTC: next},
		{name: "11 tags in 11 elements", hdr: abs, good: goodTagged, goodN: 1, goodTags: tenTags,
			bad: ieJoin(badCluster, elevenElements, ieEnd()), trailer: trailer, errID: fragments.ErrMetadataLimit, errTC: next},
		{name: "11 tags before the cluster", hdr: abs, good: goodTagged, goodN: 1, goodTags: tenTags,
			bad: ieJoin(elevenElements, badCluster, ieEnd()), trailer: trailer, errID: fragments.ErrMetadataLimit, errTC: -1},
		{name: "tag name of 129 bytes", hdr: abs, good: goodTagged, goodN: 1, goodTags: tenTags,
			bad: ieJoin(badCluster, mkv.Tags([]mkv.SimpleTag{{Name: strings.Repeat("n", 129), Value: "v"}}), ieEnd()), trailer: trailer, errID: fragments.ErrMetadataLimit, errTC: next},
		{name: "tag value of 257 bytes", hdr: abs, good: goodTagged, goodN: 1, goodTags: tenTags,
			bad: ieJoin(badCluster, mkv.Tags([]mkv.SimpleTag{{Name: "n", Value: strings.Repeat("v", 257)}}), ieEnd()), trailer: trailer, errID: fragments.ErrMetadataLimit, errTC: next},
		{name: "block of an undeclared track", hdr: abs, good: good, goodN: 1,
			bad: ieJoin(ieCluster(next, ieVideo(0, 2, 40, 500), mkv.SimpleBlock(3, 80, true, []byte{1, 2, 3})), ieEnd()), trailer: trailer, errID: fragments.ErrTrackMismatch, errTC: next},
		{name: "no frames for a declared track", hdr: rel,
			good: ieJoin(av, ieCluster(0, ieVideo(0, 3, 40, 500), ieAudio(0, 5, 21, 100)), ieEnd()), goodN: 1,
			bad: ieJoin(ieCluster(1000, ieVideo(0, 3, 40, 500)), ieEnd()), trailer: ieJoin(ieCluster(2000, ieVideo(0, 3, 40, 500), ieAudio(0, 5, 21, 100)), ieEnd()),
			errID: fragments.ErrFramesMissing, errTC: 1000},
		{name: "tag name starting with AWS_", hdr: abs, good: good, goodN: 1,
			bad: ieJoin(badCluster, mkv.Tags([]mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_CUSTOM", Value: "x"}}), ieEnd()), trailer: trailer, errID: fragments.ErrInvalidMetadata, errTC: next},
	}
}

// TestIngestBadInput sends input PutMedia must reject: each gets its
// documented error ack, the error ends the request, and the store keeps
// the good fragments sent before and nothing else.
func TestIngestBadInput(t *testing.T) {
	for i, c := range ieBadCases() {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, nil, c.cfg)
			name := fmt.Sprintf("bad-%d", i)
			arn := ieCreateStream(t, ts, name, 24)
			st := ieStream(t, ts, name)
			h := c.hdr
			h.Stream = name
			p := ieStartPut(t, ts, h)
			var goodNumbers []uint64
			if c.goodN > 0 {
				p.write(c.good)
				p.requireOK()
				for _, a := range ieWithoutIdle(p.untilPersisted(c.goodN)) {
					if a.EventType == fragments.AckPersisted {
						goodNumbers = append(goodNumbers, a.number(t))
					}
				}
			}
			before := ieSnapshot(t, ts, st.ID)
			if !slices.Equal(before.numbers, goodNumbers) || before.onDisk != before.sizes {
				t.Fatalf("before the bad input: %+v, want fragments %v stored", before, goodNumbers)
			}
			if c.goodTags != nil {
				m, err := ts.Store.Index.Meta(st.ID, 1)
				if err != nil || !slices.Equal(m.Tags, c.goodTags) {
					t.Errorf("metadata at the limits: %v (%v), want %v", m, err, c.goodTags)
				}
			}
			if c.between != nil {
				c.between(t, ts, arn)
			}
			p.writeAsync(c.bad, c.trailer)
			p.requireOK()
			acks := ieWithoutIdle(p.rest())
			if len(acks) == 0 {
				t.Fatal("the request ended without an error ack")
			}
			e := acks[len(acks)-1]
			ieCheckAckJSON(t, e)
			if e.EventType != fragments.AckError || e.ErrorID != int64(c.errID) {
				t.Fatalf("last ack %s, want ERROR %d %s (acks %v)", e, c.errID, fragments.ErrorCode(c.errID), acks)
			}
			if c.errTC < 0 {
				if e.FragmentNumber != "" {
					t.Errorf("error ack %s names a fragment, but none had started", e)
				}
			} else {
				if e.FragmentNumber == "" || e.FragmentTimecode != c.errTC {
					t.Errorf("error ack %s, want the rejected fragment (timecode %d)", e, c.errTC)
				}
				if len(goodNumbers) > 0 && e.FragmentNumber != "" && e.number(t) <= goodNumbers[len(goodNumbers)-1] {
					t.Errorf("error ack %s names an earlier fragment", e)
				}
			}
			// Before the error, only the rejected fragment's BUFFERING.
			for _, a := range acks[:len(acks)-1] {
				if a.EventType != fragments.AckBuffering || a.FragmentNumber != e.FragmentNumber {
					t.Errorf("ack %s before the error ack %s", a, e)
				}
			}
			if c.deleted {
				if status, typ, _ := iePost(t, ts, "/describeStream", map[string]any{"StreamName": name}); status != http.StatusNotFound || typ != "ResourceNotFoundException" {
					t.Errorf("describeStream after deleteStream: %d %s", status, typ)
				}
				if frags := ieIndexed(t, ts, st.ID); len(frags) != 0 {
					t.Errorf("%d fragments of the deleted stream are indexed", len(frags))
				}
				if _, err := os.Stat(iePayloadDir(ts, st.ID)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("payloads of the deleted stream: %v", err)
				}
				return
			}
			after := ieSnapshot(t, ts, st.ID)
			if !slices.Equal(after.numbers, before.numbers) || after.sizes != before.sizes || after.onDisk != before.onDisk {
				t.Errorf("store changed: before %+v, after %+v", before, after)
			}
			if listed := ieListFragments(t, ts, name); len(listed) != len(goodNumbers) {
				t.Errorf("ListFragments returned %d fragments, want %d", len(listed), len(goodNumbers))
			}
		})
	}
}

// TestIngestRejectedBeforeBody: errors in the request headers are HTTP
// errors sent before the body is read.
func TestIngestRejectedBeforeBody(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	ieCreateStream(t, ts, "exists", 24)
	cases := []struct {
		name   string
		h      iePutHeaders
		status int
		typ    string
	}{
		{"unknown stream", iePutHeaders{Stream: "no-such-stream", TimecodeType: "ABSOLUTE"}, http.StatusNotFound, "ResourceNotFoundException"},
		{"no timecode type", iePutHeaders{Stream: "exists", TimecodeType: "-"}, http.StatusBadRequest, "InvalidArgumentException"},
		{"bad timecode type", iePutHeaders{Stream: "exists", TimecodeType: "SOMETIMES"}, http.StatusBadRequest, "InvalidArgumentException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The body is never written: a server that read it would hang
			// until the timeout.
			p := ieStartPut(t, ts, c.h)
			r := p.response()
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.resp.StatusCode != c.status || r.resp.Header.Get("x-amzn-ErrorType") != c.typ {
				t.Fatalf("%s (x-amzn-ErrorType %q) %s, want %d %s", r.resp.Status, r.resp.Header.Get("x-amzn-ErrorType"), r.errBody, c.status, c.typ)
			}
			var body map[string]any
			if err := json.Unmarshal(r.errBody, &body); err != nil || body["__type"] != c.typ {
				t.Errorf("body %s, want __type %s", r.errBody, c.typ)
			}
			if n := p.bodyReads.readCount(); n != 0 {
				t.Errorf("the request body was read %d times before the error", n)
			}
		})
	}
	// Nothing was stored on the existing stream.
	if n := len(ieIndexed(t, ts, ieStream(t, ts, "exists").ID)); n != 0 {
		t.Errorf("%d fragments stored", n)
	}
}

// TestIngestSecondPutReplacesFirst: a new PutMedia on a stream ends the one
// in progress (its unfinished fragment is dropped); the new connection's
// fragments are stored after the old one's.
func TestIngestSecondPutReplacesFirst(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	ieCreateStream(t, ts, "camera", 24)
	st := ieStream(t, ts, "camera")
	hdr := iePutHeaders{Stream: "camera", TimecodeType: "ABSOLUTE", ProducerStart: ieProducerStart}
	head := ieHeader(ieVideoTrack)

	first := ieStartPut(t, ts, hdr)
	first.write(ieJoin(head, ieCluster(ieBaseTC, ieVideo(0, 5, 40, 400)), ieEnd()))
	first.requireOK()
	a1 := first.untilPersisted(1)
	n1 := a1[len(a1)-1].number(t)
	// A fragment in progress when the second connection comes.
	first.write(ieCluster(ieBaseTC+1000, ieVideo(0, 3, 40, 400)))
	buf := first.until("BUFFERING of the second fragment", func(a ieAck) bool { return a.EventType == fragments.AckBuffering })
	dropped := buf[len(buf)-1].number(t)

	second := ieStartPut(t, ts, hdr)
	second.write(ieJoin(head, ieCluster(ieBaseTC+2000, ieVideo(0, 5, 40, 400)), ieEnd()))
	second.requireOK()
	// The first request ends, without acking its unfinished fragment.
	rest := first.rest()
	for _, a := range ieWithoutIdle(rest) {
		t.Errorf("replaced connection sent %s", a)
	}
	// What it sends now goes nowhere.
	if err := first.tryWrite(ieJoin(ieVideo(120, 3, 40, 400), ieEnd())); err == nil {
		t.Log("the replaced connection still accepted body bytes")
	}
	b1 := second.untilPersisted(1)
	second.write(ieJoin(ieCluster(ieBaseTC+3000, ieVideo(0, 5, 40, 400)), ieEnd()))
	b2 := second.untilPersisted(1)
	second.closeBody()
	if rest := ieWithoutIdle(second.rest()); len(rest) != 0 {
		t.Errorf("acks after the last PERSISTED: %v", rest)
	}
	want := []uint64{n1, b1[len(b1)-1].number(t), b2[len(b2)-1].number(t)}
	frags := ieIndexed(t, ts, st.ID)
	var got []uint64
	for i, f := range frags {
		got = append(got, f.Number)
		if f.Ordinal != int64(i+1) {
			t.Errorf("fragment %d: ordinal %d", i, f.Ordinal)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stored fragments %v, want %v (the first connection's, then the second's; %d dropped)", got, want, dropped)
	}
	if !(want[0] < dropped && dropped < want[1] && want[1] < want[2]) {
		t.Errorf("fragment numbers %v around the dropped %d are not in ingest order", want, dropped)
	}
	wantTC := []int64{ieBaseTC, ieBaseTC + 2000, ieBaseTC + 3000}
	for i, f := range frags {
		if f.Timecode != wantTC[i] {
			t.Errorf("fragment %d: timecode %d, want %d", i, f.Timecode, wantTC[i])
		}
	}
	if s := ieSnapshot(t, ts, st.ID); s.onDisk != s.sizes {
		t.Errorf("%d payload bytes on disk for %d bytes of fragments: the dropped fragment was kept", s.onDisk, s.sizes)
	}
}

// TestIngestIdle: with the body open and no data, the server sends IDLE
// acks, then closes the request after the idle timeout.
func TestIngestIdle(t *testing.T) {
	oldEvery, oldTimeout := putIdleAckEvery, putIdleTimeout
	putIdleAckEvery, putIdleTimeout = time.Second, 4500*time.Millisecond
	// Registered before the server, so it runs after the server is closed.
	t.Cleanup(func() { putIdleAckEvery, putIdleTimeout = oldEvery, oldTimeout })
	ts := newTestServer(t, nil, fragments.Config{})
	ieCreateStream(t, ts, "idle", 24)
	p := ieStartPut(t, ts, iePutHeaders{Stream: "idle", TimecodeType: "ABSOLUTE", ProducerStart: ieProducerStart})
	p.write(ieJoin(ieHeader(ieVideoTrack), ieCluster(ieBaseTC, ieVideo(0, 5, 40, 400)), ieEnd()))
	p.requireOK()
	p.untilPersisted(1)
	quiet := p.lastWrite
	var idle []ieAck
	var after []ieAck
	for {
		a, ok := p.next()
		if !ok {
			break
		}
		if a.EventType == fragments.AckIdle && len(after) == 0 {
			idle = append(idle, a)
			continue
		}
		after = append(after, a)
	}
	closed := time.Since(quiet)
	if len(idle) < 2 {
		t.Errorf("%d IDLE acks in %s without data, want at least 2", len(idle), closed)
	}
	for _, a := range idle {
		if a.Raw != `{"EventType":"IDLE"}`+"\n" {
			t.Errorf("IDLE ack %q", a.Raw)
		}
	}
	if closed < putIdleTimeout || closed > putIdleTimeout+5*time.Second {
		t.Errorf("request closed %s after the last data, idle timeout %s", closed, putIdleTimeout)
	}
	t.Logf("after the IDLE acks: %v", after)
	for _, a := range after {
		if a.EventType != fragments.AckError || a.ErrorID != fragments.ErrStreamRead {
			t.Errorf("unexpected ack %s when the idle request is closed", a)
		}
	}
	if n := len(ieIndexed(t, ts, ieStream(t, ts, "idle").ID)); n != 1 {
		t.Errorf("%d fragments stored, want the 1 sent before going idle", n)
	}
}

// TestIngestClientGoneMidFragment: a producer that disconnects in the
// middle of a fragment leaves the fragments it completed, and nothing of
// the unfinished one.
func TestIngestClientGoneMidFragment(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	ieCreateStream(t, ts, "unplugged", 24)
	st := ieStream(t, ts, "unplugged")
	p := ieStartPut(t, ts, iePutHeaders{Stream: "unplugged", TimecodeType: "ABSOLUTE", ProducerStart: ieProducerStart})
	p.write(ieJoin(ieHeader(ieVideoTrack), ieCluster(ieBaseTC, ieVideo(0, 5, 40, 400)), ieEnd()))
	p.requireOK()
	p.untilPersisted(1)
	p.write(ieCluster(ieBaseTC+1000, ieVideo(0, 3, 40, 400)))
	p.until("BUFFERING of the second fragment", func(a ieAck) bool { return a.EventType == fragments.AckBuffering })
	p.pw.CloseWithError(errors.New("camera unplugged"))
	for _, a := range ieWithoutIdle(p.rest()) {
		if a.EventType != fragments.AckError {
			t.Errorf("ack %s after the producer went away", a)
		}
	}
	before := ieSnapshot(t, ts, st.ID)
	// Closing the server waits for the PutMedia handler to end (it notices
	// the disconnect at its next read) and closes the payload file; a
	// server on the same data then shows what was kept.
	ts.Close()
	ts2 := startTestServer(t, ts.Dir, nil, fragments.Config{})
	after := ieSnapshot(t, ts2, ieStream(t, ts2, "unplugged").ID)
	if len(before.numbers) != 1 || !slices.Equal(after.numbers, before.numbers) || after.onDisk != after.sizes {
		t.Fatalf("store after the disconnect: %+v (before: %+v), want the 1 complete fragment and its bytes only", after, before)
	}
}

// TestIngestNewStreamHeaderMidBody: a producer that restarts its stream
// (new codec data) sends a new EBML header and Tracks in the same body;
// fragments after it are stored with the new header. BlockGroups with
// BlockDuration give the samples their durations.
func TestIngestNewStreamHeaderMidBody(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	ieCreateStream(t, ts, "restart", 24)
	second := ieVideoTrack
	second.CodecPrivate = []byte{1, 0x4D, 0, 0x1F, 0xFF, 0xE1, 0, 4, 0x67, 0x4D, 0, 0x1F, 1, 0, 2, 0x68, 0xEE}
	second.Width, second.Height = 1280, 720
	var groups []byte
	for i := range 5 {
		groups = append(groups, mkv.BlockGroup(1, int16(40*i), i == 0, 40, ieFrameData(1, int64(40*i), 700))...)
	}
	body := ieJoin(
		ieHeader(ieVideoTrack), ieCluster(ieBaseTC, ieVideo(0, 5, 40, 500)), ieEnd(),
		ieHeader(second), ieCluster(ieBaseTC+1000, groups), ieEnd())
	p := ieStartPut(t, ts, iePutHeaders{Stream: "restart", TimecodeType: "ABSOLUTE", ProducerStart: ieProducerStart})
	p.writeSplit(body, rand.New(rand.NewSource(5)))
	p.closeBody()
	p.requireOK()
	ieCheckAckOrder(t, ieWithoutIdle(p.rest()), 2, true)
	st := ieStream(t, ts, "restart")
	frags := ieIndexed(t, ts, st.ID)
	if len(frags) != 2 {
		t.Fatalf("%d fragments", len(frags))
	}
	if frags[0].HeaderID == frags[1].HeaderID {
		t.Fatalf("both fragments refer to header %d", frags[0].HeaderID)
	}
	for i, want := range []mkv.Track{ieVideoTrack, second} {
		h, err := ts.Store.Index.Header(frags[i].HeaderID)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Tracks) != 1 || !bytes.Equal(h.Tracks[0].CodecPrivate, want.CodecPrivate) || h.Tracks[0].Width != want.Width {
			t.Errorf("fragment %d: header tracks %+v, want %+v", i, h.Tracks, want)
		}
		if !bytes.HasPrefix(h.Raw, mkv.EBMLHeader()) || !bytes.HasSuffix(h.Raw, mkv.Tracks([]mkv.Track{want})) {
			t.Errorf("fragment %d: raw header is not the EBML header ... Tracks sent", i)
		}
	}
	m, err := ts.Store.Index.Meta(st.ID, frags[1].Ordinal)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Samples) != 5 {
		t.Fatalf("%d samples, want 5", len(m.Samples))
	}
	payload := ieReadPayload(t, ts, &frags[1])
	for k, s := range m.Samples {
		if s.Dur != 40*int64(time.Millisecond) || s.PTS != int64(k)*40*int64(time.Millisecond) || s.Key != (k == 0) ||
			!bytes.Equal(payload[s.Offset:s.Offset+s.Size], ieFrameData(1, int64(40*k), 700)) {
			t.Errorf("sample %d: %+v", k, s)
		}
	}
	if frags[1].LengthMS() != 200 {
		t.Errorf("second fragment lasts %d ms, want 200", frags[1].LengthMS())
	}
}
