package web

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kvam "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	kvamtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/kvsgate/kvsgate/fragments"
)

// dashProbe runs ffprobe on an MPD URL once per stream and returns
// "codec:frames" of each. One stream at a time: reading video and audio
// interleaved, ffmpeg's DASH demuxer drops the audio packet that remains
// when the video ends (the demo clip's last AAC frame ends 20 ms after its
// last picture), which it does not when reading the audio alone.
func dashProbe(t *testing.T, ffprobe, u string) string {
	t.Helper()
	var out []string
	for _, sel := range []string{"v:0", "a:0"} {
		b, err := exec.Command(ffprobe, "-v", "error", "-select_streams", sel, "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", u).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe %s: %v\n%s", u, err, b)
		}
		// Each stream is listed once more under the DASH program.
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				out = append(out, strings.ReplaceAll(l, ",", ":"))
			}
		}
	}
	return strings.Join(sortedCopy(out), " ")
}

// TestDashFFprobe: ffprobe and ffmpeg read the MPD of an ON_DEMAND session
// of the demo clip; the frames are what was ingested.
func TestDashFFprobe(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ffmpeg := requireTool(t, "ffmpeg")
	ts := newTestServer(t, nil, fragments.Config{})
	d := dashClient{hlsClient{t, ts}}
	gmIngest(t, ts, "demo", demoClip, 87600)
	for _, display := range []string{"NEVER", "ALWAYS"} {
		t.Run("display="+display, func(t *testing.T) {
			body := dashOnDemandBody("demo", 0, 20000)
			body["DisplayFragmentNumber"], body["DisplayFragmentTimestamp"] = display, display
			u := d.mustSessionURL(body)
			if got := dashProbe(t, ffprobe, u); got != "aac:470 h264:250" {
				t.Fatalf("ffprobe of the session: %s, ingested aac:470 h264:250", got)
			}
			decodeClean(t, ffmpeg, u)
		})
	}
}

// TestDashSessionURLFromClients gets session URLs through aws-sdk-go-v2
// and the AWS CLI; ffprobe plays both.
func TestDashSessionURLFromClients(t *testing.T) {
	ffprobe := requireTool(t, "ffprobe")
	ts := newTestServer(t, nil, fragments.Config{})
	gmIngest(t, ts, "demo", demoClip, 87600)

	client := kvam.New(kvam.Options{Region: "us-west-2", BaseEndpoint: aws.String(ts.URL), Credentials: aws.AnonymousCredentials{}})
	out, err := client.GetDASHStreamingSessionURL(context.Background(), &kvam.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("demo"), PlaybackMode: kvamtypes.DASHPlaybackModeOnDemand,
		DisplayFragmentNumber:      kvamtypes.DASHDisplayFragmentNumberAlways,
		DisplayFragmentTimestamp:   kvamtypes.DASHDisplayFragmentTimestampAlways,
		MaxManifestFragmentResults: aws.Int64(5000), Expires: aws.Int32(43200),
		DASHFragmentSelector: &kvamtypes.DASHFragmentSelector{FragmentSelectorType: kvamtypes.DASHFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &kvamtypes.DASHTimestampRange{StartTimestamp: aws.Time(time.Unix(0, 0)), EndTimestamp: aws.Time(time.Unix(20, 0))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*out.DASHStreamingSessionURL, ts.URL+"/dash/v1/getDASHManifest.mpd?SessionToken=") {
		t.Fatalf("SDK session URL %s", *out.DASHStreamingSessionURL)
	}
	if got := dashProbe(t, ffprobe, *out.DASHStreamingSessionURL); got != "aac:470 h264:250" {
		t.Fatalf("SDK session: %v", got)
	}
	// The SDK's errors: a bad argument is its typed exception.
	_, err = client.GetDASHStreamingSessionURL(context.Background(), &kvam.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("demo"), PlaybackMode: kvamtypes.DASHPlaybackModeOnDemand})
	var iae *kvamtypes.InvalidArgumentException
	if !errors.As(err, &iae) {
		t.Fatalf("ON_DEMAND without a selector: %v, want InvalidArgumentException", err)
	}

	awsCLI := requireTool(t, "/usr/bin/aws")
	cmd := exec.Command(awsCLI, "kinesis-video-archived-media", "get-dash-streaming-session-url", "--stream-name", "demo",
		"--playback-mode", "ON_DEMAND", "--display-fragment-timestamp", "ALWAYS",
		"--dash-fragment-selector", `{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{"StartTimestamp":0,"EndTimestamp":20}}`,
		"--endpoint-url", ts.URL, "--output", "json")
	cmd.Env = awsCLIEnv()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws: %v\n%s", err, b)
	}
	var cli struct{ DASHStreamingSessionURL string }
	if err := json.Unmarshal(b, &cli); err != nil || cli.DASHStreamingSessionURL == "" {
		t.Fatalf("aws output %s: %v", b, err)
	}
	if got := dashProbe(t, ffprobe, cli.DASHStreamingSessionURL); got != "aac:470 h264:250" {
		t.Fatalf("CLI session: %v", got)
	}
}
