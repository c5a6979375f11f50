// Package producer is a PutMedia client: it streams a Matroska file into a
// KVS endpoint the way the KVS producers do (a chunked body, one write per
// frame, acks read while sending), optionally paced in real time and looped.
// `kvsgate put` and `kvsgate serve --demo` use it.
package producer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// Options configure a Put.
type Options struct {
	Endpoint string // e.g. http://127.0.0.1:8080
	Stream   string
	Create   bool // create the stream first (an existing one is fine)
	Realtime bool // pace frames by their timecodes
	Loop     bool // start over at the end, timecodes shifted to continue
	// RetentionHours for a created stream (default 24).
	RetentionHours int
	// Credentials sign requests with SigV4 when set.
	Credentials *aws.Credentials
	Region      string
	Client      *http.Client
	// OnAck is called for every ack received.
	OnAck func(Ack)
}

// Ack is a PutMedia acknowledgement as received.
type Ack struct {
	EventType        string
	FragmentTimecode int64
	FragmentNumber   string
	ErrorId          int
	ErrorCode        string
}

// Stats counts what a Put did.
type Stats struct {
	Bytes    int64
	Clusters int
	Acks     map[string]int
}

// clip is a parsed Matroska file: its header and clusters re-framed.
type clip struct {
	header   []byte // EBML header, Segment (unknown size), Info, Tracks
	scale    int64
	clusters []cluster
	duration int64 // timecode units, first cluster to the end of the last
}

type cluster struct {
	timecode int64
	blocks   []block // raw cluster children except the Timecode
	// tags are the Segment-level Tags elements of the cluster in the file:
	// those after it (fragment metadata, as the KVS producers send it), or
	// before it when they open its fragment (GetMedia output), sent after
	// its frames as the KVS producers do.
	tags [][]byte
}

type block struct {
	raw []byte
	rel int64 // frame time relative to the cluster timecode (0 for non-blocks)
}

// load reads a Matroska file into memory (sample clips are small).
func load(r io.Reader) (*clip, error) {
	rd := mkv.NewReader(r)
	c := &clip{scale: 1000000}
	var cur *cluster
	// Tags that belong to the next cluster: those before the first, and a
	// GetMedia output's, which open a fragment (its fragment number)
	// rather than follow one.
	var pending [][]byte
	spans := map[uint64]*trackSpan{}
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch ev.Kind {
		case mkv.KindEBMLHeader:
			if c.header != nil {
				return nil, errors.New("producer: one stream header per file is supported")
			}
			c.header = append(c.header, ev.Raw...)
		case mkv.KindSegment:
			c.header = append(c.header, 0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
		case mkv.KindTracks:
			c.scale = ev.Header.TimecodeScale
			// Info is not reported as an event: rebuild it with the scale.
			c.header = append(c.header, infoElement(c.scale)...)
			c.header = append(c.header, ev.Raw...)
		case mkv.KindClusterStart:
			c.clusters = append(c.clusters, cluster{tags: pending})
			cur, pending = &c.clusters[len(c.clusters)-1], nil
		case mkv.KindTags:
			t := forwardTags(ev.Raw, ev.Tags)
			opens := slices.ContainsFunc(ev.Tags, func(t mkv.SimpleTag) bool { return t.Name == fragmentNumberTag })
			switch {
			case t == nil:
			case cur == nil || opens:
				pending = append(pending, t)
			default:
				cur.tags = append(cur.tags, t)
			}
		case mkv.KindTimecode:
			cur.timecode = ev.Timecode
		case mkv.KindBlock:
			rel := int64(ev.Block.Timecode)
			cur.blocks = append(cur.blocks, block{raw: bytes.Clone(ev.Raw), rel: rel})
			at := cur.timecode + rel
			if sp := spans[ev.Block.Track]; sp == nil {
				spans[ev.Block.Track] = &trackSpan{first: at, last: at, n: 1}
			} else {
				sp.first, sp.last, sp.n = min(sp.first, at), max(sp.last, at), sp.n+1
			}
		}
	}
	if len(c.clusters) == 0 {
		return nil, errors.New("producer: no clusters in the file")
	}
	if len(spans) == 0 {
		return nil, errors.New("producer: no frames in the file")
	}
	c.duration = passLength(spans)
	return c, nil
}

