package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/kvsgate/kvsgate/session/limits"
	"github.com/labstack/echo/v4"
)

// fakeClock drives a test server's limiter: tests move it by hand, so
// bursts and refills are exact whatever the machine's speed.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// limitsEnv is a server with limits on, a fake clock, and the demo clip
// (10 fragments) in stream "cam" and "other".
type limitsEnv struct {
	t     *testing.T
	ts    *testServer
	clock *fakeClock
	nums  []string // cam's fragment numbers
}

func newLimitsEnv(t *testing.T, lc limits.Config) *limitsEnv {
	t.Helper()
	clock := newFakeClock()
	ts := newLimitedTestServer(t, lc, clock.Now)
	e := &limitsEnv{t: t, ts: ts, clock: clock}
	clip := filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv")
	e.nums = gmIngest(t, ts, "cam", clip, 1)
	gmIngest(t, ts, "other", clip, 1)
	clock.Advance(10 * time.Second) // every bucket full again
	return e
}

// with is the env for a subtest.
func (e *limitsEnv) with(t *testing.T) *limitsEnv {
	c := *e
	c.t = t
	return &c
}

// post is a JSON API call.
func (e *limitsEnv) post(path string, body any) (*http.Response, []byte) {
	e.t.Helper()
	return gmPost(e.t, e.ts.URL, path, body)
}

// get is a GET of a playback resource.
func (e *limitsEnv) get(u string) (*http.Response, []byte) {
	e.t.Helper()
	return hlsClient{e.t, e.ts}.get(u)
}

// burst makes n calls at one instant of the limiter's clock and checks that
// exactly the first allowed succeed and the rest are refused with typ,
// naming limit.
func (e *limitsEnv) burst(n, allowed int, typ, limit string, call func() (*http.Response, []byte)) {
	e.t.Helper()
	for i := range n {
		resp, b := call()
		if i < allowed {
			if resp.StatusCode != 200 {
				e.t.Fatalf("call %d of %d (allowed %d): %d %s", i+1, n, allowed, resp.StatusCode, b)
			}
			continue
		}
		checkThrottled(e.t, resp, b, typ, limit)
	}
}

// checkThrottled checks a refusal: 400, the exception in the header and
// the body, the limit named in the message, Retry-After for rates.
func checkThrottled(t *testing.T, resp *http.Response, b []byte, typ, limit string) {
	t.Helper()
	var body struct {
		Type    string `json:"__type"`
		Message string
	}
	json.Unmarshal(b, &body)
	if resp.StatusCode != 400 || resp.Header.Get("x-amzn-ErrorType") != typ || body.Type != typ || !strings.Contains(body.Message, limit) {
		t.Fatalf("want 400 %s naming %s: %d %s %s", typ, limit, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b)
	}
	ra := resp.Header.Get("Retry-After")
	if !strings.HasSuffix(limit, "-connections") {
		if n, err := strconv.Atoi(ra); err != nil || n < 1 {
			t.Fatalf("Retry-After %q", ra)
		}
	} else if ra != "" {
		t.Fatalf("Retry-After %q on a connection limit", ra)
	}
	if resp.Header.Get("x-amzn-RequestId") == "" {
		t.Fatal("no request id")
	}
}

// onDemand returns a new ON_DEMAND HLS session of a stream's last 10 min.
func (e *limitsEnv) onDemand(stream string, extra map[string]any) string {
	e.t.Helper()
	now := time.Now().Unix()
	body := map[string]any{"StreamName": stream, "PlaybackMode": "ON_DEMAND",
		"HLSFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
			"TimestampRange": map[string]any{"StartTimestamp": now - 600, "EndTimestamp": now + 60}}}
	for k, v := range extra {
		body[k] = v
	}
	code, typ, u := hlsClient{e.t, e.ts}.sessionURL(body)
	if code != 200 {
		e.t.Fatalf("GetHLSStreamingSessionURL: %d %s", code, typ)
	}
	return u
}

func resource(master, name, query string) string {
	return strings.Replace(master, "getHLSMasterPlaylist.m3u8?", name+"?"+query+"&", 1)
}

