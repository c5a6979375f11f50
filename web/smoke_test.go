package web

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
)

// TestPutSampleClip streams the demo clip through the put client and checks
// the index holds one fragment per cluster.
func TestPutSampleClip(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	clip, err := os.ReadFile(filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	stats, err := producer.Put(context.Background(), bytes.NewReader(clip), producer.Options{Endpoint: ts.URL, Stream: "s", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Acks["PERSISTED"] != 10 || stats.Acks["BUFFERING"] != 10 || stats.Acks["RECEIVED"] != 10 {
		t.Fatalf("acks %v, want 10 of each", stats.Acks)
	}
	st, err := ts.Store.Stream("s", "")
	if err != nil {
		t.Fatal(err)
	}
	frags, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, To: 1 << 62, AfterTS: -1, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) != 10 {
		t.Fatalf("%d fragments, want 10", len(frags))
	}
	for i := 1; i < len(frags); i++ {
		if frags[i].Number <= frags[i-1].Number || frags[i].Ordinal != frags[i-1].Ordinal+1 {
			t.Fatalf("fragment %d: number/ordinal not increasing: %+v after %+v", i, frags[i], frags[i-1])
		}
	}
}

// TestPutLoop: `kvsgate put --loop` (and the demo feeder) continues the
// timecodes from pass to pass: the demo clip's audio starts before its first
// cluster's timecode, and a pass that started too early was refused (4004).
func TestPutLoop(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	clip, err := os.ReadFile(filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	persisted := 0
	stats, err := producer.Put(ctx, bytes.NewReader(clip), producer.Options{Endpoint: ts.URL, Stream: "loop", Create: true, Loop: true,
		OnAck: func(a producer.Ack) {
			if a.EventType == "PERSISTED" {
				if persisted++; persisted == 35 {
					cancel() // three and a half passes
				}
			}
		}})
	if stats == nil || stats.Acks["ERROR"] != 0 || persisted < 35 {
		t.Fatalf("looping: %v, acks %v, err %v", persisted, stats, err)
	}
}