// endOfFragment is the tag that ends a fragment (a KVS producer may send it
// after a cluster); the only AWS_ tag PutMedia accepts.
const endOfFragment = "AWS_KINESISVIDEO_END_OF_FRAGMENT"

// fragmentNumberTag starts a fragment's tags in GetMedia output, before its cluster.
const fragmentNumberTag = "AWS_KINESISVIDEO_FRAGMENT_NUMBER"

// forwardTags is the Tags element to send for one in the file: as it is
// when PutMedia accepts all its tags, else rebuilt without the AWS_ tags it
// refuses (a GetMedia output's fragment numbers and timestamps), nil when
// none is left.
func forwardTags(raw []byte, tags []mkv.SimpleTag) []byte {
	keep := make([]mkv.SimpleTag, 0, len(tags))
	for _, t := range tags {
		if !strings.HasPrefix(t.Name, "AWS_") || t.Name == endOfFragment {
			keep = append(keep, t)
		}
	}
	switch {
	case len(keep) == 0:
		return nil
	case len(keep) == len(tags):
		return bytes.Clone(raw)
	}
	return mkv.Tags(keep)
}

// trackSpan is one track's frames in a file: the earliest and the latest
// frame's timecode and the frame count.
type trackSpan struct{ first, last, n int64 }

// passLength is how far a loop pass shifts timecodes: the longest track's
// length, each track measured from its first frame to one frame interval
// (its average) past its last. Every frame of the next pass then comes
// after every frame of this one on each track (PutMedia's rule 4004), and
// the longest track continues without a gap: the others, a little shorter,
// get a gap of the difference (the demo clip: its audio lasts 10.026 s, its
// video 10 s, which gets a 26 ms gap, less than the 50 ms that players and
// discontinuity rules tolerate). Measuring from the earliest frame of any
// track to the latest of any, with the average interval of all frames,
// mixed the tracks: the demo's audio overlapped itself by 8 ms at every
// pass.
func passLength(tracks map[uint64]*trackSpan) int64 {
	var longest int64 = 1
	for _, sp := range tracks {
		l := sp.last - sp.first
		if sp.n > 1 {
			l += max(1, l/(sp.n-1))
		}
		longest = max(longest, l)
	}
	return longest
}

func infoElement(scale int64) []byte {
	body := []byte{0x2A, 0xD7, 0xB1, 0x88}
	body = appendUint64(body, uint64(scale))
	return append([]byte{0x15, 0x49, 0xA9, 0x66, 0x80 | byte(len(body))}, body...)
}

func appendUint64(b []byte, v uint64) []byte {
	for i := 7; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// Put streams the file to the endpoint and returns when every fragment was
// acked (or an error ack or failure ended it). With Loop it runs until ctx ends.
func Put(ctx context.Context, file io.Reader, o Options) (*Stats, error) {
	c, err := load(file)
	if err != nil {
		return nil, err
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Region == "" {
		o.Region = "us-west-2"
	}
	if o.Create {
		if o.RetentionHours == 0 {
			o.RetentionHours = 24
		}
		err := o.call(ctx, "/createStream", map[string]any{"StreamName": o.Stream, "MediaType": "video/h264", "DataRetentionInHours": o.RetentionHours}, nil)
		if err != nil && !strings.Contains(err.Error(), "ResourceInUseException") {
			return nil, err
		}
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.Endpoint, "/")+"/putMedia", pr)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	req.Header.Set("x-amzn-stream-name", o.Stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "RELATIVE")
	req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%d.%03d", start.Unix(), start.Nanosecond()/1e6))
	req.Header.Set("x-amzn-fragment-acknowledgment-required", "1")
	if err := o.sign(ctx, req, nil); err != nil {
		return nil, err
	}
	stats := &Stats{Acks: map[string]int{}}
	go func() {
		pw.CloseWithError(o.send(ctx, pw, c, start, stats))
	}()
	resp, err := o.Client.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return stats, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		pr.CloseWithError(errors.New("rejected"))
		return stats, fmt.Errorf("putMedia: %s: %s", resp.Status, b)
	}
	// The server ends the response once the body has ended and the last
	// fragment is acked.
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var a Ack
		if json.Unmarshal(sc.Bytes(), &a) != nil {
			continue
		}
		stats.Acks[a.EventType]++
		if o.OnAck != nil {
			o.OnAck(a)
		}
		if a.EventType == "ERROR" {
			err := fmt.Errorf("error ack %d %s for fragment %s", a.ErrorId, a.ErrorCode, a.FragmentNumber)
			pr.CloseWithError(err)
			return stats, err
		}
	}
	return stats, sc.Err()
}

