package mkv_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/kvsgate/kvsgate/fragments/mkv"
)

func TestWriterEncodings(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"size 0", mkv.AppendSize(nil, 0), []byte{0x80}},
		{"size 126", mkv.AppendSize(nil, 126), []byte{0xFE}},
		{"size 127 is not unknown", mkv.AppendSize(nil, 127), []byte{0x40, 0x7F}},
		{"size 16382", mkv.AppendSize(nil, 16382), []byte{0x7F, 0xFE}},
		{"size 16383", mkv.AppendSize(nil, 16383), []byte{0x20, 0x3F, 0xFF}},
		{"unknown size", mkv.AppendSize(nil, mkv.UnknownSize), []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		{"id 1 byte", mkv.AppendID(nil, mkv.IDSimpleBlock), []byte{0xA3}},
		{"id 2 bytes", mkv.AppendID(nil, mkv.IDDocType), []byte{0x42, 0x82}},
		{"id 3 bytes", mkv.AppendID(nil, mkv.IDTimecodeScale), []byte{0x2A, 0xD7, 0xB1}},
		{"id 4 bytes", mkv.AppendID(nil, mkv.IDCluster), []byte{0x1F, 0x43, 0xB6, 0x75}},
		{"uint 0", mkv.AppendUint(nil, mkv.IDTimecode, 0), []byte{0xE7, 0x81, 0x00}},
		{"uint 256", mkv.AppendUint(nil, mkv.IDTimecode, 256), []byte{0xE7, 0x82, 0x01, 0x00}},
		{"uint max", mkv.AppendUint(nil, mkv.IDTimecode, 1<<64-1), []byte{0xE7, 0x88, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		{"int -1", mkv.AppendInt(nil, mkv.IDReferenceBlock, -1), []byte{0xFB, 0x81, 0xFF}},
		{"int 127", mkv.AppendInt(nil, mkv.IDReferenceBlock, 127), []byte{0xFB, 0x81, 0x7F}},
		{"int 128", mkv.AppendInt(nil, mkv.IDReferenceBlock, 128), []byte{0xFB, 0x82, 0x00, 0x80}},
		{"int -128", mkv.AppendInt(nil, mkv.IDReferenceBlock, -128), []byte{0xFB, 0x81, 0x80}},
		{"int -129", mkv.AppendInt(nil, mkv.IDReferenceBlock, -129), []byte{0xFB, 0x82, 0xFF, 0x7F}},
		{"float", mkv.AppendFloat(nil, mkv.IDSamplingFreq, 48000), []byte{0xB5, 0x88, 0x40, 0xE7, 0x70, 0, 0, 0, 0, 0}},
		{"string", mkv.AppendString(nil, mkv.IDCodecID, "A_AAC"), []byte{0x86, 0x85, 'A', '_', 'A', 'A', 'C'}},
		{"unknown-size header", mkv.AppendUnknownSizeHeader(nil, mkv.IDSegment), []byte{0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		{"simple block", mkv.SimpleBlock(1, -2, true, []byte{9, 8}), []byte{0xA3, 0x86, 0x81, 0xFF, 0xFE, 0x80, 9, 8}},
		{"simple block track 200", mkv.SimpleBlock(200, 0, false, nil), []byte{0xA3, 0x85, 0x40, 200, 0, 0, 0}},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: % X, want % X", c.name, c.got, c.want)
		}
	}
	// Appending keeps what dst held.
	if got := mkv.AppendElement([]byte{1, 2}, mkv.IDVoid, []byte{3}); !bytes.Equal(got, []byte{1, 2, 0xEC, 0x81, 3}) {
		t.Errorf("AppendElement onto a prefix: % X", got)
	}
}

// writerTestEvent is a copy of what the reader reported (Event is only
// valid until the next call).
type writerTestEvent struct {
	kind     mkv.Kind
	raw      []byte
	timecode int64
	track    uint64
	reltc    int16
	key      bool
	duration int64
	frames   [][]byte
	tags     []mkv.SimpleTag
	header   mkv.StreamHeader
}

func writerTestRead(t *testing.T, data []byte) []writerTestEvent {
	t.Helper()
	r := mkv.NewReader(bytes.NewReader(data))
	var out []writerTestEvent
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading back what the writer wrote: %v (after %d events)", err, len(out))
		}
		e := writerTestEvent{kind: ev.Kind, raw: bytes.Clone(ev.Raw), timecode: ev.Timecode}
		switch ev.Kind {
		case mkv.KindBlock:
			b := ev.Block
			e.track, e.reltc, e.key, e.duration = b.Track, b.Timecode, b.Key, b.Duration
			for _, f := range b.Frames {
				e.frames = append(e.frames, bytes.Clone(ev.Raw[f.Off:f.Off+f.Len]))
			}
		case mkv.KindTags:
			e.tags = append([]mkv.SimpleTag(nil), ev.Tags...)
		case mkv.KindTracks:
			e.header = mkv.StreamHeader{TimecodeScale: ev.Header.TimecodeScale, Tracks: append([]mkv.Track(nil), ev.Header.Tracks...)}
		}
		out = append(out, e)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	tracks := []mkv.Track{
		{Number: 1, UID: 11, Type: 1, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: []byte{1, 0x64, 0, 0x1E}, Name: "video", Width: 640, Height: 480, DefaultDuration: 40_000_000},
		{Number: 200, UID: 1 << 40, Type: 2, CodecID: "A_AAC", CodecPrivate: []byte{0x11, 0x90}, SamplingFreq: 48000, Channels: 2, BitDepth: 16},
	}
	tags := []mkv.SimpleTag{{Name: "k1", Value: "v1"}, {Name: "bin", Value: "\x00\x01\xFF", Binary: true}, {Name: "empty"}}
	key := bytes.Repeat([]byte{0xAA}, 300)
	delta := []byte{1, 2, 3}
	audio := bytes.Repeat([]byte{0x55}, 127)

	var s []byte
	s = append(s, mkv.EBMLHeader()...)
	s = mkv.AppendUnknownSizeHeader(s, mkv.IDSegment)
	s = append(s, mkv.Info(1_000_000)...)
	s = append(s, mkv.Tracks(tracks)...)
	s = append(s, mkv.ClusterStart(1795289339636)...)
	s = append(s, mkv.SimpleBlock(1, 0, true, key)...)
	s = append(s, mkv.BlockGroup(200, -5, true, 21, audio)...)
	s = append(s, mkv.SimpleBlock(1, 40, false, delta)...)
	s = append(s, mkv.BlockGroup(1, 80, false, -1, delta)...)
	s = append(s, mkv.Tags(tags)...)
	// A known-size cluster after an unknown-size one.
	var cl []byte
	cl = mkv.AppendUint(cl, mkv.IDTimecode, 0)
	cl = append(cl, mkv.SimpleBlock(200, 32767, false, audio)...)
	cl = append(cl, mkv.SimpleBlock(1, -32768, true, nil)...)
	s = mkv.AppendElement(s, mkv.IDCluster, cl)

	got := writerTestRead(t, s)
	kinds := make([]mkv.Kind, len(got))
	for i, e := range got {
		kinds[i] = e.kind
	}
	wantKinds := []mkv.Kind{mkv.KindEBMLHeader, mkv.KindSegment, mkv.KindTracks,
		mkv.KindClusterStart, mkv.KindTimecode, mkv.KindBlock, mkv.KindBlock, mkv.KindBlock, mkv.KindBlock, mkv.KindClusterEnd, mkv.KindTags,
		mkv.KindClusterStart, mkv.KindTimecode, mkv.KindBlock, mkv.KindBlock, mkv.KindClusterEnd}
	if !reflect.DeepEqual(kinds, wantKinds) {
		t.Fatalf("events %v, want %v", kinds, wantKinds)
	}
	h := got[2].header
	if h.TimecodeScale != 1_000_000 {
		t.Errorf("TimecodeScale %d", h.TimecodeScale)
	}
	if !reflect.DeepEqual(h.Tracks, tracks) {
		t.Errorf("tracks read back\n%+v\nwant\n%+v", h.Tracks, tracks)
	}
	if got[4].timecode != 1795289339636 || got[12].timecode != 0 {
		t.Errorf("cluster timecodes %d, %d", got[4].timecode, got[12].timecode)
	}
	type blk struct {
		track uint64
		reltc int16
		key   bool
		dur   int64
		frame []byte
	}
	wantBlocks := map[int]blk{
		5:  {1, 0, true, -1, key},
		6:  {200, -5, true, 21, audio},
		7:  {1, 40, false, -1, delta},
		8:  {1, 80, false, -1, delta},
		13: {200, 32767, false, -1, audio},
		14: {1, -32768, true, -1, nil},
	}
	for i, w := range wantBlocks {
		e := got[i]
		if e.track != w.track || e.reltc != w.reltc || e.key != w.key || e.duration != w.dur || len(e.frames) != 1 || !bytes.Equal(e.frames[0], w.frame) {
			t.Errorf("event %d: block track %d tc %d key %v dur %d frames %d, want %+v", i, e.track, e.reltc, e.key, e.duration, len(e.frames), w)
		}
	}
	if !reflect.DeepEqual(got[10].tags, tags) {
		t.Errorf("tags %+v, want %+v", got[10].tags, tags)
	}
	// Raw is the element exactly as written.
	if want := mkv.SimpleBlock(1, 0, true, key); !bytes.Equal(got[5].raw, want) {
		t.Errorf("raw SimpleBlock differs from what was written")
	}
	if want := mkv.ClusterStart(1795289339636); !bytes.Equal(append(bytes.Clone(got[3].raw), got[4].raw...), want) {
		t.Errorf("raw cluster start % X, want % X", append(got[3].raw, got[4].raw...), want)
	}
}

// TestWriterSizes reads back elements around every size-length boundary.
func TestWriterSizes(t *testing.T) {
	sizes := []int{0, 1, 126, 127, 128, 16382, 16383, 16384, 2097150, 2097151, 2097152}
	var s []byte
	s = append(s, mkv.EBMLHeader()...)
	s = mkv.AppendUnknownSizeHeader(s, mkv.IDSegment)
	s = append(s, mkv.Info(1_000_000)...)
	s = append(s, mkv.Tracks([]mkv.Track{{Number: 1, Type: 1, CodecID: "V_MPEG4/ISO/AVC"}})...)
	s = append(s, mkv.ClusterStart(7)...)
	var want [][]byte
	for _, n := range sizes {
		e := mkv.AppendElement(nil, mkv.IDVoid, bytes.Repeat([]byte{byte(n)}, n))
		want = append(want, e)
		s = append(s, e...)
		s = append(s, mkv.SimpleBlock(1, int16(n%1000), false, []byte{byte(n)})...)
	}
	got := writerTestRead(t, s)
	var others, blocks int
	for _, e := range got {
		switch e.kind {
		case mkv.KindClusterOther:
			if others >= len(want) || !bytes.Equal(e.raw, want[others]) {
				t.Fatalf("element %d (size %d) read back as %d bytes", others, sizes[others], len(e.raw))
			}
			others++
		case mkv.KindBlock:
			n := sizes[blocks]
			if e.reltc != int16(n%1000) || len(e.frames) != 1 || !bytes.Equal(e.frames[0], []byte{byte(n)}) {
				t.Fatalf("block after the %d-byte element read back wrong: %+v", n, e)
			}
			blocks++
		}
	}
	if others != len(sizes) || blocks != len(sizes) {
		t.Fatalf("read %d elements and %d blocks, want %d each", others, blocks, len(sizes))
	}
}