const clientLimit, connLimit = "ClientLimitExceededException", "ConnectionLimitExceededException"

// TestLimitsBursts: with the guide's defaults, a burst against each limit
// is admitted exactly as far as the bucket allows and refused beyond with
// ClientLimitExceededException (or ConnectionLimitExceededException);
// buckets refill with time; one stream's or session's traffic never
// throttles another's.
func TestLimitsBursts(t *testing.T) {
	e := newLimitsEnv(t, limits.Default())
	refill := func() { e.clock.Advance(10 * time.Second) }

	t.Run("control plane, per stream and per account", func(t *testing.T) {
		e := e.with(t)
		refill()
		e.burst(6, 5, clientLimit, "describe-stream-tps", func() (*http.Response, []byte) {
			return e.post("/describeStream", map[string]any{"StreamName": "cam"})
		})
		if resp, b := e.post("/describeStream", map[string]any{"StreamName": "other"}); resp.StatusCode != 200 {
			t.Fatalf("other stream throttled: %s", b)
		}
		e.burst(51, 50, clientLimit, "list-streams-account-tps", func() (*http.Response, []byte) {
			return e.post("/listStreams", map[string]any{})
		})
		// CreateStream: 50 a second; the 51st is refused and creates nothing.
		i := 0
		e.burst(51, 50, clientLimit, "create-stream-account-tps", func() (*http.Response, []byte) {
			i++
			return e.post("/createStream", map[string]any{"StreamName": fmt.Sprintf("s%d", i)})
		})
		if resp, _ := e.post("/describeStream", map[string]any{"StreamName": "s51"}); resp.StatusCode != 404 {
			t.Fatalf("refused CreateStream created its stream: %d", resp.StatusCode)
		}
		// TagResource is TagStream by ARN: they share a stream's 5 TPS.
		e.clock.Advance(time.Second)
		_, b := e.post("/describeStream", map[string]any{"StreamName": "other"})
		var d struct{ StreamInfo struct{ StreamARN string } }
		json.Unmarshal(b, &d)
		e.burst(3, 3, clientLimit, "", func() (*http.Response, []byte) {
			return e.post("/tagStream", map[string]any{"StreamName": "other", "Tags": map[string]string{"a": "b"}})
		})
		e.burst(3, 2, clientLimit, "tag-stream-tps", func() (*http.Response, []byte) {
			return e.post("/TagResource", map[string]any{"ResourceARN": d.StreamInfo.StreamARN, "Tags": []map[string]string{{"Key": "c", "Value": "d"}}})
		})
	})

	t.Run("PutMedia 5 TPS per stream", func(t *testing.T) {
		e := e.with(t)
		refill()
		e.burst(6, 5, clientLimit, "put-media-tps", func() (*http.Response, []byte) {
			req, _ := http.NewRequest("POST", e.ts.URL+"/putMedia", bytes.NewReader(nil))
			req.Header.Set("x-amzn-stream-name", "cam")
			req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			buf.ReadFrom(resp.Body)
			return resp, buf.Bytes()
		})
	})

	t.Run("ListFragments metadata credits, refill, other stream", func(t *testing.T) {
		e := e.with(t)
		refill()
		list := func(stream string, n int) func() (*http.Response, []byte) {
			return func() (*http.Response, []byte) {
				return e.post("/listFragments", map[string]any{"StreamName": stream, "MaxResults": n})
			}
		}
		e.burst(11, 10, clientLimit, "fragment-metadata-credits", list("cam", 1000))
		e.burst(1, 1, clientLimit, "", list("other", 1000))
		// 10,000 a second: 100 ms give back 1000, and not one more.
		e.clock.Advance(100 * time.Millisecond)
		e.burst(2, 1, clientLimit, "fragment-metadata-credits", list("cam", 1000))
		e.clock.Advance(time.Millisecond)
		e.burst(2, 1, clientLimit, "fragment-metadata-credits", list("cam", 10))
	})

	t.Run("session URLs 25 TPS per stream", func(t *testing.T) {
		e := e.with(t)
		refill()
		now := time.Now().Unix()
		body := map[string]any{"StreamName": "cam", "PlaybackMode": "ON_DEMAND",
			"HLSFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
				"TimestampRange": map[string]any{"StartTimestamp": now - 600, "EndTimestamp": now + 60}}}
		e.burst(26, 25, clientLimit, "get-hls-streaming-session-url-tps", func() (*http.Response, []byte) {
			return e.post("/getHLSStreamingSessionURL", body)
		})
		dash := map[string]any{"StreamName": "cam", "PlaybackMode": "ON_DEMAND",
			"DASHFragmentSelector": body["HLSFragmentSelector"]}
		e.burst(26, 25, clientLimit, "get-dash-streaming-session-url-tps", func() (*http.Response, []byte) {
			return e.post("/getDASHStreamingSessionURL", dash)
		})
	})

	t.Run("session resources", func(t *testing.T) {
		e := e.with(t)
		refill()
		master := e.onDemand("cam", map[string]any{"MaxMediaPlaylistFragmentResults": 10})
		get := func(u string) func() (*http.Response, []byte) {
			return func() (*http.Response, []byte) { return e.get(u) }
		}
		e.burst(6, 5, clientLimit, "get-hls-master-playlist-tps", get(master))
		e.burst(6, 5, clientLimit, "get-hls-media-playlist-tps", get(resource(master, "getHLSMediaPlaylist.m3u8", "TrackNumber=1")))
		q := "FragmentNumber=" + e.nums[0] + "&TrackNumber=1"
		e.burst(6, 5, clientLimit, "get-mp4-init-fragment-tps", get(resource(master, "getMP4InitFragment.mp4", q)))
		e.burst(21, 20, clientLimit, "get-mp4-media-fragment-tps", get(resource(master, "getMP4MediaFragment.mp4", q)))
		// Another session of the stream has its own.
		other := e.onDemand("cam", nil)
		e.burst(20, 20, clientLimit, "", get(resource(other, "getMP4MediaFragment.mp4", q)))
		ts := e.onDemand("cam", map[string]any{"ContainerFormat": "MPEG_TS"})
		e.burst(21, 20, clientLimit, "get-ts-fragment-tps", get(resource(ts, "getTSFragment.ts", "FragmentNumber="+e.nums[0])))

		now := time.Now().Unix()
		code, typ, dash := dashClient{hlsClient{t, e.ts}}.sessionURL(map[string]any{"StreamName": "cam", "PlaybackMode": "ON_DEMAND",
			"DASHFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
				"TimestampRange": map[string]any{"StartTimestamp": now - 600, "EndTimestamp": now + 60}}})
		if code != 200 {
			t.Fatalf("GetDASHStreamingSessionURL: %d %s", code, typ)
		}
		e.burst(6, 5, clientLimit, "get-dash-manifest-tps", get(dash))
	})

	t.Run("media credits across sessions, debt", func(t *testing.T) {
		e := e.with(t)
		refill()
		q := "FragmentNumber=" + e.nums[0] + "&TrackNumber=1"
		// 500 a second: a GetMediaForFragmentList of 10 fragments, 24
		// sessions of 20 fragments and 10 of a 25th take them all; the 25th
		// session's 11th is refused by the stream's credits (not its own 20).
		e.burst(1, 1, clientLimit, "", func() (*http.Response, []byte) {
			return e.post("/getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": e.nums})
		})
		for i := range 25 {
			s := e.onDemand("cam", map[string]any{"MaxMediaPlaylistFragmentResults": 1})
			n, allowed := 20, 20
			if i == 24 {
				n, allowed = 11, 10
			}
			e.burst(n, allowed, clientLimit, "fragment-media-credits", func() (*http.Response, []byte) {
				return e.get(resource(s, "getMP4MediaFragment.mp4", q))
			})
		}
		// The other stream's are untouched: GetMediaForFragmentList of 1000
		// fragments is admitted from its full bucket, and leaves it in debt
		// for a second.
		many := make([]string, 1000)
		for i := range many {
			many[i] = strconv.Itoa(i + 1)
		}
		gmffl := func() (*http.Response, []byte) {
			return e.post("/getMediaForFragmentList", map[string]any{"StreamName": "other", "Fragments": many})
		}
		e.burst(2, 1, clientLimit, "fragment-media-credits", gmffl)
		e.clock.Advance(time.Second)
		e.burst(1, 0, clientLimit, "fragment-media-credits", func() (*http.Response, []byte) {
			return e.post("/getMediaForFragmentList", map[string]any{"StreamName": "other", "Fragments": many[:1]})
		})
		e.clock.Advance(2 * time.Millisecond)
		e.burst(1, 1, clientLimit, "", func() (*http.Response, []byte) {
			return e.post("/getMediaForFragmentList", map[string]any{"StreamName": "other", "Fragments": many[:1]})
		})
	})

	t.Run("GetImages credits", func(t *testing.T) {
		e := e.with(t)
		refill()
		// A range before the stream's data: every image NO_MEDIA, no decoding.
		body := map[string]any{"StreamName": "cam", "ImageSelectorType": "SERVER_TIMESTAMP",
			"StartTimestamp": 1000, "EndTimestamp": 1010, "SamplingInterval": 1000, "Format": "JPEG", "MaxResults": 100}
		// 100 media credits each: 5 of them.
		e.burst(6, 5, clientLimit, "fragment-media-credits", func() (*http.Response, []byte) { return e.post("/getImages", body) })
		// 400 + 10 metadata credits: 10000 / 410 = 24, on the other stream.
		body["StreamName"] = "other"
		body["MaxResults"] = 10
		e.burst(25, 24, clientLimit, "fragment-metadata-credits", func() (*http.Response, []byte) { return e.post("/getImages", body) })
	})

	t.Run("GetMediaForFragmentList 5 at once", func(t *testing.T) {
		e := e.with(t)
		refill()
		// Five requests in progress, held through the limiter itself.
		st, err := e.ts.Store.Stream("cam", "")
		if err != nil {
			t.Fatal(err)
		}
		var releases []func()
		for range 5 {
			rel, err := e.ts.Server.limiter.Connect(limits.FragmentListConns, limits.Request{Op: limits.NoOp, Stream: st.ID})
			if err != nil {
				t.Fatal(err)
			}
			releases = append(releases, rel)
		}
		call := func() (*http.Response, []byte) {
			return e.post("/getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": e.nums[:2]})
		}
		// Its API knows only ClientLimitExceededException.
		e.burst(1, 0, clientLimit, "get-media-for-fragment-list-connections", call)
		releases[0]()
		e.burst(1, 1, clientLimit, "", call)
		for _, r := range releases[1:] {
			r()
		}
		// GetMedia: 3 connections (TestGetMediaConnectionLimit holds real ones).
		for range 3 {
			rel, err := e.ts.Server.limiter.Connect(limits.GetMediaConns, limits.Request{Op: limits.NoOp, Stream: st.ID})
			if err != nil {
				t.Fatal(err)
			}
			defer rel()
		}
		e.burst(1, 0, connLimit, "get-media-connections", func() (*http.Response, []byte) {
			return e.post("/getMedia", map[string]any{"StreamName": "cam", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
		})
	})
}