// send writes the stream: the header, then every cluster, one write per
// frame like a camera, with unknown sizes as the KVS C producer writes them.
func (o *Options) send(ctx context.Context, w io.Writer, c *clip, start time.Time, stats *Stats) error {
	if _, err := w.Write(c.header); err != nil {
		return err
	}
	first := c.clusters[0].timecode
	var shift int64
	for {
		for _, cl := range c.clusters {
			tc := cl.timecode - first + shift
			hdr := []byte{0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x88}
			hdr = appendUint64(hdr, uint64(tc))
			if err := o.wait(ctx, start, tc*c.scale); err != nil {
				return err
			}
			if _, err := w.Write(hdr); err != nil {
				return err
			}
			stats.Bytes += int64(len(hdr))
			for _, b := range cl.blocks {
				if err := o.wait(ctx, start, (tc+b.rel)*c.scale); err != nil {
					return err
				}
				if _, err := w.Write(b.raw); err != nil {
					return err
				}
				stats.Bytes += int64(len(b.raw))
			}
			// Tags end the cluster (its size is unknown) and belong to it.
			for _, t := range cl.tags {
				if _, err := w.Write(t); err != nil {
					return err
				}
				stats.Bytes += int64(len(t))
			}
			stats.Clusters++
		}
		if !o.Loop {
			return nil
		}
		shift += c.duration
	}
}

func (o *Options) wait(ctx context.Context, start time.Time, at int64) error {
	if !o.Realtime {
		return ctx.Err()
	}
	d := time.Until(start.Add(time.Duration(at)))
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var emptySHA256 = hex.EncodeToString(func() []byte { s := sha256.Sum256(nil); return s[:] }())

// sign signs req with SigV4 if credentials are set; body nil means a
// streamed body, signed with the empty payload hash as the KVS C producer does.
func (o *Options) sign(ctx context.Context, req *http.Request, body []byte) error {
	if o.Credentials == nil {
		return nil
	}
	hash := emptySHA256
	if body != nil {
		s := sha256.Sum256(body)
		hash = hex.EncodeToString(s[:])
	}
	return v4.NewSigner().SignHTTP(ctx, *o.Credentials, req, hash, "kinesisvideo", o.Region, time.Now())
}

// call makes one AWS JSON API call.
func (o *Options) call(ctx context.Context, path string, in, out any) error {
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.Endpoint, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := o.sign(ctx, req, body); err != nil {
		return err
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", path, resp.Header.Get("x-amzn-ErrorType"), b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Progress renders a one-line progress display of acks and bytes.
type Progress struct {
	mu   sync.Mutex
	acks map[string]int
	W    io.Writer
}

// OnAck counts an ack and redraws the line.
func (p *Progress) OnAck(a Ack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.acks == nil {
		p.acks = map[string]int{}
	}
	p.acks[a.EventType]++
	bar := strings.Repeat("#", min(p.acks["PERSISTED"], 40))
	fmt.Fprintf(p.W, "\r[%-40s] buffering %d received %d persisted %d errors %d idle %d",
		bar, p.acks["BUFFERING"], p.acks["RECEIVED"], p.acks["PERSISTED"], p.acks["ERROR"], p.acks["IDLE"])
	if a.EventType == "ERROR" {
		fmt.Fprintf(p.W, "\nerror ack: %d %s (fragment %s, timecode %s)\n", a.ErrorId, a.ErrorCode, a.FragmentNumber, strconv.FormatInt(a.FragmentTimecode, 10))
	}
}
