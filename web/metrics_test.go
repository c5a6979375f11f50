package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
	"github.com/labstack/echo/v4"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is one GET /metrics, parsed by Prometheus' own text parser.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t testing.TB, url string) scrape {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the series' value: a counter's or gauge's value, a histogram's
// sample count; 0 for a series that does not exist.
func (s scrape) value(name, api, stream string) float64 {
	f := s[name]
	if f == nil {
		return 0
	}
	for _, m := range f.Metric {
		var a, st string
		for _, l := range m.Label {
			switch l.GetName() {
			case "api":
				a = l.GetValue()
			case "stream":
				st = l.GetValue()
			}
		}
		if a != api || st != stream {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// streams lists the stream labels of every kvs_ series.
func (s scrape) streams() map[string]bool {
	out := map[string]bool{}
	for name, f := range s {
		if !strings.HasPrefix(name, "kvs_") {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "stream" {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}

// clientCall is one request as a client saw it on the wire: body bytes
// sent and received, status, request id and error type.
type clientCall struct {
	path, reqID, errType string
	status               int
	sent, received       int64
}

// wireCounter is an http.RoundTripper that records what each request sent
// and received on the wire, so metrics can be checked against what real
// clients (the SDK, the producer, players' plain GETs) actually moved.
type wireCounter struct {
	base  http.RoundTripper
	mu    sync.Mutex
	calls []*clientCall
}

func (w *wireCounter) client() *http.Client { return &http.Client{Transport: w} }

func (w *wireCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	call := &clientCall{path: req.URL.Path}
	w.mu.Lock()
	w.calls = append(w.calls, call)
	w.mu.Unlock()
	if req.Body != nil {
		req = req.Clone(req.Context())
		req.Body = &countingBody{r: req.Body, n: &call.sent, mu: &w.mu}
	}
	resp, err := w.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	call.status, call.reqID, call.errType = resp.StatusCode, resp.Header.Get("x-amzn-RequestId"), resp.Header.Get("x-amzn-ErrorType")
	w.mu.Unlock()
	resp.Body = &countingBody{r: resp.Body, n: &call.received, mu: &w.mu, drain: true}
	return resp, nil
}

// take returns the calls so far and forgets them.
func (w *wireCounter) take() []clientCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]clientCall, len(w.calls))
	for i, c := range w.calls {
		out[i] = *c
	}
	w.calls = nil
	return out
}

// countingBody counts what is read through it. A response body is drained
// on Close: every byte that arrived counts, read by the client or not (the
// SDK's JSON decoder leaves the trailing newline).
type countingBody struct {
	r     io.ReadCloser
	n     *int64
	mu    *sync.Mutex
	drain bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.mu.Lock()
	*b.n += int64(n)
	b.mu.Unlock()
	return n, err
}

func (b *countingBody) Close() error {
	if b.drain {
		io.Copy(io.Discard, b)
	}
	return b.r.Close()
}

// drain returns a function that reads a response to its end and closes it
// (the wire counter records what arrived), failing the test on an error.
func drain(t *testing.T) func(*http.Response, error) {
	return func(resp *http.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// one returns the single call to path.
func one(t *testing.T, calls []clientCall, path string) clientCall {
	t.Helper()
	var found []clientCall
	for _, c := range calls {
		if c.path == path {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d calls to %s, want 1: %+v", len(found), path, calls)
	}
	return found[0]
}

// syncBuffer is a log destination for a server and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// jsonRequestLines parses the request log lines of a JSON log by request id.
func jsonRequestLines(t *testing.T, log string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for line := range strings.Lines(log) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		if m["msg"] != "request" {
			continue
		}
		id, _ := m["request_id"].(string)
		if _, dup := out[id]; dup {
			t.Fatalf("two request lines for request %q", id)
		}
		out[id] = m
	}
	return out
}

// creditRecorder notes the fragment credits each request's requestInfo
// says it consumed, per (api, stream), as the metrics should export them.
type creditRecorder struct {
	mu sync.Mutex
	by map[seriesKey][2]int // metadata, media
}

// recordCredits installs a recorder inside the metrics middleware: it reads
// the requestInfo once the handler (which charges the credits) has returned.
func recordCredits(ts *testServer) *creditRecorder {
	r := &creditRecorder{by: map[seriesKey][2]int{}}
	ts.Server.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			if info := infoOfC(c); info.API != "" {
				r.mu.Lock()
				k := seriesKey{info.API, info.Stream}
				v := r.by[k]
				r.by[k] = [2]int{v[0] + info.MetadataCredits, v[1] + info.MediaCredits}
				r.mu.Unlock()
			}
			return err
		}
	})
	return r
}

// settle waits until each call has its request log line: the line is
// written once the request is counted. (A response can end before its
// handler returns: a PutMedia ended early finishes its response on the
// hijacked connection.)
func settle(t *testing.T, logs *syncBuffer, calls []clientCall) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range calls {
		for !strings.Contains(logs.String(), `"request_id":"`+c.reqID+`"`) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line for %s (request %q)", c.path, c.reqID)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// ffprobePackets counts the packets (frames) of a media file with ffprobe.
func ffprobePackets(t *testing.T, file string) int {
	t.Helper()
	ffprobe := requireTool(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	total := 0
	for _, f := range strings.Fields(string(out)) {
		n, err := strconv.Atoi(strings.Trim(f, ","))
		if err != nil {
			t.Fatalf("ffprobe output %q", out)
		}
		total += n
	}
	return total
}

// delta checks that each series moved by exactly want between two scrapes.
type delta struct {
	t             *testing.T
	before, after scrape
	api, stream   string
}

func (d delta) is(name string, want float64) {
	d.t.Helper()
	if got := d.after.value(name, d.api, d.stream) - d.before.value(name, d.api, d.stream); got != want {
		d.t.Errorf("%s{api=%q,stream=%q} moved by %v, want %v", name, d.api, d.stream, got, want)
	}
}

// TestMetrics: /metrics counters move by exactly what requests of real
// clients made: the demo clip put by the producer, ListFragments through
// the SDK, an HLS media fragment fetched like a player, GetMedia and
// GetMediaForFragmentList, failures included; every request has one
// JSON log line that says the same.
func TestMetrics(t *testing.T) {
	logs := &syncBuffer{}
	ts := newTestServer(t, nil, fragments.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	credits := recordCredits(ts)
	wire := &wireCounter{base: http.DefaultTransport}
	file := filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv")
	frames := ffprobePackets(t, file)
	clip, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var calls []clientCall

	// PutMedia: the demo clip, 10 fragments.
	s0 := scrapeMetrics(t, ts.URL)
	stats, err := producer.Put(context.Background(), bytes.NewReader(clip), producer.Options{Endpoint: ts.URL, Stream: "cam", Create: true, Client: wire.client()})
	if err != nil || stats.Acks["PERSISTED"] != 10 {
		t.Fatalf("put: %v, acks %v", err, stats)
	}
	got := wire.take()
	settle(t, logs, got)
	s1 := scrapeMetrics(t, ts.URL)
	calls = append(calls, got...)
	put := one(t, got, "/putMedia")
	d := delta{t, s0, s1, "PutMedia", "cam"}
	d.is("kvs_requests_total", 1)
	d.is("kvs_success_total", 1)
	d.is("kvs_latency_seconds", 1)
	d.is("kvs_incoming_bytes_total", float64(put.sent))
	d.is("kvs_outgoing_bytes_total", float64(put.received))
	d.is("kvs_incoming_fragments_total", 10)
	d.is("kvs_incoming_frames_total", float64(frames))
	d.is("kvs_persisted_fragments_total", 10)
	d.is("kvs_fragment_ingestion_latency_seconds", 10)
	d.is("kvs_fragment_persist_latency_seconds", 10)
	d.is("kvs_error_acks_total", 0)
	d.is("kvs_connection_errors_total", 0)
	d.is("kvs_active_connections", 0)
	delta{t, s0, s1, "CreateStream", "cam"}.is("kvs_requests_total", 1)

	// A PutMedia whose body is no Matroska: one ERROR ack, no success.
	req, _ := http.NewRequest("POST", ts.URL+"/putMedia", strings.NewReader("not matroska at all"))
	req.Header.Set("x-amzn-stream-name", "cam")
	req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
	resp, err := wire.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	acks, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(acks, []byte(`"ErrorCode":"INVALID_MKV_DATA"`)) {
		t.Fatalf("garbage PutMedia acks: %s", acks)
	}
	// A PutMedia refused before it starts: a connection error.
	req, _ = http.NewRequest("POST", ts.URL+"/putMedia", strings.NewReader(""))
	req.Header.Set("x-amzn-stream-name", "cam")
	drain(t)(wire.client().Do(req))
	got = wire.take()
	settle(t, logs, got)
	s2 := scrapeMetrics(t, ts.URL)
	calls = append(calls, got...)
	d = delta{t, s1, s2, "PutMedia", "cam"}
	d.is("kvs_requests_total", 2)
	d.is("kvs_success_total", 0)
	d.is("kvs_error_acks_total", 1)
	d.is("kvs_connection_errors_total", 1)
	d.is("kvs_incoming_fragments_total", 0)
	d.is("kvs_outgoing_bytes_total", float64(got[0].received+got[1].received))

	// ListFragments through the SDK, of cam and of a stream that does not exist.
	am := kinesisvideoarchivedmedia.New(kinesisvideoarchivedmedia.Options{Region: "us-west-2", BaseEndpoint: aws.String(ts.URL),
		Credentials: aws.AnonymousCredentials{}, HTTPClient: wire.client(), Retryer: aws.NopRetryer{}})
	lf, err := am.ListFragments(testCtx(t), &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam"), MaxResults: aws.Int64(1000)})
	if err != nil || len(lf.Fragments) != 10 {
		t.Fatalf("ListFragments: %v, %d fragments", err, len(lf.Fragments))
	}
	if _, err := am.ListFragments(testCtx(t), &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("nope")}); err == nil {
		t.Fatal("ListFragments of a missing stream succeeded")
	}
	got = wire.take()
	settle(t, logs, got)
	s3 := scrapeMetrics(t, ts.URL)
	calls = append(calls, got...)
	d = delta{t, s2, s3, "ListFragments", "cam"}
	d.is("kvs_requests_total", 1)
	d.is("kvs_success_total", 1)
	d.is("kvs_latency_seconds", 1)
	d.is("kvs_outgoing_bytes_total", float64(got[0].received))
	d = delta{t, s2, s3, "ListFragments", ""}
	d.is("kvs_requests_total", 1)
	d.is("kvs_success_total", 0)
	d.is("kvs_latency_seconds", 1)
	d.is("kvs_outgoing_bytes_total", float64(got[1].received))

	// HLS: a media fragment as a player fetches it, and one that does not exist.
	nums := make([]string, len(lf.Fragments))
	for i, f := range lf.Fragments {
		nums[i] = aws.ToString(f.FragmentNumber)
	}
	hs, err := am.GetHLSStreamingSessionURL(testCtx(t), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.HLSTimestampRange{StartTimestamp: aws.Time(time.Now().Add(-time.Hour)), EndTimestamp: aws.Time(time.Now())}}})
	if err != nil {
		t.Fatal(err)
	}
	base := strings.Replace(aws.ToString(hs.HLSStreamingSessionURL), "getHLSMasterPlaylist.m3u8?", "getMP4MediaFragment.mp4?TrackNumber=1&FragmentNumber=", 1)
	segment := strings.Replace(base, "FragmentNumber=", "FragmentNumber="+nums[3]+"&", 1)
	missing := strings.Replace(base, "FragmentNumber=", "FragmentNumber=1&", 1)
	playlist := strings.Replace(aws.ToString(hs.HLSStreamingSessionURL), "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?TrackNumber=1&", 1)
	for _, u := range []string{segment, missing, playlist} {
		drain(t)(wire.client().Get(u))
	}
	got = wire.take()
	settle(t, logs, got)
	s4 := scrapeMetrics(t, ts.URL)
	calls = append(calls, got...)
	if got[1].status != 200 || got[2].status != 404 || got[3].status != 200 {
		t.Fatalf("media fragment: %d, missing one: %d, media playlist: %d", got[1].status, got[2].status, got[3].status)
	}
	delta{t, s3, s4, "GetHLSStreamingSessionURL", "cam"}.is("kvs_success_total", 1)
	d = delta{t, s3, s4, "GetMP4MediaFragment", "cam"}
	d.is("kvs_requests_total", 2)
	d.is("kvs_success_total", 1)
	d.is("kvs_latency_seconds", 2)
	d.is("kvs_outgoing_bytes_total", float64(got[1].received+got[2].received))

	// GetMedia from the start (it ends 3 s after the last fragment), and one
	// refused: an unknown fragment number.
	for _, sel := range []map[string]any{{"StartSelectorType": "EARLIEST"}, {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "1"}} {
		b, _ := json.Marshal(map[string]any{"StreamName": "cam", "StartSelector": sel})
		drain(t)(wire.client().Post(ts.URL+"/getMedia", "application/json", bytes.NewReader(b)))
	}
	// GetMediaForFragmentList: three fragments and one that does not exist.
	b, _ := json.Marshal(map[string]any{"StreamName": "cam", "Fragments": []string{nums[0], nums[5], "42", nums[9]}})
	drain(t)(wire.client().Post(ts.URL+"/getMediaForFragmentList", "application/json", bytes.NewReader(b)))
	got = wire.take()
	settle(t, logs, got)
	s5 := scrapeMetrics(t, ts.URL)
	calls = append(calls, got...)
	if got[0].status != 200 || got[1].status != 404 || got[2].status != 200 {
		t.Fatalf("GetMedia %d, unknown fragment %d, GetMediaForFragmentList %d", got[0].status, got[1].status, got[2].status)
	}
	d = delta{t, s4, s5, "GetMedia", "cam"}
	d.is("kvs_requests_total", 2)
	d.is("kvs_success_total", 1)
	d.is("kvs_connection_errors_total", 1)
	d.is("kvs_active_connections", 0)
	d.is("kvs_outgoing_bytes_total", float64(got[0].received+got[1].received))
	d.is("kvs_outgoing_fragments_total", 10)
	d.is("kvs_outgoing_frames_total", float64(frames))
	if behind := s5.value("kvs_behind_now_seconds", "GetMedia", "cam"); behind <= 0 || behind > 60 {
		t.Errorf("GetMedia behind now %v s, want the age of the last fragment", behind)
	}
	d = delta{t, s4, s5, "GetMediaForFragmentList", "cam"}
	d.is("kvs_requests_total", 1)
	d.is("kvs_success_total", 1)
	d.is("kvs_outgoing_bytes_total", float64(got[2].received))
	d.is("kvs_outgoing_fragments_total", 3)

	// ArchivedFragmentsConsumed: exactly the credits the requests recorded
	// (the limiter charges them; without it, none), per API and stream.
	credits.mu.Lock()
	for k, c := range credits.by {
		d := delta{t, s0, s5, k.api, k.stream}
		d.is("kvs_archived_fragments_consumed_metadata_total", float64(c[0]))
		d.is("kvs_archived_fragments_consumed_media_total", float64(c[1]))
	}
	credits.mu.Unlock()
	for _, api := range []string{"ListFragments", "GetHLSMediaPlaylist", "GetMP4MediaFragment"} {
		if _, ok := credits.by[seriesKey{api, "cam"}]; !ok {
			t.Errorf("no %s request of cam seen", api)
		}
	}

	// /metrics counts no request of its own, and only API requests count.
	if s5.value("kvs_requests_total", "", "") != 0 || s5.streams()["nope"] {
		t.Error("requests without an API or of a missing stream have series")
	}

	// Every request has one log line that says what the client saw.
	lines := jsonRequestLines(t, logs.String())
	for _, c := range calls {
		l := lines[c.reqID]
		if l == nil {
			t.Errorf("no log line for %s (request %q)", c.path, c.reqID)
			continue
		}
		wantAPI := apiNames[c.path]
		stream := "cam"
		if strings.Contains(c.errType, "ResourceNotFound") && c.path == "/listFragments" {
			stream = ""
		}
		if l["api"] != wantAPI || l["stream"] != stream || l["status"] != float64(c.status) || l["bytes"] != float64(c.received) {
			t.Errorf("%s: log line %v; client saw status %d, %d bytes", c.path, l, c.status, c.received)
		}
		if c.errType != "" && l["error"] != c.errType {
			t.Errorf("%s: log error %v, want %s", c.path, l["error"], c.errType)
		}
		if lat, ok := l["latency_ms"].(float64); !ok || lat <= 0 {
			t.Errorf("%s: latency_ms %v", c.path, l["latency_ms"])
		}
		if c.path == "/putMedia" && c.status == 200 {
			if l["bytes_in"] != float64(c.sent) {
				t.Errorf("PutMedia log bytes_in %v, client sent %d", l["bytes_in"], c.sent)
			}
			if _, ok := l["duration_ms"].(float64); !ok {
				t.Errorf("PutMedia log line without duration_ms: %v", l)
			}
		}
	}
	if l := lines[put.reqID]; l["fragments"] != float64(10) || l["error"] != "" {
		t.Errorf("PutMedia log line %v, want 10 fragments and no error", l)
	}
	for _, c := range calls {
		if c.path == "/putMedia" && c.status == 200 && c.reqID != put.reqID && lines[c.reqID]["error"] != "INVALID_MKV_DATA" {
			t.Errorf("garbage PutMedia log line %v, want error INVALID_MKV_DATA", lines[c.reqID])
		}
	}

	// A deleted stream's series go.
	kv := kinesisvideo.New(kinesisvideo.Options{Region: "us-west-2", BaseEndpoint: aws.String(ts.URL), Credentials: aws.AnonymousCredentials{}, Retryer: aws.NopRetryer{}})
	ds, err := kv.DescribeStream(testCtx(t), &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.DeleteStream(testCtx(t), &kinesisvideo.DeleteStreamInput{StreamARN: ds.StreamInfo.StreamARN}); err != nil {
		t.Fatal(err)
	}
	if left := scrapeMetrics(t, ts.URL).streams(); left["cam"] {
		t.Errorf("series of the deleted stream remain: %v", left)
	}
}

// TestMetricsUnsigned: Prometheus scrapes /metrics without signing while
// the API requires SigV4; a refused API request is counted, the scrapes are not.
func TestMetricsUnsigned(t *testing.T) {
	ts := newTestServer(t, []Credentials{e2eCreds}, fragments.Config{})
	resp, _ := gmPost(t, ts.URL, "/listStreams", map[string]any{})
	if resp.StatusCode != 403 {
		t.Fatalf("unsigned ListStreams: %d, want 403", resp.StatusCode)
	}
	scrapeMetrics(t, ts.URL)
	s := scrapeMetrics(t, ts.URL)
	if got := s.value("kvs_requests_total", "ListStreams", ""); got != 1 {
		t.Errorf("ListStreams requests %v, want 1", got)
	}
	if got := s.value("kvs_success_total", "ListStreams", ""); got != 0 {
		t.Errorf("ListStreams success %v, want 0", got)
	}
	for _, m := range s["kvs_requests_total"].GetMetric() {
		if len(m.Label) != 2 || m.Label[0].GetValue() != "ListStreams" {
			t.Errorf("unexpected series %v", m)
		}
	}
	if s["go_goroutines"] == nil || s["process_cpu_seconds_total"] == nil {
		t.Error("no Go or process metrics")
	}
}

// TestMetricsCredits: the fragment credits a request's requestInfo says it
// consumed are exported as ArchivedFragmentsConsumed, whichever API set
// them. A stand-in adds credits on top of what the limiter (if any) charges.
func TestMetricsCredits(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	credits := recordCredits(ts)
	added := map[string][2]int{"ListFragments": {7, 0}, "GetClip": {3, 3}, "ListStreams": {0, 2}} // ListStreams: no credits in the quota table
	ts.Server.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			info := infoOfC(c)
			a := added[info.API]
			info.MetadataCredits += a[0]
			info.MediaCredits += a[1]
			return next(c)
		}
	})
	gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": "cam", "DataRetentionInHours": 1})
	gmPost(t, ts.URL, "/listFragments", map[string]any{"StreamName": "cam"})
	gmPost(t, ts.URL, "/listFragments", map[string]any{"StreamName": "cam"})
	gmPost(t, ts.URL, "/getClip", clipBody("cam", "SERVER_TIMESTAMP", float64(time.Now().Add(-time.Minute).Unix()), float64(time.Now().Unix())))
	gmPost(t, ts.URL, "/listStreams", map[string]any{})
	s := scrapeMetrics(t, ts.URL)
	credits.mu.Lock()
	defer credits.mu.Unlock()
	for _, c := range []struct {
		api, stream string
		calls       int
	}{{"ListFragments", "cam", 2}, {"GetClip", "cam", 1}, {"ListStreams", "", 1}} {
		rec := credits.by[seriesKey{c.api, c.stream}]
		for i, name := range []string{"kvs_archived_fragments_consumed_metadata_total", "kvs_archived_fragments_consumed_media_total"} {
			if rec[i] < c.calls*added[c.api][i] {
				t.Errorf("%s: %d credits recorded, want at least the %d added", c.api, rec[i], c.calls*added[c.api][i])
			}
			if got := s.value(name, c.api, c.stream); got != float64(rec[i]) {
				t.Errorf("%s{api=%q,stream=%q} = %v, want %d", name, c.api, c.stream, got, rec[i])
			}
		}
	}
}

// parseLogfmt parses one line of slog's text handler: key=value pairs,
// values quoted when they need it.
func parseLogfmt(t *testing.T, line string) map[string]string {
	t.Helper()
	out := map[string]string{}
	rest := strings.TrimSpace(line)
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			t.Fatalf("not key=value: %q", rest)
		}
		key := rest[:eq]
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("bad quoted value in %q: %v", line, err)
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			sp := strings.IndexByte(rest, ' ')
			if sp < 0 {
				sp = len(rest)
			}
			val, rest = rest[:sp], rest[sp:]
		}
		out[key] = val
		rest = strings.TrimLeft(rest, " ")
	}
	return out
}