// TestLimitsRefusedTakesNothing: a GetClip refused for want of media
// credits takes none of the metadata credits it would also have used.
func TestLimitsRefusedTakesNothing(t *testing.T) {
	lc := limits.Default()
	lc.FragmentMediaCredits = 12
	e := newLimitsEnv(t, lc)
	master := e.onDemand("cam", nil)
	q := "FragmentNumber=" + e.nums[0] + "&TrackNumber=1"
	e.burst(5, 5, clientLimit, "", func() (*http.Response, []byte) { return e.get(resource(master, "getMP4MediaFragment.mp4", q)) })
	now := float64(time.Now().UnixMilli()) / 1000
	clip := map[string]any{"StreamName": "cam", "ClipFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
		"TimestampRange": map[string]any{"StartTimestamp": now - 600, "EndTimestamp": now}}}
	// The clip holds the 10 fragments: 10 media credits, 7 are left.
	e.burst(1, 0, clientLimit, "fragment-media-credits", func() (*http.Response, []byte) { return e.post("/getClip", clip) })
	// All 10,000 metadata credits are still there.
	e.burst(11, 10, clientLimit, "fragment-metadata-credits", func() (*http.Response, []byte) {
		return e.post("/listFragments", map[string]any{"StreamName": "cam", "MaxResults": 1000})
	})
	// And the 7 media credits.
	e.burst(8, 7, clientLimit, "fragment-media-credits", func() (*http.Response, []byte) {
		return e.get(resource(master, "getMP4MediaFragment.mp4", q))
	})
	// Refilled, the clip goes through and takes 10 of each.
	e.clock.Advance(time.Second)
	e.burst(1, 1, clientLimit, "", func() (*http.Response, []byte) { return e.post("/getClip", clip) })
	e.burst(3, 2, clientLimit, "fragment-media-credits", func() (*http.Response, []byte) {
		return e.get(resource(master, "getMP4MediaFragment.mp4", q))
	})
}

