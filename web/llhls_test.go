package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// llProducer is a PutMedia connection the test writes to piece by piece,
// reading its acks as they come.
type llProducer struct {
	t    *testing.T
	w    *io.PipeWriter
	acks chan map[string]any
	base int64 // producer time of the first fragment, ms
}

func newLLProducer(t *testing.T, ts *testServer, stream string) *llProducer {
	t.Helper()
	if resp, b := gmPost(t, ts.URL, "/createStream", map[string]any{"StreamName": stream, "DataRetentionInHours": 24}); resp.StatusCode != 200 {
		t.Fatalf("createStream: %s", b)
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", ts.URL+"/putMedia", pr)
	req.Header.Set("x-amzn-stream-name", stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
	p := &llProducer{t: t, w: pw, acks: make(chan map[string]any, 100), base: time.Now().Add(-time.Minute).UnixMilli()}
	go func() {
		defer close(p.acks)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var a map[string]any
			if json.Unmarshal(sc.Bytes(), &a) == nil && a["EventType"] != "IDLE" {
				p.acks <- a
			}
		}
	}()
	t.Cleanup(func() { pw.Close() })
	header := mkv.EBMLHeader()
	header = mkv.AppendUnknownSizeHeader(header, mkv.IDSegment)
	header = append(header, mkv.Info(1000000)...)
	p.write(append(header, mkv.Tracks([]mkv.Track{hlsVideo, hlsAudio})...))
	return p
}

func (p *llProducer) write(b []byte) {
	p.t.Helper()
	if _, err := p.w.Write(b); err != nil {
		p.t.Fatalf("putMedia body: %v", err)
	}
}

// ack waits for the next ack of type typ (others before it are skipped)
// and returns its fragment number.
func (p *llProducer) ack(typ string) string {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case a, ok := <-p.acks:
			if !ok {
				p.t.Fatalf("putMedia ended waiting for %s", typ)
			}
			if a["EventType"] == typ {
				n, _ := a["FragmentNumber"].(string)
				return n
			}
			if a["EventType"] == "ERROR" {
				p.t.Fatalf("putMedia: error ack %v waiting for %s", a, typ)
			}
		case <-timeout:
			p.t.Fatalf("no %s ack", typ)
		}
	}
}

// frames writes 25 fps video frames from..to-1 of the fragment starting
// at startMS (a key frame at 0) and the 48 kHz AAC frames of their span.
func (p *llProducer) frames(from, to int) {
	var b []byte
	for k := from; k < to; k++ {
		b = append(b, mkv.SimpleBlock(1, int16(k*40), k == 0, bytes.Repeat([]byte{byte(k)}, 500))...)
		for a := int64(k) * 40 * 48 / 1024; a < int64(k+1)*40*48/1024; a++ {
			b = append(b, mkv.SimpleBlock(2, int16(a*1024/48), true, []byte{0x21, byte(a)})...)
		}
	}
	p.write(b)
}

// fragment writes a whole 1 s fragment (25 frames) n, and returns its number
// once it is PERSISTED.
func (p *llProducer) fragment(n int) string {
	p.start(n)
	p.frames(0, 25)
	p.end()
	return p.ack("PERSISTED")
}

func (p *llProducer) start(n int) string {
	p.write(mkv.ClusterStart(uint64(p.base + int64(n)*1000)))
	return p.ack("BUFFERING")
}

func (p *llProducer) end() {
	p.write(mkv.Tags([]mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}}))
}

var (
	reMediaSequence = regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)
	reSegment       = regexp.MustCompile(`(?m)^getMP4MediaFragment\.mp4\?FragmentNumber=(\d+)`)
)

