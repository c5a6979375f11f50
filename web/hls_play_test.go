package web

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kvam "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	kvamtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/kvsgate/kvsgate/fragments"
)

// probeStreams runs ffprobe on a URL and returns "codec:frames" per stream.
func probeStreams(t *testing.T, ffprobe, u string) []string {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", u).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", u, err, out)
	}
	var s []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			s = append(s, strings.ReplaceAll(l, ",", ":"))
		}
	}
	return s
}

// decodeClean runs ffmpeg over a URL and fails on any error it prints.
func decodeClean(t *testing.T, ffmpeg, u string) {
	t.Helper()
	out, err := exec.Command(ffmpeg, "-v", "error", "-i", u, "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("ffmpeg decoding %s: %v\n%s", u, err, out)
	}
}

// probeDuration is the container duration ffprobe reports for a URL.
func probeDuration(t *testing.T, ffprobe, u string) float64 {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", u).Output()
	if err != nil {
		t.Fatalf("ffprobe duration: %v", err)
	}
	d, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	return d
}

func onDemandBody(stream, container string, fromMS, toMS int64) map[string]any {
	return map[string]any{"StreamName": stream, "PlaybackMode": "ON_DEMAND", "ContainerFormat": container,
		"HLSFragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP",
			"TimestampRange": map[string]any{"StartTimestamp": float64(fromMS) / 1000, "EndTimestamp": float64(toMS) / 1000}}}
}

// TestHLSFFprobe: ffprobe and ffmpeg read the master playlist of ON_DEMAND
// sessions in both containers; the decoded frames are what was ingested.
func TestHLSFFprobe(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ffmpeg := requireTool(t, "ffmpeg")
	ts := newTestServer(t, nil, fragments.Config{})
	h := hlsClient{t, ts}
	for _, c := range []struct {
		file   string
		stream string
		fromMS int64
		toMS   int64
		want   []string // codec:frames per stream
	}{
		// The demo clip's producer timestamps are its timecodes: 0.021 s to 10 s.
		{"cmd/kvsgate/demo/sample.mkv", "demo", 0, 20000, []string{"h264:250", "aac:470"}},
		{"testdata/producer/producer-c-video-absolute-tags.mkv", "absolute", 1795289339000, 1795289360000, nil},
		{"testdata/producer/producer-c-av-relative.mkv", "relative", 1795289339000, 1795289360000, nil},
	} {
		path := filepath.Join(testRepo, c.file)
		gmIngest(t, ts, c.stream, path, 87600)
		want := c.want
		if want == nil {
			want = probeStreams(t, ffprobe, path)
		}
		for _, container := range []string{"FRAGMENTED_MP4", "MPEG_TS"} {
			t.Run(c.stream+"/"+container, func(t *testing.T) {
				status, typ, master := h.sessionURL(onDemandBody(c.stream, container, c.fromMS, c.toMS))
				if status != 200 {
					t.Fatalf("session: %d %s", status, typ)
				}
				got := probeStreams(t, ffprobe, master)
				// ffprobe lists an fMP4 session's audio rendition as a
				// stream of its own: compare as sets.
				if strings.Join(sortedCopy(got), " ") != strings.Join(sortedCopy(want), " ") {
					t.Fatalf("ffprobe of the session: %v, ingested %v", got, want)
				}
				decodeClean(t, ffmpeg, master)
				// The session lasts as long as the video: 25 fps in all three
				// files (the captures, cut from a live stream, have no duration
				// of their own).
				var frames float64
				for _, w := range want {
					if strings.HasPrefix(w, "h264:") {
						frames, _ = strconv.ParseFloat(strings.TrimPrefix(w, "h264:"), 64)
					}
				}
				if d, src := probeDuration(t, ffprobe, master), frames/25; d < src-0.05 || d > src+0.05 {
					t.Fatalf("session lasts %.3f s, the ingested video %.3f s", d, src)
				}
			})
		}
	}
}

