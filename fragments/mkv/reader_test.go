package mkv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// Byte-level builders for the case table. sizeLen picks the width of the
// size field (1-8), so every vint length is exercised.

func idBytes(id uint32) []byte {
	switch {
	case id >= 1<<24:
		return []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	case id >= 1<<16:
		return []byte{byte(id >> 16), byte(id >> 8), byte(id)}
	case id >= 1<<8:
		return []byte{byte(id >> 8), byte(id)}
	}
	return []byte{byte(id)}
}

func sizeBytes(n int, width int) []byte {
	b := make([]byte, width)
	v := uint64(n)
	for i := width - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	b[0] |= 0x80 >> (width - 1)
	return b
}

func elw(id uint32, width int, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(append(idBytes(id), sizeBytes(len(body), width)...), body...)
}

func el(id uint32, parts ...[]byte) []byte { return elw(id, 1, parts...) }

// unknown writes an element header of unknown size with the given width.
func unknown(id uint32, width int) []byte {
	s := make([]byte, width)
	for i := range s {
		s[i] = 0xFF
	}
	s[0] = 0xFF >> (width - 1)
	return append(idBytes(id), s...)
}

func u8(v byte) []byte { return []byte{v} }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

var (
	ebmlHeader = el(IDEBML, el(IDDocType, []byte("matroska")))
	info       = el(IDInfo, elw(IDTimecodeScale, 3, []byte{0x0F, 0x42, 0x40}))
	avcTrack   = el(IDTrackEntry, el(IDTrackNumber, u8(1)), el(IDTrackType, u8(1)), el(IDCodecID, []byte("V_MPEG4/ISO/AVC\x00")), el(IDCodecPrivate, []byte{1, 2, 3}))
	aacTrack   = el(IDTrackEntry, el(IDTrackNumber, u8(2)), el(IDTrackType, u8(2)), el(IDCodecID, []byte("A_AAC")), el(IDCodecPrivate, []byte{0x11, 0x90}),
		el(IDAudio, el(IDSamplingFreq, []byte{0x47, 0x3b, 0x80, 0x00}), el(IDChannels, u8(2))))
	tracks1 = el(IDTracks, avcTrack)
	tracks2 = el(IDTracks, avcTrack, aacTrack)
	head    = cat(ebmlHeader, unknown(IDSegment, 1), info, tracks1)
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func simpleBlock(track byte, tc int16, flags byte, data ...byte) []byte {
	return el(IDSimpleBlock, []byte{0x80 | track, byte(uint16(tc) >> 8), byte(tc), flags}, data)
}

func tags(kv ...string) []byte {
	var st [][]byte
	for i := 0; i+1 < len(kv); i += 2 {
		st = append(st, el(IDSimpleTag, el(IDTagName, []byte(kv[i])), el(IDTagString, []byte(kv[i+1]))))
	}
	return el(IDTags, el(IDTag, append([][]byte{el(IDTargets)}, st...)...))
}

// describe renders the events of an input, ending with EOF or the error class.
func describe(input []byte, chunk int) string {
	var r io.Reader = bytes.NewReader(input)
	if chunk > 0 {
		r = &chunkReader{p: input, n: chunk}
	}
	rd := NewReader(r)
	var out []string
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return strings.Join(append(out, "EOF"), " ")
		}
		if err != nil {
			class := "io"
			switch {
			case errors.Is(err, ErrTruncated):
				class = "truncated"
			case errors.Is(err, ErrTooLarge):
				class = "toolarge"
			case errors.Is(err, ErrInvalid):
				class = "invalid"
			}
			return strings.Join(append(out, "ERR:"+class), " ")
		}
		switch ev.Kind {
		case KindTracks:
			var ids []string
			for _, t := range ev.Header.Tracks {
				ids = append(ids, fmt.Sprintf("%d:%s:%x", t.Number, t.CodecID, t.CodecPrivate))
			}
			out = append(out, fmt.Sprintf("Tracks(scale=%d %s)", ev.Header.TimecodeScale, strings.Join(ids, ",")))
		case KindTimecode:
			out = append(out, fmt.Sprintf("Timecode(%d)", ev.Timecode))
		case KindBlock:
			b := ev.Block
			var fr []string
			for _, f := range b.Frames {
				fr = append(fr, fmt.Sprintf("%x", ev.Raw[f.Off:f.Off+f.Len]))
			}
			out = append(out, fmt.Sprintf("Block(t%d tc=%d key=%v dur=%d [%s])", b.Track, b.Timecode, b.Key, b.Duration, strings.Join(fr, " ")))
		case KindTags:
			var kv []string
			for _, t := range ev.Tags {
				kv = append(kv, t.Name+"="+t.Value)
			}
			out = append(out, "Tags("+strings.Join(kv, ",")+")")
		default:
			out = append(out, ev.Kind.String())
		}
	}
}

