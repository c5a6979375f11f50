package web

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
)

// TestHLSPlayers plays kvsgate's HLS sessions in real players in headless
// Chromium: hls.js and Shaka Player on ON_DEMAND sessions in both
// containers and on a LIVE session fed in real time, and Chromium's native
// <video src=…m3u8>.
func TestHLSPlayers(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium")
	}
	playersDir(t) // skips (or fails under make test) without node, Chromium, node_modules
	ts := newTestServer(t, nil, fragments.Config{})
	h := hlsClient{t, ts}
	clip := filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv")
	gmIngest(t, ts, "vod", clip, 87600)
	for _, container := range []string{"FRAGMENTED_MP4", "MPEG_TS"} {
		status, typ, master := h.sessionURL(onDemandBody("vod", container, 0, 20000))
		if status != 200 {
			t.Fatalf("session: %d %s", status, typ)
		}
		for _, player := range []string{"hlsjs", "shaka", "native"} {
			t.Run(fmt.Sprintf("ON_DEMAND/%s/%s", container, player), func(t *testing.T) {
				r := playInBrowser(t, player, master, 3)
				if !r.OK || len(r.Errors) > 0 || r.VideoWidth != 640 {
					t.Fatalf("%s", r)
				}
			})
		}
	}

	// LIVE: the demo clip fed in real time, as a camera would.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	go producer.Put(ctx, bytesReader(data), producer.Options{Endpoint: ts.URL, Stream: "live", Create: true, Realtime: true, Loop: true, RetentionHours: 1})
	var master string
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, _, u := h.sessionURL(map[string]any{"StreamName": "live", "PlaybackMode": "LIVE", "MaxMediaPlaylistFragmentResults": 3})
		if status == 200 {
			master = u
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no LIVE session: %d", status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a few fragments in the window
	// LIVE fMP4 sessions are LL-HLS: the players below play parts, and
	// ffprobe (which ignores them) reads the same playlists.
	media := strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?TrackNumber=1&", 1)
	if _, pl := h.get(media); !bytes.Contains(pl, []byte("#EXT-X-PART:")) || !bytes.Contains(pl, []byte("CAN-BLOCK-RELOAD=YES")) {
		t.Fatalf("the LIVE session's playlist is not LL-HLS:\n%s", pl)
	}
	ffprobe := requireTool(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", master).CombinedOutput()
	if got := strings.Fields(string(out)); err != nil || !slices.Contains(got, "h264") || !slices.Contains(got, "aac") {
		t.Fatalf("ffprobe of the LL-HLS session: %v %s", err, out)
	}
	for _, player := range []string{"hlsjs", "shaka"} {
		t.Run("LIVE/"+player, func(t *testing.T) {
			r := playInBrowser(t, player, master, 3)
			if !r.OK || len(r.Errors) > 0 || r.VideoWidth != 640 {
				t.Fatalf("%s", r)
			}
		})
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