// sortedCopy sorts a copy of s without duplicates: ffprobe lists an fMP4
// session's streams once per program of the HLS demuxer.
func sortedCopy(s []string) []string {
	var c []string
	for _, x := range s {
		if !slices.Contains(c, x) {
			c = append(c, x)
		}
	}
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

// TestHLSSessionURLFromClients gets session URLs through the AWS CLI and
// aws-sdk-go-v2; ffprobe plays both.
func TestHLSSessionURLFromClients(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ts := newTestServer(t, nil, fragments.Config{})
	gmIngest(t, ts, "demo", filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"), 87600)

	client := kvam.New(kvam.Options{Region: "us-west-2", BaseEndpoint: aws.String(ts.URL), Credentials: aws.AnonymousCredentials{}})
	out, err := client.GetHLSStreamingSessionURL(context.Background(), &kvam.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("demo"), PlaybackMode: kvamtypes.HLSPlaybackModeOnDemand,
		HLSFragmentSelector: &kvamtypes.HLSFragmentSelector{FragmentSelectorType: kvamtypes.HLSFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &kvamtypes.HLSTimestampRange{StartTimestamp: aws.Time(time.Unix(0, 0)), EndTimestamp: aws.Time(time.Unix(20, 0))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedCopy(probeStreams(t, ffprobe, *out.HLSStreamingSessionURL)); strings.Join(got, " ") != "aac:470 h264:250" {
		t.Fatalf("SDK session: %v", got)
	}

	aws := requireTool(t, "/usr/bin/aws")
	cmd := exec.Command(aws, "kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", "demo",
		"--playback-mode", "ON_DEMAND", "--container-format", "MPEG_TS",
		"--hls-fragment-selector", `{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{"StartTimestamp":0,"EndTimestamp":20}}`,
		"--endpoint-url", ts.URL, "--output", "json")
	cmd.Env = awsCLIEnv()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws: %v\n%s", err, b)
	}
	var cli struct{ HLSStreamingSessionURL string }
	if err := json.Unmarshal(b, &cli); err != nil {
		t.Fatalf("aws output %s: %v", b, err)
	}
	if got := probeStreams(t, ffprobe, cli.HLSStreamingSessionURL); strings.Join(sortedCopy(got), " ") != "aac:470 h264:250" {
		t.Fatalf("CLI session: %v", got)
	}
}

// TestHLSGStreamerAndLiveReplay: an H.264+AAC stream made by GStreamer's
// matroskamux (B-frames, audio with negative block timecodes) plays through
// HLS with the frames that were ingested; and a LIVE_REPLAY session over a
// short range ends with EXT-X-ENDLIST and ffprobe reads all of it.
func TestHLSGStreamerAndLiveReplay(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	gst := requireTool(t, "gst-launch-1.0")
	enc := ""
	for _, e := range []string{"avenc_aac", "voaacenc"} {
		if ieGstHas(t, e) {
			enc = e
			break
		}
	}
	if enc == "" {
		t.Fatal("no AAC encoder element in GStreamer (make test installs gstreamer1.0-plugins-bad)")
	}
	file := filepath.Join(t.TempDir(), "gst.mkv")
	pipeline := "videotestsrc num-buffers=150 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc key-int-max=30 bframes=2 ! h264parse ! mux. " +
		"audiotestsrc num-buffers=220 ! audio/x-raw,rate=48000,channels=2 ! " + enc + " ! aacparse ! mux. matroskamux name=mux streamable=true ! filesink location=" + file
	if out, err := exec.Command(gst, append([]string{"-q"}, strings.Fields(pipeline)...)...).CombinedOutput(); err != nil {
		t.Fatalf("gst-launch: %v\n%s", err, out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, nil, fragments.Config{})
	h := hlsClient{t, ts}
	// RELATIVE to the captures' producer start, as a camera would send it.
	gmIngestBytes(t, ts, "gst", data, true, 87600)
	want := sortedCopy(probeStreams(t, ffprobe, file))
	start := int64(1795289339636)
	for _, container := range []string{"FRAGMENTED_MP4", "MPEG_TS"} {
		status, typ, master := h.sessionURL(onDemandBody("gst", container, start-1000, start+60000))
		if status != 200 {
			t.Fatalf("session: %d %s", status, typ)
		}
		if got := sortedCopy(probeStreams(t, ffprobe, master)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: session %v, GStreamer file %v", container, got, want)
		}
	}

	// LIVE_REPLAY over the first two seconds: fragments appear as time
	// passes, then the playlist ends.
	body := onDemandBody("gst", "FRAGMENTED_MP4", start-1000, start+1500)
	body["PlaybackMode"] = "LIVE_REPLAY"
	status, typ, master := h.sessionURL(body)
	if status != 200 {
		t.Fatalf("LIVE_REPLAY session: %d %s", status, typ)
	}
	media := strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?TrackNumber=1&", 1)
	_, first := h.get(media)
	if bytes.Contains(first, []byte("#EXT-X-ENDLIST")) || bytes.Count(first, []byte("#EXTINF")) != 1 {
		t.Fatalf("LIVE_REPLAY at its start lists:\n%s", first)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, pl := h.get(media)
		if bytes.Contains(pl, []byte("#EXT-X-ENDLIST")) {
			if n := bytes.Count(pl, []byte("#EXTINF")); n != 2 {
				t.Fatalf("LIVE_REPLAY ended with %d segments, want 2:\n%s", n, pl)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LIVE_REPLAY never ended:\n%s", pl)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := probeStreams(t, ffprobe, master); len(got) == 0 {
		t.Fatal("ffprobe read nothing of the ended LIVE_REPLAY session")
	}
}