// chunkReader returns at most n bytes per Read, as a chunked body arriving
// frame by frame does.
type chunkReader struct {
	p []byte
	n int
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if len(c.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), c.n)], c.p)
	c.p = c.p[n:]
	return n, nil
}

type readerCase struct {
	name  string
	input []byte
	want  string
}

var hdr = "EBMLHeader Segment Tracks(scale=1000000 1:V_MPEG4/ISO/AVC:010203)"

var readerCases = []readerCase{
	{"empty", nil, "EOF"},
	{"header only", head, hdr + " EOF"},
	{"unknown-size cluster ended by EOF", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(5)), simpleBlock(1, 0, 0x80, 0xAA, 0xBB)),
		hdr + " ClusterStart Timecode(5) Block(t1 tc=0 key=true dur=-1 [aabb]) ClusterEnd EOF"},
	{"8-byte unknown sizes (GStreamer)", cat(ebmlHeader, unknown(IDSegment, 8), info, tracks1, unknown(IDCluster, 8), el(IDTimecode, u64(7)), simpleBlock(1, 0, 0x80, 1)),
		hdr + " ClusterStart Timecode(7) Block(t1 tc=0 key=true dur=-1 [01]) ClusterEnd EOF"},
	{"unknown-size cluster ended by next cluster and tags", cat(head,
		unknown(IDCluster, 1), el(IDTimecode, u64(1795289339636)), el(IDPosition, u8(0)), simpleBlock(1, 0, 0x80, 1), tags("K", "V", "AWS_KINESISVIDEO_END_OF_FRAGMENT", ""),
		unknown(IDCluster, 1), el(IDTimecode, u8(40)), simpleBlock(1, -3, 0x00, 2)),
		hdr + " ClusterStart Timecode(1795289339636) ClusterOther Block(t1 tc=0 key=true dur=-1 [01]) ClusterEnd Tags(K=V,AWS_KINESISVIDEO_END_OF_FRAGMENT=) ClusterStart Timecode(40) Block(t1 tc=-3 key=false dur=-1 [02]) ClusterEnd EOF"},
	{"known-size cluster and segment", cat(ebmlHeader, elw(IDSegment, 8, info, tracks1, el(IDCluster, el(IDTimecode, u8(1)), simpleBlock(1, 2, 0x80, 9))), ebmlHeader),
		hdr + " ClusterStart Timecode(1) Block(t1 tc=2 key=true dur=-1 [09]) ClusterEnd EBMLHeader EOF"},
	{"size widths 1 to 8", cat(ebmlHeader, unknown(IDSegment, 1), info, tracks1, unknown(IDCluster, 1), el(IDTimecode, u8(0)),
		elw(IDSimpleBlock, 1, []byte{0x81, 0, 1, 0x80, 1}), elw(IDSimpleBlock, 2, []byte{0x81, 0, 2, 0, 2}), elw(IDSimpleBlock, 3, []byte{0x81, 0, 3, 0, 3}),
		elw(IDSimpleBlock, 4, []byte{0x81, 0, 4, 0, 4}), elw(IDSimpleBlock, 5, []byte{0x81, 0, 5, 0, 5}), elw(IDSimpleBlock, 6, []byte{0x81, 0, 6, 0, 6}),
		elw(IDSimpleBlock, 7, []byte{0x81, 0, 7, 0, 7}), elw(IDSimpleBlock, 8, []byte{0x81, 0, 8, 0, 8})),
		hdr + " ClusterStart Timecode(0) Block(t1 tc=1 key=true dur=-1 [01]) Block(t1 tc=2 key=false dur=-1 [02]) Block(t1 tc=3 key=false dur=-1 [03]) Block(t1 tc=4 key=false dur=-1 [04]) Block(t1 tc=5 key=false dur=-1 [05]) Block(t1 tc=6 key=false dur=-1 [06]) Block(t1 tc=7 key=false dur=-1 [07]) Block(t1 tc=8 key=false dur=-1 [08]) ClusterEnd EOF"},
	{"two tracks, negative audio timecode first (GStreamer)", cat(ebmlHeader, unknown(IDSegment, 1), info, tracks2, unknown(IDCluster, 1), el(IDTimecode, u8(100)),
		simpleBlock(2, -20, 0x80, 0xA1), simpleBlock(1, 0, 0x80, 0xF1)),
		"EBMLHeader Segment Tracks(scale=1000000 1:V_MPEG4/ISO/AVC:010203,2:A_AAC:1190) ClusterStart Timecode(100) Block(t2 tc=-20 key=true dur=-1 [a1]) Block(t1 tc=0 key=true dur=-1 [f1]) ClusterEnd EOF"},
	{"block group with duration and reference", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(0)),
		el(IDBlockGroup, el(IDBlock, []byte{0x81, 0, 0, 0}, []byte{5, 6}), el(IDBlockDuration, u8(40))),
		el(IDBlockGroup, el(IDBlock, []byte{0x81, 0, 40, 0}, []byte{7}), el(IDReferenceBlock, u8(0xD8)))),
		hdr + " ClusterStart Timecode(0) Block(t1 tc=0 key=true dur=40 [0506]) Block(t1 tc=40 key=false dur=-1 [07]) ClusterEnd EOF"},
	{"Xiph lacing", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(0)), simpleBlock(1, 0, 0x82, 2, 1, 2, 0xA, 0xB, 0xB, 0xC)),
		hdr + " ClusterStart Timecode(0) Block(t1 tc=0 key=true dur=-1 [0a 0b0b 0c]) ClusterEnd EOF"},
	{"Xiph lacing with 255 continuation", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(0)), elw(IDSimpleBlock, 2, []byte{0x81, 0, 0, 0x02, 1, 255, 0}, bytes.Repeat([]byte{7}, 255), []byte{8})),
		hdr + " ClusterStart Timecode(0) Block(t1 tc=0 key=false dur=-1 [" + strings.Repeat("07", 255) + " 08]) ClusterEnd EOF"},
	{"fixed lacing", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(0)), simpleBlock(1, 0, 0x84, 2, 1, 1, 2, 2, 3, 3)),
		hdr + " ClusterStart Timecode(0) Block(t1 tc=0 key=true dur=-1 [0101 0202 0303]) ClusterEnd EOF"},
	{"EBML lacing", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(0)), simpleBlock(1, 0, 0x86, 2, 0x82, 0xC0, 1, 1, 2, 2, 2, 3)),
		hdr + " ClusterStart Timecode(0) Block(t1 tc=0 key=true dur=-1 [0101 020202 03]) ClusterEnd EOF"},
	{"segment tags and skipped elements", cat(ebmlHeader, unknown(IDSegment, 1), el(IDSeekHead, u8(0)), el(IDVoid, u8(0), u8(0)), info, tracks1, tags("A", "1", "B", "2"),
		el(IDCues, u8(0)), unknown(IDCluster, 1), el(IDCRC32, u64(0)[:4]), el(IDTimecode, u8(3)), el(IDVoid), simpleBlock(1, 0, 0x80, 4)),
		hdr + " Tags(A=1,B=2) ClusterStart ClusterOther Timecode(3) ClusterOther Block(t1 tc=0 key=true dur=-1 [04]) ClusterEnd EOF"},
	{"targeted tags are not fragment metadata", cat(head, el(IDTags, el(IDTag, el(IDTargets, el(IDTagTrackUID, u8(1))), el(IDSimpleTag, el(IDTagName, []byte("DURATION")), el(IDTagString, []byte("00:00:10")))))),
		hdr + " Tags() EOF"},
	{"new stream header in the same body", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(1)), simpleBlock(1, 0, 0x80, 1), head, unknown(IDCluster, 1), el(IDTimecode, u8(2)), simpleBlock(1, 0, 0x80, 2)),
		hdr + " ClusterStart Timecode(1) Block(t1 tc=0 key=true dur=-1 [01]) ClusterEnd " + hdr + " ClusterStart Timecode(2) Block(t1 tc=0 key=true dur=-1 [02]) ClusterEnd EOF"},

	// Bad input.
	{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), "ERR:invalid"},
	{"zero byte where an ID starts", []byte{0x00, 0x01}, "ERR:invalid"},
	{"cluster before tracks", cat(ebmlHeader, unknown(IDSegment, 1), unknown(IDCluster, 1)), "EBMLHeader Segment ERR:invalid"},
	{"segment before EBML header", unknown(IDSegment, 1), "ERR:invalid"},
	{"wrong doctype", el(IDEBML, el(IDDocType, []byte("avi"))), "ERR:invalid"},
	{"no tracks", cat(ebmlHeader, unknown(IDSegment, 1), el(IDTracks)), "EBMLHeader Segment ERR:invalid"},
	{"four tracks", cat(ebmlHeader, unknown(IDSegment, 1), el(IDTracks,
		el(IDTrackEntry, el(IDTrackNumber, u8(1))), el(IDTrackEntry, el(IDTrackNumber, u8(2))), el(IDTrackEntry, el(IDTrackNumber, u8(3))), el(IDTrackEntry, el(IDTrackNumber, u8(4))))),
		"EBMLHeader Segment ERR:invalid"},
	{"duplicate track numbers", cat(ebmlHeader, unknown(IDSegment, 1), el(IDTracks, avcTrack, avcTrack)), "EBMLHeader Segment ERR:invalid"},
	{"truncated header", head[:len(head)-3], "EBMLHeader Segment ERR:truncated"},
	{"truncated block", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(1)), simpleBlock(1, 0, 0x80, 1, 2, 3)[:6]),
		hdr + " ClusterStart Timecode(1) ERR:truncated"},
	{"truncated element header", cat(head, unknown(IDCluster, 1), []byte{0x1F, 0x43}), hdr + " ClusterStart ERR:truncated"},
	{"truncated known-size segment", cat(ebmlHeader, elw(IDSegment, 8, info, tracks1, u64(0))[:12+len(info)+len(tracks1)]), "EBMLHeader Segment Tracks(scale=1000000 1:V_MPEG4/ISO/AVC:010203) ERR:truncated"},
	{"child overruns known-size cluster", cat(head, idBytes(IDCluster), []byte{0x82}, el(IDTimecode, u8(1))),
		hdr + " ClusterStart ERR:invalid"},
	{"unknown-size block", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(1)), unknown(IDSimpleBlock, 1)), hdr + " ClusterStart Timecode(1) ERR:invalid"},
	{"short block", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(1)), el(IDSimpleBlock, []byte{0x81, 0})), hdr + " ClusterStart Timecode(1) ERR:invalid"},
	{"bad fixed lacing", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(0)), simpleBlock(1, 0, 0x84, 1, 1, 2, 3)), hdr + " ClusterStart Timecode(0) ERR:invalid"},
	{"Xiph lace overrun", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(0)), simpleBlock(1, 0, 0x82, 1, 200, 1)), hdr + " ClusterStart Timecode(0) ERR:invalid"},
	{"EBML lace negative size", cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(0)), simpleBlock(1, 0, 0x86, 2, 0x81, 0x80, 1, 1)), hdr + " ClusterStart Timecode(0) ERR:invalid"},
	{"oversized element", cat(head, unknown(IDCluster, 1), idBytes(IDSimpleBlock), sizeBytes(100<<20, 4)), hdr + " ClusterStart ERR:toolarge"},
	{"bad timecode scale", cat(ebmlHeader, unknown(IDSegment, 1), el(IDInfo, el(IDTimecodeScale, u8(0)))), "EBMLHeader Segment ERR:invalid"},
	{"9-byte timecode", cat(head, unknown(IDCluster, 1), el(IDTimecode, u64(1), u8(1))), hdr + " ClusterStart ERR:invalid"},
}

