package hls

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Playlists are written by hand rather than with github.com/grafov/m3u8:
// the tags must come out exactly as below (EXTINF in milliseconds, a
// discontinuity before each EXT-X-MAP change, EXT-X-DISCONTINUITY-SEQUENCE),
// and a 5000-segment playlist must take a few milliseconds. The tests parse
// the output with m3u8 to check it.

// MediaSegment is one line of a media playlist.
type MediaSegment struct {
	// URI is the segment's URI; if empty, the playlist's URIPrefix, Number
	// in decimal and URISuffix (a 5000-segment playlist then builds no
	// strings).
	URI        string
	Number     uint64
	DurationNS int64
	// Discontinuity puts EXT-X-DISCONTINUITY before the segment.
	Discontinuity bool
	// MapURI, if set, puts an EXT-X-MAP before the segment (after its
	// discontinuity): a new init segment from here on.
	MapURI string
	// ProgramDateTime, if not zero, puts EXT-X-PROGRAM-DATE-TIME before it.
	ProgramDateTime time.Time
	// Parts are its partial segments (LL-HLS), listed before its URI.
	Parts []MediaPart
	// InProgress marks the last segment of a playlist as one still
	// arriving: its parts so far are listed, and no EXTINF or URI.
	InProgress bool
}

// MediaPart is an EXT-X-PART line.
type MediaPart struct {
	URI         string
	DurationNS  int64
	Independent bool
}

// MediaPlaylist is a media playlist.
type MediaPlaylist struct {
	MediaSequence         int64
	DiscontinuitySequence int64
	// VOD writes EXT-X-PLAYLIST-TYPE:VOD; Ended writes EXT-X-ENDLIST.
	VOD, Ended bool
	// MapURI is the first init segment (fMP4); "" for MPEG-TS.
	MapURI string
	// URIPrefix and URISuffix surround the Number of segments without a URI.
	URIPrefix, URISuffix string
	Segments             []MediaSegment
	// PartTargetNS, if not 0, makes a low-latency playlist: it writes
	// EXT-X-SERVER-CONTROL (CAN-BLOCK-RELOAD=YES, PART-HOLD-BACK) and
	// EXT-X-PART-INF, and PreloadHintURI, if set, an EXT-X-PRELOAD-HINT
	// for the next part.
	PartTargetNS   int64
	PartHoldBackNS int64
	PreloadHintURI string
}

// TargetDuration is the EXT-X-TARGETDURATION of segments: the longest,
// rounded to the nearest second as RFC 8216 asks, and at least 1. A
// segment still arriving (InProgress) does not count.
func TargetDuration(segs []MediaSegment) int {
	t := 1
	for _, s := range segs {
		if s.InProgress {
			continue
		}
		t = max(t, int(math.Round(float64(s.DurationNS)/1e9)))
	}
	return t
}

// WriteMediaPlaylist writes p.
func WriteMediaPlaylist(w io.Writer, p *MediaPlaylist) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	version := 3
	if p.MapURI != "" {
		version = 7 // EXT-X-MAP for fMP4
	}
	fmt.Fprintf(bw, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n", version, TargetDuration(p.Segments), p.MediaSequence)
	if p.PartTargetNS > 0 {
		bw.WriteString("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=")
		bw.Write(appendSeconds(nil, p.PartHoldBackNS))
		bw.WriteString("\n#EXT-X-PART-INF:PART-TARGET=")
		bw.Write(appendSeconds(nil, p.PartTargetNS))
		bw.WriteByte('\n')
	}
	if p.DiscontinuitySequence != 0 {
		fmt.Fprintf(bw, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", p.DiscontinuitySequence)
	}
	if p.VOD {
		bw.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	if p.MapURI != "" {
		fmt.Fprintf(bw, "#EXT-X-MAP:URI=\"%s\"\n", p.MapURI)
	}
	var num []byte
	for _, s := range p.Segments {
		if s.Discontinuity {
			bw.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.MapURI != "" {
			fmt.Fprintf(bw, "#EXT-X-MAP:URI=\"%s\"\n", s.MapURI)
		}
		if !s.ProgramDateTime.IsZero() {
			bw.WriteString("#EXT-X-PROGRAM-DATE-TIME:")
			bw.WriteString(s.ProgramDateTime.UTC().Format("2006-01-02T15:04:05.000Z"))
			bw.WriteByte('\n')
		}
		for _, pt := range s.Parts {
			bw.WriteString("#EXT-X-PART:DURATION=")
			bw.Write(appendSeconds(num[:0], pt.DurationNS))
			bw.WriteString(`,URI="`)
			bw.WriteString(pt.URI)
			bw.WriteByte('"')
			if pt.Independent {
				bw.WriteString(",INDEPENDENT=YES")
			}
			bw.WriteByte('\n')
		}
		if s.InProgress {
			continue // a segment still arriving: its parts only
		}
		bw.WriteString("#EXTINF:")
		num = appendSeconds(num[:0], s.DurationNS)
		bw.Write(num)
		bw.WriteString(",\n")
		if s.URI != "" {
			bw.WriteString(s.URI)
		} else {
			bw.WriteString(p.URIPrefix)
			num = strconv.AppendUint(num[:0], s.Number, 10)
			bw.Write(num)
			bw.WriteString(p.URISuffix)
		}
		bw.WriteByte('\n')
	}
	if p.PreloadHintURI != "" {
		fmt.Fprintf(bw, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%s\"\n", p.PreloadHintURI)
	}
	if p.Ended {
		bw.WriteString("#EXT-X-ENDLIST\n")
	}
	return bw.Flush()
}

// appendSeconds appends a duration as seconds with millisecond precision.
func appendSeconds(dst []byte, ns int64) []byte {
	ms := (ns + 500e3) / 1e6
	dst = strconv.AppendInt(dst, ms/1000, 10)
	f := ms % 1000
	return append(dst, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

// Variant is the video (or audio-only) stream of a master playlist.
type Variant struct {
	URI                         string
	Bandwidth, AverageBandwidth int64
	Codecs                      []string
	Width, Height               int
	FrameRate                   float64
}

// MasterPlaylist is a master playlist: one variant, and an audio rendition
// when audio is a separate playlist (fMP4 with a second track).
type MasterPlaylist struct {
	Variant  Variant
	AudioURI string
}

// WriteMasterPlaylist writes m.
func WriteMasterPlaylist(w io.Writer, m *MasterPlaylist) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	if m.AudioURI != "" {
		fmt.Fprintf(bw, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"%s\"\n", m.AudioURI)
	}
	v := m.Variant
	attrs := []string{"BANDWIDTH=" + strconv.FormatInt(max(v.Bandwidth, 1), 10)}
	if v.AverageBandwidth > 0 {
		attrs = append(attrs, "AVERAGE-BANDWIDTH="+strconv.FormatInt(v.AverageBandwidth, 10))
	}
	if len(v.Codecs) > 0 {
		attrs = append(attrs, `CODECS="`+strings.Join(v.Codecs, ",")+`"`)
	}
	if v.Width > 0 && v.Height > 0 {
		attrs = append(attrs, fmt.Sprintf("RESOLUTION=%dx%d", v.Width, v.Height))
	}
	if v.FrameRate > 0 {
		attrs = append(attrs, "FRAME-RATE="+strconv.FormatFloat(v.FrameRate, 'f', 3, 64))
	}
	if m.AudioURI != "" {
		attrs = append(attrs, `AUDIO="audio"`)
	}
	fmt.Fprintf(bw, "#EXT-X-STREAM-INF:%s\n%s\n", strings.Join(attrs, ","), v.URI)
	return bw.Flush()
}
