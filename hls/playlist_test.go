package hls

import (
	"bytes"
	"strconv"
	"testing"
)

// TestMediaPlaylistURIFromNumber checks that segments given by number
// write the same playlist as segments given by URI.
func TestMediaPlaylistURIFromNumber(t *testing.T) {
	const prefix, suffix = "getMP4MediaFragment.mp4?FragmentNumber=", "&TrackNumber=1&SessionToken=t"
	byURI := &MediaPlaylist{MediaSequence: 7, VOD: true, Ended: true, MapURI: "init.mp4"}
	byNumber := &MediaPlaylist{MediaSequence: 7, VOD: true, Ended: true, MapURI: "init.mp4", URIPrefix: prefix, URISuffix: suffix}
	for i, n := range []uint64{0, 9, 91343852333181058, 1<<64 - 1} {
		seg := MediaSegment{DurationNS: int64(i+1) * 1e9, Discontinuity: i == 2}
		withURI := seg
		withURI.URI = prefix + strconv.FormatUint(n, 10) + suffix
		byURI.Segments = append(byURI.Segments, withURI)
		seg.Number = n
		byNumber.Segments = append(byNumber.Segments, seg)
	}
	var a, b bytes.Buffer
	WriteMediaPlaylist(&a, byURI)
	WriteMediaPlaylist(&b, byNumber)
	if a.String() != b.String() || !bytes.Contains(b.Bytes(), []byte(prefix+"18446744073709551615"+suffix+"\n")) {
		t.Fatalf("by number:\n%s\nby URI:\n%s", b.String(), a.String())
	}
}
