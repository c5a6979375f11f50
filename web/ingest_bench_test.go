package web

// Ingest benchmarks (docs/PERFORMANCE.md). One op is one fragment. Each
// fragment size has its own group with its own baselines, and the machine
// is shared and noisy, so compare figures within one run:
//
//	go test ./web -run '^$' -bench '^BenchmarkIngest$/^(1s|sqlite-commit)$' -benchtime 2000x -count 3
//	go test ./web -run '^$' -bench '^BenchmarkIngest$/^(10s|sqlite-commit)$' -benchtime 300x -count 3
//
// 1s: the sample clip's clusters as fragments (1 s, 130 kB on average);
// 10s: the whole clip as one fragment (10 s, 1.3 MB). In each group:
//
//   - kvsgate-pipelined: 8 PutMedia connections over loopback TCP to the
//     real server stack (SQLite index, payload files with fdatasync), each
//     sending pre-built fragments (ABSOLUTE timecodes, END_OF_FRAGMENT tag
//     after each cluster) as fast as the server reads them. MB/s is the
//     aggregate of the request bodies; persist-ms is the time from the
//     client's write of a fragment's last byte to its reading of the
//     fragment's PERSISTED ack, queueing behind earlier fragments included.
//   - kvsgate-one-in-flight: the same, but each connection sends a fragment
//     only after the previous one is PERSISTED: the latency without queueing.
//   - copy-to-file, copy-to-discard: the baseline, the same bytes written the
//     same way to a handler that only io.Copy's the body to a file (no
//     fsync) or to io.Discard.
//   - fdatasync: append a fragment-sized block to a file and fdatasync it,
//     on the same disk (the payload cost of one PERSISTED ack).
//   - fdatasync-8-files: the same from 8 goroutines to 8 files, as the 8
//     streams' segments are: the disk's ceiling for one fdatasync per fragment.
//
// sqlite-commit: Index.Commit of one fragment (one WAL commit with
// synchronous=FULL: the index cost of one PERSISTED ack).

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
	"github.com/kvsgate/kvsgate/fragments/sqlindex"
	"golang.org/x/sys/unix"
)

const benchStreams = 8

// benchClip is the sample clip cut into fragments to send.
type benchClip struct {
	header   []byte
	clusters []benchCluster
	loopMS   int64
}

type benchCluster struct {
	tc     int64  // relative to the first cluster
	blocks []byte // the cluster's blocks, raw
}

var endOfFragment = func() []byte {
	el := func(id []byte, body []byte) []byte {
		return append(append(slices.Clone(id), 0x80|byte(len(body))), body...)
	}
	name := el([]byte{0x45, 0xA3}, []byte("AWS_KINESISVIDEO_END_OF_FRAGMENT"))
	simple := el([]byte{0x67, 0xC8}, append(name, el([]byte{0x44, 0x87}, nil)...))
	return el([]byte{0x12, 0x54, 0xC3, 0x67}, el([]byte{0x73, 0x73}, simple))
}()

// loadBenchClips returns the sample clip as 1 s fragments (its clusters, of
// 130 kB on average) and as 10 s fragments (all of it in one cluster, 1.3 MB).
func loadBenchClips(b *testing.B) (short, long *benchClip) {
	b.Helper()
	short = loadBenchClip(b, false)
	long = loadBenchClip(b, true)
	return short, long
}