// TestLimitsSDKErrors: aws-sdk-go-v2 and the AWS CLI see a throttled call
// as their typed ClientLimitExceededException.
func TestLimitsSDKErrors(t *testing.T) {
	e := newLimitsEnv(t, limits.Default())
	kv := newKVClient(e.ts, aws.AnonymousCredentials{})
	am := newAMClient(e.ts, aws.AnonymousCredentials{})
	ctx := context.Background()
	var err error
	for range 6 {
		_, err = kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam")})
	}
	var kvLimit *kvtypes.ClientLimitExceededException
	if !errors.As(err, &kvLimit) || !strings.Contains(kvLimit.ErrorMessage(), "describe-stream-tps") {
		t.Fatalf("6th DescribeStream: %v", err)
	}
	for range 11 {
		_, err = am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam"), MaxResults: aws.Int64(1000)})
	}
	var amLimit *amtypes.ClientLimitExceededException
	if !errors.As(err, &amLimit) || !strings.Contains(amLimit.ErrorMessage(), "fragment-metadata-credits") {
		t.Fatalf("11th ListFragments of 1000: %v", err)
	}

	cli := requireTool(t, "/usr/bin/aws")
	cmd := exec.Command(cli, "kinesisvideo", "describe-stream", "--stream-name", "cam", "--endpoint-url", e.ts.URL)
	cmd.Env = awsCLIEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ClientLimitExceededException") {
		t.Fatalf("aws describe-stream over the limit: %v\n%s", err, out)
	}
	e.clock.Advance(time.Second)
	cmd = exec.Command(cli, "kinesisvideo", "describe-stream", "--stream-name", "cam", "--endpoint-url", e.ts.URL)
	cmd.Env = awsCLIEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aws describe-stream a second later: %v\n%s", err, out)
	}
}