func TestReaderCases(t *testing.T) {
	for _, tc := range readerCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(tc.input, 0); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			// The same bytes arriving a few at a time read the same.
			for _, chunk := range []int{1, 3, 7} {
				if got := describe(tc.input, chunk); got != tc.want {
					t.Errorf("chunks of %d: got  %s\nwant %s", chunk, got, tc.want)
				}
			}
		})
	}
}

func TestReaderOffsets(t *testing.T) {
	in := cat(head, unknown(IDCluster, 1), el(IDTimecode, u8(5)), simpleBlock(1, 0, 0x80, 0xAA, 0xBB))
	rd := NewReader(bytes.NewReader(in))
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		if ev.Kind == KindClusterEnd {
			continue
		}
		if !bytes.Equal(in[ev.Offset:ev.Offset+int64(len(ev.Raw))], ev.Raw) {
			t.Fatalf("%s: Raw is not the input at Offset %d", ev.Kind, ev.Offset)
		}
	}
	if rd.Offset() != int64(len(in)) {
		t.Fatalf("consumed %d of %d bytes", rd.Offset(), len(in))
	}
}

func TestReaderCaptures(t *testing.T) {
	for _, c := range []struct {
		file            string
		clusters, tags  int
		videoKeyPerClus bool
	}{
		{"producer-c-video-absolute-tags.mkv", 6, 60, true},
		{"producer-c-av-relative.mkv", 3, 1, true},
	} {
		t.Run(c.file, func(t *testing.T) {
			data := readFile(t, "../../testdata/producer/"+c.file)
			rd := NewReader(&chunkReader{p: data, n: 1000})
			clusters, tags, blocks := 0, 0, 0
			firstBlock := false
			for {
				ev, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				switch ev.Kind {
				case KindClusterStart:
					clusters++
					firstBlock = true
				case KindBlock:
					blocks++
					if firstBlock && ev.Block.Track == 1 {
						if !ev.Block.Key {
							t.Errorf("cluster %d does not start with a key frame", clusters)
						}
						firstBlock = false
					}
				case KindTags:
					tags += len(ev.Tags)
				}
			}
			if clusters != c.clusters || tags != c.tags || blocks == 0 {
				t.Fatalf("clusters %d tags %d blocks %d; want %d clusters, %d tags", clusters, tags, blocks, c.clusters, c.tags)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	for _, tc := range readerCases {
		f.Add(tc.input)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := NewReader(bytes.NewReader(data))
		rd.MaxElementSize = 1 << 20
		for i := 0; ; i++ {
			ev, err := rd.Next()
			if err != nil {
				if err != io.EOF && !IsInvalid(err) {
					t.Fatalf("unexpected error class: %v", err)
				}
				break
			}
			if ev.Kind != KindClusterEnd && ev.Offset+int64(len(ev.Raw)) > int64(len(data)) {
				t.Fatalf("event past the input")
			}
			for _, fr := range ev.Block.Frames {
				if fr.Off < 0 || fr.Len < 0 || fr.Off+fr.Len > len(ev.Raw) {
					t.Fatalf("frame %+v outside Raw of %d bytes", fr, len(ev.Raw))
				}
			}
			if i > len(data)+10 {
				t.Fatalf("more events than input bytes")
			}
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