// loadBenchClip loads the sample clip; merge puts all its blocks in one
// cluster (block timecodes rewritten relative to the first cluster).
func loadBenchClip(b *testing.B, merge bool) *benchClip {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"))
	if err != nil {
		b.Fatal(err)
	}
	rd := mkv.NewReader(bytes.NewReader(raw))
	c := &benchClip{}
	first, cur, last := int64(-1), int64(0), int64(0)
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		switch ev.Kind {
		case mkv.KindEBMLHeader:
			c.header = append(c.header, ev.Raw...)
			c.header = append(c.header, 0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
		case mkv.KindTracks:
			// Info with TimecodeScale 1 ms, then the Tracks.
			c.header = append(c.header, 0x15, 0x49, 0xA9, 0x66, 0x87, 0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40)
			c.header = append(c.header, ev.Raw...)
		case mkv.KindClusterStart:
			if !merge || len(c.clusters) == 0 {
				c.clusters = append(c.clusters, benchCluster{})
			}
		case mkv.KindTimecode:
			if first < 0 {
				first = ev.Timecode
			}
			cur = ev.Timecode - first
			if !merge {
				c.clusters[len(c.clusters)-1].tc = cur
			}
		case mkv.KindBlock:
			cl := &c.clusters[len(c.clusters)-1]
			start := len(cl.blocks)
			cl.blocks = append(cl.blocks, ev.Raw...)
			abs := cur + int64(ev.Block.Timecode)
			if merge {
				// SimpleBlock: ID A3, size, track number, int16 timecode.
				raw := cl.blocks[start:]
				if raw[0] != 0xA3 || abs > 32767 {
					b.Fatalf("cannot merge block 0x%X at %d ms", raw[0], abs)
				}
				p := 1 + vintLen(raw[1])
				p += vintLen(raw[p])
				raw[p], raw[p+1] = byte(abs>>8), byte(abs)
			}
			last = max(last, abs)
		}
	}
	c.loopMS = last + 100
	return c
}

func vintLen(b byte) int {
	n := 1
	for m := byte(0x80); m != 0 && b&m == 0; m >>= 1 {
		n++
	}
	return n
}

// fragment returns the cluster start with the Timecode of fragment k, its
// blocks and its size on the wire (with the END_OF_FRAGMENT tag).
func (c *benchClip) fragment(k int, t0 int64) (head, blocks []byte, tc int64) {
	cl := &c.clusters[k%len(c.clusters)]
	tc = t0 + int64(k/len(c.clusters))*c.loopMS + cl.tc
	head = []byte{0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x88}
	for i := 7; i >= 0; i-- {
		head = append(head, byte(uint64(tc)>>(8*i)))
	}
	return head, cl.blocks, tc
}

// putConn is one raw HTTP/1.1 PutMedia connection with a chunked body.
type putConn struct {
	c    net.Conn
	resp *http.Response
}

func dialPut(addr, path, stream string, first []byte) (*putConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"+
		"x-amzn-stream-name: %s\r\nx-amzn-fragment-timecode-type: ABSOLUTE\r\nx-amzn-fragment-acknowledgment-required: 1\r\n\r\n", path, addr, stream)
	bufs := net.Buffers{[]byte(req), fmt.Appendf(nil, "%x\r\n", len(first)), first, []byte("\r\n")}
	if _, err := bufs.WriteTo(c); err != nil {
		c.Close()
		return nil, err
	}
	return &putConn{c: c}, nil
}

// readResponse reads the response head (kvsgate sends it once the body has started).
func (p *putConn) readResponse() error {
	resp, err := http.ReadResponse(bufio.NewReaderSize(p.c, 16<<10), nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	p.resp = resp
	return nil
}

// writeChunk writes one chunk made of parts, in one writev.
func (p *putConn) writeChunk(parts ...[]byte) error {
	n := 0
	for _, q := range parts {
		n += len(q)
	}
	bufs := net.Buffers{fmt.Appendf(nil, "%x\r\n", n)}
	bufs = append(bufs, parts...)
	bufs = append(bufs, []byte("\r\n"))
	_, err := bufs.WriteTo(p.c)
	return err
}

func (p *putConn) endBody() error {
	_, err := p.c.Write([]byte("0\r\n\r\n"))
	return err
}

// ackTimecode returns the FragmentTimecode of a PERSISTED ack line.
func ackTimecode(line []byte) (int64, bool, error) {
	if bytes.Contains(line, []byte(`"EventType":"ERROR"`)) {
		return 0, false, fmt.Errorf("error ack: %s", line)
	}
	if !bytes.HasPrefix(line, []byte(`{"EventType":"PERSISTED","FragmentTimecode":`)) {
		return 0, false, nil
	}
	rest := line[len(`{"EventType":"PERSISTED","FragmentTimecode":`):]
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false, fmt.Errorf("bad ack %s", line)
	}
	tc, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return tc, err == nil, err
}

type ingestResult struct {
	bytes   int64
	elapsed time.Duration
	lat     []time.Duration
}

