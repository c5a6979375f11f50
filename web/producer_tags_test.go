package web

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
)

// TestProducerForwardsTags sends a KVS C producer capture whose clusters
// carry fragment metadata (Tags after each cluster) with `kvsgate put`'s
// client: every fragment keeps the metadata it has when the capture is
// posted as it is, and GetMediaForFragmentList returns it.
func TestProducerForwardsTags(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	path := filepath.Join(testRepo, "testdata/producer/producer-c-video-absolute-tags.mkv")
	gmIngest(t, ts, "direct", path, 2)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Put(context.Background(), strings.NewReader(string(data)), producer.Options{Endpoint: ts.URL, Stream: "put", Create: true}); err != nil {
		t.Fatal(err)
	}
	tags := func(stream string) ([][]string, []string) {
		st, err := ts.Store.Index.Stream(stream, "")
		if err != nil {
			t.Fatal(err)
		}
		frags, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByOrdinal, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]string
		var nums []string
		for _, f := range frags {
			meta, err := ts.Store.Index.Meta(st.ID, f.Ordinal)
			if err != nil {
				t.Fatal(err)
			}
			var kv []string
			for _, tg := range meta.Tags {
				kv = append(kv, tg.Name+"="+tg.Value)
			}
			out = append(out, kv)
			nums = append(nums, strconv.FormatUint(f.Number, 10))
		}
		return out, nums
	}
	want, _ := tags("direct")
	got, nums := tags("put")
	if len(want) != 6 || len(want[0]) == 0 {
		t.Fatalf("the capture's fragments and tags: %v", want)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tags through the put client:\n%v\nwant (posted as is):\n%v", got, want)
	}
	_, body := gmPost(t, ts.URL, "/getMediaForFragmentList", map[string]any{"StreamName": "put", "Fragments": nums})
	for i, f := range gmParse(t, body).fragments {
		for _, kv := range want[i] {
			k, v, _ := strings.Cut(kv, "=")
			if f.tags[k] != v {
				t.Fatalf("GetMediaForFragmentList fragment %d: tag %s = %q, want %q (%v)", i, k, f.tags[k], v, f.tags)
			}
		}
	}
}