// TestLimitsCreditsRecorded: each request's requestInfo carries exactly the
// credits the guide's table charges it and the limiter took, a refused
// request carries none, and /metrics' ArchivedFragmentsConsumed.Metadata and
// .Media move by exactly those credits, per API and stream.
func TestLimitsCreditsRecorded(t *testing.T) {
	e := newLimitsEnv(t, limits.Default())
	// The infos by request id, recorded once each handler has returned
	// (which may be after the client has the response).
	var mu sync.Mutex
	infos := map[string]requestInfo{}
	e.ts.Server.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			mu.Lock()
			infos[requestID(c)] = *infoOfC(c)
			mu.Unlock()
			return err
		}
	})
	// The credits the limiter took, per API and stream: newLimitsEnv's
	// ListFragments of 1000 on each stream, then every request checked.
	want := map[seriesKey][2]int{{"ListFragments", "cam"}: {1000, 0}, {"ListFragments", "other"}: {1000, 0}}
	check := func(what string, resp *http.Response, status, meta, media int) {
		t.Helper()
		id := resp.Header.Get("x-amzn-RequestId")
		var info requestInfo
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			i, ok := infos[id]
			mu.Unlock()
			if ok {
				info = i
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: request %s never recorded", what, id)
			}
		}
		if resp.StatusCode != status || info.MetadataCredits != meta || info.MediaCredits != media {
			t.Errorf("%s: %d, credits %d/%d; want %d, %d/%d", what, resp.StatusCode, info.MetadataCredits, info.MediaCredits, status, meta, media)
		}
		k := seriesKey{info.API, info.Stream}
		want[k] = [2]int{want[k][0] + meta, want[k][1] + media}
	}
	resp, _ := e.post("/listFragments", map[string]any{"StreamName": "cam", "MaxResults": 7})
	check("ListFragments MaxResults 7", resp, 200, 7, 0)
	resp, _ = e.post("/listFragments", map[string]any{"StreamName": "cam"})
	check("ListFragments", resp, 200, 100, 0)
	master := e.onDemand("cam", map[string]any{"MaxMediaPlaylistFragmentResults": 42})
	resp, _ = e.get(resource(master, "getHLSMediaPlaylist.m3u8", "TrackNumber=1"))
	check("media playlist", resp, 200, 42, 0)
	resp, _ = e.get(master)
	check("master playlist", resp, 200, 0, 0)
	q := "FragmentNumber=" + e.nums[0] + "&TrackNumber=1"
	resp, _ = e.get(resource(master, "getMP4MediaFragment.mp4", q))
	check("media fragment", resp, 200, 0, 1)
	resp, _ = e.post("/getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": e.nums[:3]})
	check("GetMediaForFragmentList", resp, 200, 0, 3)
	now := float64(time.Now().UnixMilli()) / 1000
	resp, _ = e.post("/getClip", map[string]any{"StreamName": "cam", "ClipFragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
		"TimestampRange": map[string]any{"StartTimestamp": now - 600, "EndTimestamp": now}}})
	check("GetClip", resp, 200, 10, 10)
	resp, _ = e.post("/getImages", map[string]any{"StreamName": "cam", "ImageSelectorType": "SERVER_TIMESTAMP",
		"StartTimestamp": 1000, "EndTimestamp": 1010, "SamplingInterval": 1000, "Format": "JPEG", "MaxResults": 30})
	check("GetImages", resp, 200, 430, 30)
	// 10000 - 7 - 100 - 42 - 10 - 430 metadata credits are left: a page of
	// 1000 more than that is refused and records nothing.
	resp, _ = e.post("/listFragments", map[string]any{"StreamName": "cam", "MaxResults": 1000})
	check("ListFragments 1000", resp, 200, 1000, 0)
	for range 8 {
		resp, _ = e.post("/listFragments", map[string]any{"StreamName": "cam", "MaxResults": 1000})
		check("ListFragments 1000", resp, 200, 1000, 0)
	}
	resp, _ = e.post("/listFragments", map[string]any{"StreamName": "cam", "MaxResults": 1000})
	check("refused ListFragments", resp, 400, 0, 0)

	// The recorder runs inside the metrics middleware, so a request's
	// credits may reach /metrics a moment after check saw them: scrape until
	// they match (or 5 s).
	var mismatch string
	var total [2]float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := scrapeMetrics(t, e.ts.URL)
		mismatch, total = "", [2]float64{}
		for i, name := range []string{"kvs_archived_fragments_consumed_metadata_total", "kvs_archived_fragments_consumed_media_total"} {
			for k, w := range want {
				if got := m.value(name, k.api, k.stream); got != float64(w[i]) && mismatch == "" {
					mismatch = fmt.Sprintf("%s{api=%q,stream=%q} = %v, want %d", name, k.api, k.stream, got, w[i])
				}
			}
			for _, series := range m[name].GetMetric() {
				total[i] += series.GetCounter().GetValue()
			}
		}
		if mismatch == "" || time.Now().After(deadline) {
			break
		}
	}
	if mismatch != "" {
		t.Error(mismatch)
	}
	var sum [2]int
	for _, w := range want {
		sum[0] += w[0]
		sum[1] += w[1]
	}
	if total[0] != float64(sum[0]) || total[1] != float64(sum[1]) {
		t.Errorf("ArchivedFragmentsConsumed in all: %v metadata, %v media; want %d, %d", total[0], total[1], sum[0], sum[1])
	}
}