// llSegments returns a playlist's media sequence number of each whole
// segment's fragment number, and the fragment number of the segment in
// progress with its parts listed (its number "" if none).
func llSegments(t *testing.T, pl string) (msn map[string]int64, open string, parts int) {
	t.Helper()
	m := reMediaSequence.FindStringSubmatch(pl)
	if m == nil {
		t.Fatalf("no media sequence in\n%s", pl)
	}
	first, _ := strconv.ParseInt(m[1], 10, 64)
	msn = map[string]int64{}
	for i, s := range reSegment.FindAllStringSubmatch(pl, -1) {
		msn[s[1]] = first + int64(i)
	}
	tail := pl[strings.LastIndex(pl, "#EXTINF"):]
	for _, l := range strings.Split(tail, "\n") {
		if strings.HasPrefix(l, "#EXT-X-PART:") {
			parts++
			open = reNumber.FindStringSubmatch(l)[1]
		}
	}
	return msn, open, parts
}

// TestLLHLSLive drives a LIVE fMP4 session's low-latency playlists while a
// producer sends a fragment piece by piece: golden playlists with the
// fragment in progress, blocking reloads that return when the part lands,
// parts served from memory and then (the same bytes) from storage, the
// media sequence number of the fragment in progress kept once it is
// complete, a fragment that fails never listed again, and the errors.
func TestLLHLSLive(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	h := hlsClient{t, ts}
	p := newLLProducer(t, ts, "ll")
	var numbers []string
	for n := range 3 {
		numbers = append(numbers, p.fragment(n))
	}
	status, typ, master := h.sessionURL(map[string]any{"StreamName": "ll", "MaxMediaPlaylistFragmentResults": 3,
		"HLSFragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP"}})
	if status != 200 {
		t.Fatalf("session: %d %s", status, typ)
	}
	media := func(track int, query string) string {
		return strings.Replace(master, "getHLSMasterPlaylist.m3u8?", fmt.Sprintf("getHLSMediaPlaylist.m3u8?TrackNumber=%d&%s", track, query), 1)
	}
	get := func(u string) (int, string) {
		t.Helper()
		resp, b := h.get(u)
		return resp.StatusCode, string(b)
	}
	_, pl := get(media(1, ""))
	msn, _, _ := llSegments(t, pl)
	next := msn[numbers[2]] + 1 // the fragment about to start

	// The fragment in progress: 10 frames (400 ms) complete its first part
	// of each track (0.24 s of video, 0.235 s of audio) and no more.
	numbers = append(numbers, p.start(3))
	p.frames(0, 10)
	for track := 1; track <= 2; track++ {
		code, pl := get(media(track, fmt.Sprintf("_HLS_msn=%d&_HLS_part=0&", next)))
		if code != 200 {
			t.Fatalf("blocking reload: %d %s", code, pl)
		}
		checkM3U8(t, pl)
		golden(t, fmt.Sprintf("ll-live-track-%d.m3u8", track), normalize(pl, numbers))
	}

	// A blocking reload for part 1 returns once it lands: the frames that
	// complete it are sent after the request.
	type reply struct {
		code int
		pl   string
	}
	got := make(chan reply, 1)
	go func() {
		resp, err := http.Get(media(1, fmt.Sprintf("_HLS_msn=%d&_HLS_part=1&", next)))
		if err != nil {
			got <- reply{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- reply{resp.StatusCode, string(b)}
	}()
	p.frames(10, 20)
	r := <-got
	if r.code != 200 || !strings.Contains(r.pl, "FragmentNumber="+numbers[3]+"&Part=1&") {
		t.Fatalf("blocking reload for part 1: %d\n%s", r.code, r.pl)
	}
	if _, open, parts := llSegments(t, r.pl); open != numbers[3] || parts < 2 {
		t.Fatalf("in progress: fragment %s with %d parts, want %s with 2 or more:\n%s", open, parts, numbers[3], r.pl)
	}

	// Part 0 from memory now, from storage once the fragment is stored:
	// the same bytes; and the fragment keeps its media sequence number.
	partURL := strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getMP4MediaFragment.mp4?FragmentNumber="+numbers[3]+"&Part=0&TrackNumber=1&", 1)
	resp, inProgress := h.get(partURL)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" || len(inProgress) < 6*500 {
		t.Fatalf("part 0 in progress: %d %s (%d bytes)", resp.StatusCode, resp.Header.Get("Content-Type"), len(inProgress))
	}
	// The preload hint at a fragment's end names part 0 of the next one by
	// its predecessor.
	hinted := strings.Replace(partURL, "FragmentNumber="+numbers[3], "AfterFragmentNumber="+numbers[2], 1)
	if resp, b := h.get(hinted); resp.StatusCode != 200 || !bytes.Equal(b, inProgress) {
		t.Fatalf("AfterFragmentNumber: %d, the same bytes as part 0: %v", resp.StatusCode, bytes.Equal(b, inProgress))
	}
	p.frames(20, 25)
	p.end()
	p.ack("PERSISTED")
	code, pl := get(media(1, fmt.Sprintf("_HLS_msn=%d&", next)))
	if msn, _, _ := llSegments(t, pl); code != 200 || msn[numbers[3]] != next {
		t.Fatalf("fragment %s listed at media sequence %d, in progress it was %d:\n%s", numbers[3], msn[numbers[3]], next, pl)
	}
	resp, stored := h.get(partURL)
	if resp.StatusCode != 200 || !bytes.Equal(stored, inProgress) {
		t.Fatalf("part 0 from storage: %d, %d bytes, the same as in progress: %v", resp.StatusCode, len(stored), bytes.Equal(stored, inProgress))
	}

	// A fragment that fails mid-way: listed while it arrives, never after.
	numbers = append(numbers, p.start(4))
	p.frames(0, 10)
	code, pl = get(media(1, fmt.Sprintf("_HLS_msn=%d&_HLS_part=0&", next+1)))
	if _, open, _ := llSegments(t, pl); code != 200 || open != numbers[4] {
		t.Fatalf("fragment in progress not listed: %d\n%s", code, pl)
	}
	p.write(mkv.SimpleBlock(7, 400, false, []byte{1, 2, 3})) // track 7 is not in Tracks: error ack
	p.ack("ERROR")
	code, pl = get(media(1, ""))
	if code != 200 || strings.Contains(pl, "FragmentNumber="+numbers[4]) {
		t.Fatalf("the failed fragment is still listed: %d\n%s", code, pl)
	}
	failedPart := strings.Replace(partURL, "FragmentNumber="+numbers[3], "FragmentNumber="+numbers[4], 1)
	if resp, b := h.get(failedPart); resp.StatusCode != 404 {
		t.Fatalf("part of the failed fragment: %d %s", resp.StatusCode, b)
	}

	// Errors: a segment more than two past the end (400), _HLS_part
	// without _HLS_msn (400), malformed values (400), a part that never
	// comes (503 after three target durations), a part index beyond a
	// stored fragment's parts (404).
	for _, c := range []struct {
		query string
		code  int
	}{
		{fmt.Sprintf("_HLS_msn=%d&_HLS_part=0&", next+10), 400},
		{"_HLS_part=1&", 400},
		{"_HLS_msn=x&", 400},
		{fmt.Sprintf("_HLS_msn=%d&_HLS_part=-1&", next), 400},
	} {
		if code, b := get(media(1, c.query)); code != c.code {
			t.Errorf("%s: %d %s, want %d", c.query, code, b, c.code)
		}
	}
	start := time.Now()
	if code, b := get(media(1, fmt.Sprintf("_HLS_msn=%d&_HLS_part=0&", next+1))); code != 503 || time.Since(start) < 2*time.Second {
		t.Errorf("blocking reload nothing answers: %d after %s: %s", code, time.Since(start), b)
	}
	if resp, b := h.get(strings.Replace(partURL, "&Part=0&", "&Part=99&", 1)); resp.StatusCode != 404 {
		t.Errorf("part 99: %d %s", resp.StatusCode, b)
	}

	// A blocking request ends with its client.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", media(1, fmt.Sprintf("_HLS_msn=%d&_HLS_part=0&", next+1)), nil)
	start = time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil || time.Since(start) > time.Second {
		t.Errorf("cancelled blocking request: %v after %s", err, time.Since(start))
	}
}