// TestRequestLogText: the text request log has the same fields, one line
// per request, in key=value form; health checks and scrapes only at debug level.
func TestRequestLogText(t *testing.T) {
	logs := &syncBuffer{}
	ts := newTestServer(t, nil, fragments.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ok, _ := gmPost(t, ts.URL, "/listStreams", map[string]any{})
	bad, body := gmPost(t, ts.URL, "/describeStream", map[string]any{"StreamName": "no such"})
	http.Get(ts.URL + "/healthz")
	scrapeMetrics(t, ts.URL)
	var lines []map[string]string
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		if l := parseLogfmt(t, sc.Text()); l["msg"] == "request" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d request lines, want 2 (no health check or scrape at info level):\n%s", len(lines), logs.String())
	}
	want := []map[string]string{
		{"request_id": ok.Header.Get("x-amzn-RequestId"), "api": "ListStreams", "stream": "", "status": "200", "error": "", "method": "POST", "path": "/listStreams"},
		{"request_id": bad.Header.Get("x-amzn-RequestId"), "api": "DescribeStream", "stream": "", "status": "400", "error": "InvalidArgumentException",
			"bytes": strconv.Itoa(len(body))},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s=%q, want %q (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
		if ms, err := strconv.ParseFloat(lines[i]["latency_ms"], 64); err != nil || ms <= 0 {
			t.Errorf("line %d: latency_ms %q", i, lines[i]["latency_ms"])
		}
		if lines[i]["level"] != "INFO" {
			t.Errorf("line %d: level %q", i, lines[i]["level"])
		}
	}
}