// TestLimitsHLSPlayerLive: hls.js plays a LIVE session for 30 s against a
// server with the guide's default limits on the real clock, and is never
// throttled: no request refused by the limiter, no 400
// ClientLimitExceededException on the wire, while its requests did draw
// on the limits (session TPS, media and metadata credits).
func TestLimitsHLSPlayerLive(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium for 30 s")
	}
	requirePlayers(t)
	ts := newLimitedTestServer(t, limits.Default(), nil)
	var mu sync.Mutex
	var throttled, requests, meta, media int
	byAPI := map[string]int{}
	ts.Server.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			info := infoOfC(c)
			mu.Lock()
			defer mu.Unlock()
			if info.Session != nil {
				requests++
				byAPI[info.API]++
			}
			meta += info.MetadataCredits
			media += info.MediaCredits
			if err != nil && toAPIError(err).Type == clientLimit {
				throttled++
			}
			return err
		}
	})
	clip, err := os.ReadFile(filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go feedRealtime(ctx, t, ts.URL, "live", clip)
	h := hlsClient{t, ts}
	var master string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		status, typ, u := h.sessionURL(map[string]any{"StreamName": "live", "PlaybackMode": "LIVE"})
		if status == 200 {
			master = u
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no LIVE session: %d %s", status, typ)
		}
	}
	time.Sleep(4 * time.Second) // a few fragments in the window
	r := playInBrowser(t, "hlsjs", master, 30)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%s; %d session requests %v, %d metadata and %d media credits, %d throttled (limiter: %d refused)",
		r, requests, byAPI, meta, media, throttled, ts.Server.limiter.Refused())
	if !r.OK || len(r.Errors) > 0 || r.Advanced < 30 {
		t.Fatalf("did not play 30 s: %s\n%s", r, r.Raw)
	}
	if throttled != 0 || ts.Server.limiter.Refused() != 0 {
		t.Fatalf("%d requests throttled, %d refused by the limiter", throttled, ts.Server.limiter.Refused())
	}
	// 30 s of 1 s fragments, audio and video: at least 30 media fragments
	// and 30 playlist reloads went through the limits.
	if requests < 60 || media < 30 || meta < 30*5 {
		t.Fatalf("too little traffic to say anything: %d requests, %d/%d credits", requests, meta, media)
	}
	// EXT-X-MAP names the track header, so its URI does not change as the
	// window slides: the player loads each track's init segment once (a
	// few more on a recovery), not on every reload.
	if n := byAPI["GetMP4InitFragment"]; n < 2 || n > 6 {
		t.Fatalf("%d init segment requests in a 30 s LIVE play of audio and video, want 2 (one a track)", n)
	}
}