// runIngest sends n fragments spread over benchStreams connections to addr
// and, for PutMedia, waits for every PERSISTED ack.
func runIngest(b *testing.B, clip *benchClip, addr, path string, streams []string, n int, acks, oneInFlight bool) ingestResult {
	b.Helper()
	t0 := time.Now().UnixMilli()
	conns := make([]*putConn, len(streams))
	for i, s := range streams {
		c, err := dialPut(addr, path, s, clip.header)
		if err != nil {
			b.Fatal(err)
		}
		if acks {
			if err := c.readResponse(); err != nil {
				b.Fatal(err)
			}
		}
		conns[i] = c
	}
	var total atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	errc := make(chan error, 2*len(conns))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, c := range conns {
		count := n / len(conns)
		if i < n%len(conns) {
			count++
		}
		sent := make([]atomic.Int64, count) // unix ns of each fragment's last byte
		persisted := make(chan struct{}, count)
		wg.Add(1)
		go func() { // writer
			defer wg.Done()
			var bytes int64
			for k := 0; k < count; k++ {
				head, blocks, _ := clip.fragment(k, t0)
				if err := c.writeChunk(head, blocks, endOfFragment); err != nil {
					errc <- err
					return
				}
				sent[k].Store(time.Now().UnixNano())
				bytes += int64(len(head) + len(blocks) + len(endOfFragment))
				if oneInFlight {
					<-persisted
				}
			}
			total.Add(bytes)
			if !acks {
				if err := c.endBody(); err != nil {
					errc <- err
					return
				}
				if err := c.readResponse(); err != nil {
					errc <- err
				}
			}
		}()
		if !acks {
			continue
		}
		wg.Add(1)
		go func() { // ack reader
			defer wg.Done()
			sc := bufio.NewScanner(c.resp.Body)
			var mine []time.Duration
			for k := 0; k < count; {
				if !sc.Scan() {
					errc <- fmt.Errorf("ack stream ended after %d PERSISTED of %d: %v", k, count, sc.Err())
					return
				}
				tc, ok, err := ackTimecode(sc.Bytes())
				if err != nil {
					errc <- err
					return
				}
				if !ok {
					continue
				}
				now := time.Now().UnixNano()
				if _, _, want := clip.fragment(k, t0); tc != want {
					errc <- fmt.Errorf("PERSISTED ack for timecode %d, want fragment %d's %d", tc, k, want)
					return
				}
				if s := sent[k].Load(); s != 0 {
					mine = append(mine, time.Duration(now-s))
				} else {
					mine = append(mine, 0) // acked before the write returned
				}
				persisted <- struct{}{}
				k++
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	for _, c := range conns {
		if acks {
			c.endBody()
			io.Copy(io.Discard, c.resp.Body)
		}
		c.c.Close()
	}
	return ingestResult{bytes: total.Load(), elapsed: elapsed, lat: lat}
}

func (r ingestResult) report(b *testing.B) {
	b.ReportMetric(float64(r.bytes)/1e6/r.elapsed.Seconds(), "MB/s")
	if len(r.lat) > 0 {
		slices.Sort(r.lat)
		q := func(f float64) float64 {
			return float64(r.lat[min(len(r.lat)-1, int(f*float64(len(r.lat))))]) / 1e6
		}
		b.ReportMetric(q(0.5), "p50-persist-ms")
		b.ReportMetric(q(0.99), "p99-persist-ms")
	}
}

type benchServer struct {
	URL   string
	Store *fragments.Store
}

// startBenchServer starts the real server stack on dir (SQLite index,
// payload files) on a loopback listener, closed when the benchmark ends.
// Unlike startTestServer it sets the handler before serving, so that it can
// run under -race.
func startBenchServer(b *testing.B, dir string) *benchServer {
	b.Helper()
	idx, err := sqlindex.Open(filepath.Join(dir, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := fragments.NewStore(idx, fragments.DiskPayloads{Dir: filepath.Join(dir, "payload")}, fragments.Config{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	url := "http://" + hs.Listener.Addr().String()
	srv := New(Config{PublicURL: url, Store: store, Logger: log})
	srv.SetReady()
	hs.Config.Handler = srv.Handler()
	hs.Start()
	b.Cleanup(func() {
		store.Drain()
		hs.CloseClientConnections()
		hs.Close()
		store.Close()
	})
	return &benchServer{URL: url, Store: store}
}

func BenchmarkIngest(b *testing.B) {
	short, long := loadBenchClips(b)
	names := make([]string, benchStreams)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%d", i)
	}
	b.Run("1s", func(b *testing.B) { benchIngest(b, short, names) })
	b.Run("10s", func(b *testing.B) { benchIngest(b, long, names) })
	b.Run("sqlite-commit", func(b *testing.B) { benchSQLiteCommit(b, short) })
}

func benchIngest(b *testing.B, clip *benchClip, names []string) {
	var avg int
	for _, cl := range clip.clusters {
		avg += 15 + len(cl.blocks) + len(endOfFragment)
	}
	b.Logf("%d-byte fragments on average, %d streams", avg/len(clip.clusters), benchStreams)
	kvsgate := func(oneInFlight, partial bool) func(b *testing.B) {
		return func(b *testing.B) {
			ts := startBenchServer(b, b.TempDir())
			for _, n := range names {
				st, err := ts.Store.CreateStream(fragments.NewStream{Name: n, RetentionHours: 24})
				if err != nil {
					b.Fatal(err)
				}
				if partial {
					// As if an LL-HLS viewer watched every stream: each
					// fragment in progress is copied to the partial feed.
					ts.Store.WantPartial(st.ID, time.Now())
				}
			}
			addr := ts.URL[len("http://"):]
			runIngest(b, clip, addr, "/putMedia", names, b.N, true, oneInFlight).report(b)
		}
	}
	b.Run("kvsgate-pipelined", kvsgate(false, false))
	b.Run("kvsgate-pipelined-partial-feed", kvsgate(false, true))
	b.Run("kvsgate-one-in-flight", kvsgate(true, false))
	copyTo := func(toFile bool) func(b *testing.B) {
		return func(b *testing.B) {
			dir := b.TempDir()
			var seq atomic.Int64
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var dst io.Writer = io.Discard
				if toFile {
					f, err := os.Create(filepath.Join(dir, fmt.Sprint(seq.Add(1))))
					if err != nil {
						http.Error(w, err.Error(), 500)
						return
					}
					defer f.Close()
					dst = f
				}
				if _, err := io.Copy(dst, r.Body); err != nil {
					http.Error(w, err.Error(), 500)
				}
			}))
			defer hs.Close()
			runIngest(b, clip, hs.Listener.Addr().String(), "/", names, b.N, false, false).report(b)
		}
	}
	b.Run("copy-to-file", copyTo(true))
	b.Run("copy-to-discard", copyTo(false))

	b.Run("fdatasync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "segment.mkv"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		block := bytes.Repeat([]byte{0x5A}, avg/len(clip.clusters))
		b.SetBytes(int64(len(block)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := f.Write(block); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The disk's ceiling for one fdatasync per fragment: 8 writers, each
	// appending fragment-sized blocks to its own file and syncing each.
	b.Run("fdatasync-8-files", func(b *testing.B) {
		dir := b.TempDir()
		block := bytes.Repeat([]byte{0x5A}, avg/len(clip.clusters))
		var wg sync.WaitGroup
		errc := make(chan error, benchStreams)
		b.ResetTimer()
		start := time.Now()
		for w := 0; w < benchStreams; w++ {
			count := b.N / benchStreams
			if w < b.N%benchStreams {
				count++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := os.Create(filepath.Join(dir, fmt.Sprint(w)))
				if err != nil {
					errc <- err
					return
				}
				defer f.Close()
				for i := 0; i < count; i++ {
					if _, err := f.Write(block); err != nil {
						errc <- err
						return
					}
					if err := unix.Fdatasync(int(f.Fd())); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		select {
		case err := <-errc:
			b.Fatal(err)
		default:
		}
		b.ReportMetric(float64(b.N)*float64(len(block))/1e6/elapsed.Seconds(), "MB/s")
	})
}

// benchSQLiteCommit: Index.Commit of one fragment.
func benchSQLiteCommit(b *testing.B, clip *benchClip) {
	{
		idx, err := sqlindex.Open(filepath.Join(b.TempDir(), "index.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer idx.Close()
		st := &fragments.Stream{Name: "s", ARN: "arn", Version: "1", Status: "ACTIVE", CreationTime: time.Now(), RetentionHours: 24}
		if err := idx.CreateStream(st); err != nil {
			b.Fatal(err)
		}
		seg, err := idx.NewSegment(st.ID)
		if err != nil {
			b.Fatal(err)
		}
		hdr := &fragments.Header{StreamID: st.ID, TimecodeScale: 1e6, Raw: clip.header}
		var m fragments.Meta
		for i := 0; i < 40; i++ {
			m.Samples = append(m.Samples, fragments.Sample{PTS: int64(i) * 25e6, Dur: 25e6, Offset: int64(i) * 3000, Size: 3000})
		}
		meta := fragments.AppendMeta(nil, &m)
		now := time.Now().UnixNano()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f := &fragments.Fragment{StreamID: st.ID, Number: uint64(now) + uint64(i), ServerNS: now + int64(i), ProducerNS: now + int64(i), SegmentID: seg, Size: 130000}
			if err := idx.Commit([]*fragments.Pending{{Fragment: f, Meta: meta, Header: hdr}}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkListFragments times ListFragments pages of 1000 fragments at
// random places of a stream "bench" of evenly spaced (2 s) fragments, as
// `go run ./cmd/kvsgate-bench listfragments` generates (1,000,000 of them by
// default); in process (Index.Fragments) and over loopback HTTP (the
// handler, JSON encoding included; the client only discards the body).
// Skipped unless KVSGATE_BENCH_DATA names that data dir:
//
//	KVSGATE_BENCH_DATA=/tmp/kvsgate-bench-1m go test ./web -run '^$' -bench '^BenchmarkListFragments$' -benchtime 1000x
func BenchmarkListFragments(b *testing.B) {
	dir := os.Getenv("KVSGATE_BENCH_DATA")
	if dir == "" {
		b.Skip("KVSGATE_BENCH_DATA is not set: make a data dir with `go run ./cmd/kvsgate-bench listfragments` first")
	}
	ts := startBenchServer(b, dir)
	st, err := ts.Store.Stream("bench", "")
	if err != nil {
		b.Fatal(err)
	}
	first, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, To: 1<<63 - 1, AfterTS: -1, Limit: 1})
	if err != nil || len(first) != 1 {
		b.Fatalf("no fragments: %v", err)
	}
	count, err := ts.Store.Index.LastOrdinal(st.ID)
	if err != nil {
		b.Fatal(err)
	}
	const page, spacing = 1000, int64(2 * time.Second)
	rng := rand.New(rand.NewPCG(1, 2))
	query := func(by fragments.Selector) fragments.FragmentQuery {
		from := first[0].ServerNS + rng.Int64N((count-2*page)*spacing)
		if by == fragments.ByProducer {
			from -= int64(1500 * time.Millisecond)
		}
		return fragments.FragmentQuery{StreamID: st.ID, By: by, From: from, To: from + 3*page*spacing, AfterTS: -1, Limit: page}
	}
	for _, by := range []fragments.Selector{fragments.ByServer, fragments.ByProducer} {
		name := map[fragments.Selector]string{fragments.ByServer: "SERVER_TIMESTAMP", fragments.ByProducer: "PRODUCER_TIMESTAMP"}[by]
		b.Run("index/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				q := query(by)
				q.Limit = page + 1 // as the handler asks
				if got, err := ts.Store.Index.Fragments(q); err != nil || len(got) != q.Limit {
					b.Fatalf("%d fragments, %v", len(got), err)
				}
			}
		})
		b.Run("http/"+name, func(b *testing.B) {
			client := &http.Client{}
			for i := 0; i < b.N; i++ {
				q := query(by)
				body := fmt.Sprintf(`{"StreamName":"bench","MaxResults":%d,"FragmentSelector":{"FragmentSelectorType":%q,"TimestampRange":{"StartTimestamp":%d.%09d,"EndTimestamp":%d.%09d}}}`,
					page, name, q.From/1e9, q.From%1e9, q.To/1e9, q.To%1e9)
				resp, err := client.Post(ts.URL+"/listFragments", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n < page*100 {
					b.Fatalf("%s, %d bytes", resp.Status, n)
				}
			}
		})
	}
}