// TestImagesMaxBytes: a GetImages page ends before the entry that would
// take the response past the size cap (100 MB by default), and its
// NextToken continues with that entry.
func TestImagesMaxBytes(t *testing.T) {
	e := newLimitsEnv(t, limits.Config{Off: true})
	e.ts.Server.cfg.ImagesMaxBytes = 256 // the body's 64 + three 64-byte entries
	body := map[string]any{"StreamName": "cam", "ImageSelectorType": "SERVER_TIMESTAMP",
		"StartTimestamp": 1000, "EndTimestamp": 1010, "SamplingInterval": 1000, "Format": "JPEG"}
	var stamps []float64
	for page := 0; ; page++ {
		resp, b := e.post("/getImages", body)
		var out struct {
			Images []struct {
				TimeStamp float64
				Error     string
			}
			NextToken string
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
			t.Fatalf("page %d: %d %s", page, resp.StatusCode, b)
		}
		if want := min(3, 11-len(stamps)); len(out.Images) != want || len(b) > 256 {
			t.Fatalf("page %d: %d images in %d bytes, want %d in at most 256", page, len(out.Images), len(b), want)
		}
		for _, im := range out.Images {
			stamps = append(stamps, im.TimeStamp)
		}
		if out.NextToken == "" {
			break
		}
		body["NextToken"] = out.NextToken
	}
	if len(stamps) != 11 || stamps[0] != 1000 || stamps[10] != 1010 {
		t.Fatalf("timestamps %v", stamps)
	}
	for i := 1; i < len(stamps); i++ {
		if stamps[i] != stamps[i-1]+1 {
			t.Fatalf("timestamps %v", stamps)
		}
	}
}
