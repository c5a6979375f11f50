// Package dash writes the MPEG-DASH manifests (MPDs) of kvsgate's DASH
// sessions. It knows nothing of HTTP or of the fragment index: the web
// layer hands it the tracks and the segment timeline of a session's window.
//
// An MPD has one Period (static MPDs: one per continuous run, see
// Manifest.PeriodGap) and one AdaptationSet (with one Representation) per
// track. Segments are addressed by time: every AdaptationSet has a
// SegmentTemplate whose media URL carries $Time$, the segment's start in
// the timeline's timescale (milliseconds), and a SegmentTimeline that lists
// every segment at its true time (S@t), gaps included (in a static Period
// a segment is listed up to the next one: S@d covers a small gap).
//
// github.com/zencoder/go-dash builds and marshals everything but the S
// elements: its SegmentTimelineSegment has no room for the kvs:fn and
// kvs:ts attributes, and encoding/xml's reflection over up to 5000 S
// elements per AdaptationSet would cost more than the rest of a manifest
// request. The S elements are written by hand into the SegmentTimeline
// element go-dash marshals empty (see Write).
package dash

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/zencoder/go-dash/v3/mpd"
)

// Namespace is the XML namespace of the kvs:fn and kvs:ts attributes that
// S elements carry when a session displays fragment numbers or timestamps.
// It is kvsgate's own URN: KVS documents the attribute names, not their
// namespace.
const Namespace = "urn:kvsgate:dash:kvs:2026"

// Timescale is the timescale of every SegmentTemplate: milliseconds, the
// precision of KVS timestamps, and coarse enough that epoch times stay
// exact in a JavaScript number (players substitute $Time$ from a double).
const Timescale = 1000

// Profile is the DASH profile of kvsgate's manifests (SegmentTemplate).
const Profile = "urn:mpeg:dash:profile:isoff-live:2011"

// UTCTimingScheme is the scheme of a dynamic MPD's UTCTiming element: a GET
// of its URL answers the server's time in ISO 8601.
const UTCTimingScheme = "urn:mpeg:dash:utc:http-iso:2014"

// Manifest is what an MPD says.
type Manifest struct {
	// Dynamic: a LIVE or LIVE_REPLAY session (type="dynamic"); else static.
	Dynamic bool
	// Ended (dynamic): nothing will be added; the MPD gets its
	// mediaPresentationDuration and no minimumUpdatePeriod.
	Ended bool
	// AvailabilityStart and PublishTime (dynamic).
	AvailabilityStart, PublishTime time.Time
	// MinimumUpdatePeriod, TimeShiftBufferDepth, SuggestedPresentationDelay (dynamic).
	MinimumUpdatePeriod, TimeShiftBufferDepth, SuggestedPresentationDelay time.Duration
	MinBufferTime                                                         time.Duration
	// PeriodStart is the (first) Period's start in the presentation.
	PeriodStart time.Duration
	// PresentationTimeOffset is the timeline time (in Timescale units) at
	// the (first) Period's start.
	PresentationTimeOffset int64
	// PeriodGap > 0 starts a new Period after every gap longer than it
	// (Timescale units) between a segment's end and the next one's start,
	// unless the next segment is Joined. Such a Period starts where the
	// previous one ends, and its presentationTimeOffset is its first
	// segment's time: the gap is left out of the presentation, the timeline
	// keeps the true times.
	PeriodGap int64
	// UTCTiming is the URL of the server's clock (dynamic; "" for none).
	UTCTiming string
	Tracks    []Track
	// Segments in order of time: strictly increasing Time. A segment that
	// overlaps the next one is listed as ending where the next begins (a
	// timeline cannot overlap).
	Segments []Segment
	// DisplayNumber and DisplayTimestamp add kvs:fn and kvs:ts to every S.
	DisplayNumber, DisplayTimestamp bool
}

// Track is one AdaptationSet.
type Track struct {
	// ID is the AdaptationSet's and Representation's id: the track number.
	ID     int
	Video  bool
	Codecs string // RFC 6381
	// Width, Height and FrameRate of video; 0 when unknown.
	Width, Height int
	FrameRate     float64
	// SampleRate and Channels of audio; 0 when unknown.
	SampleRate, Channels int
	// Bandwidth in bits per second (at least 1 is written).
	Bandwidth int64
	// Init and Media are the SegmentTemplate's URLs; Media holds $Time$.
	Init, Media string
}

// Segment is one S element: one fragment.
type Segment struct {
	// Time and Duration in Timescale units.
	Time, Duration int64
	// Number is the fragment number (kvs:fn).
	Number uint64
	// TimestampMS is the fragment's timestamp in the session's timestamp
	// source, unix milliseconds (kvs:ts).
	TimestampMS int64
	// Joined (with PeriodGap): the segment continues the previous one
	// although their times leave a gap longer than PeriodGap (the caller
	// found their media continuous: a timestamp that is not where the media
	// starts, or the jitter of server timestamps). It stays in the previous
	// one's Period, which is listed as lasting up to it, as with any gap
	// inside a Period: the timeline of a Period has no hole for a player to
	// stop at.
	Joined bool
}

// doc is the MPD with kvsgate's namespace declared on it (go-dash's MPD has
// a field for Dolby's namespace only).
type doc struct {
	XMLName xml.Name `xml:"MPD"`
	*mpd.MPD
	KVS string `xml:"xmlns:kvs,attr,omitempty"`
}

// placeholder is how encoding/xml marshals go-dash's empty SegmentTimeline.
var placeholder = []byte("<SegmentTimeline></SegmentTimeline>")

// Errors of Write.
var (
	ErrNoSegments = errors.New("dash: a manifest needs at least one segment")
	ErrOrder      = errors.New("dash: segment times must increase")
)

// Write writes m as an MPD, in one Write call.
func Write(w io.Writer, m *Manifest) error {
	if len(m.Segments) == 0 {
		return ErrNoSegments
	}
	for i := range m.Segments {
		if s := &m.Segments[i]; s.Time < 0 || s.Duration < 0 || (i > 0 && s.Time <= m.Segments[i-1].Time) {
			return fmt.Errorf("%w: segment %d at %d (duration %d)", ErrOrder, i, s.Time, s.Duration)
		}
	}
	if first := m.Segments[0].Time; first < m.PresentationTimeOffset {
		return fmt.Errorf("%w: segment at %d before the presentation time offset %d", ErrOrder, first, m.PresentationTimeOffset)
	}
	runs := m.runs()
	skeleton, err := xml.MarshalIndent(m.skeleton(runs), "", "  ")
	if err != nil {
		return err
	}
	timelines := make([][]byte, len(runs))
	size := len(xml.Header) + len(skeleton) + 64
	for k, r := range runs {
		timelines[k] = m.timeline(r.first, r.last)
		size += len(m.Tracks) * (len(timelines[k]) + (r.last-r.first+1)*12)
	}
	var out bytes.Buffer
	out.Grow(size)
	out.WriteString(xml.Header)
	// The placeholders come in document order: Period by Period, track by track.
	for k := 0; ; k++ {
		i := bytes.Index(skeleton, placeholder)
		if i < 0 {
			break
		}
		timeline := timelines[min(k/max(len(m.Tracks), 1), len(runs)-1)]
		// The S elements go one level deeper than their SegmentTimeline.
		indent := skeleton[bytes.LastIndexByte(skeleton[:i], '\n')+1 : i]
		out.Write(skeleton[:i])
		out.WriteString("<SegmentTimeline>\n")
		for line := range bytes.Lines(timeline) {
			out.Write(indent)
			out.WriteString("  ")
			out.Write(line)
		}
		out.Write(indent)
		out.WriteString("</SegmentTimeline>")
		skeleton = skeleton[i+len(placeholder):]
	}
	out.Write(skeleton)
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// End is where the timeline ends: the last segment's end, in Timescale units.
func (m *Manifest) End() int64 {
	last := m.Segments[len(m.Segments)-1]
	return last.Time + last.Duration
}

// run is the segments of one Period: first to last (indexes), its start in
// the presentation and its presentation time offset.
type run struct {
	first, last int
	start       time.Duration
	pto         int64
}

// runs splits the segments into Periods at gaps longer than PeriodGap.
func (m *Manifest) runs() []run {
	rs := []run{{first: 0, start: m.PeriodStart, pto: m.PresentationTimeOffset}}
	for i := 1; i < len(m.Segments); i++ {
		prev := &m.Segments[i-1]
		if m.PeriodGap <= 0 || m.Segments[i].Joined || m.Segments[i].Time-(prev.Time+prev.Duration) <= m.PeriodGap {
			continue
		}
		r := &rs[len(rs)-1]
		r.last = i - 1
		end := r.start + ticks(prev.Time+prev.Duration-r.pto)
		rs = append(rs, run{first: i, start: end, pto: m.Segments[i].Time})
	}
	rs[len(rs)-1].last = len(m.Segments) - 1
	return rs
}

// ticks converts Timescale units to a duration.
func ticks(n int64) time.Duration { return time.Duration(n) * (time.Second / Timescale) }

// duration is segment i's duration as listed: an overlap with the next
// segment is cut off, and with PeriodGap a gap before the next segment of
// the same Period filled. dash.js 5.2.1 ends a static presentation at a
// hole in its timeline, even one of a millisecond (server timestamps have
// such holes all the time); the media itself is where its decode times
// put it, and players step over a small hole in the buffer.
func (m *Manifest) duration(i int) int64 {
	d := m.Segments[i].Duration
	if i+1 < len(m.Segments) {
		next := m.Segments[i+1].Time - m.Segments[i].Time
		if m.PeriodGap > 0 && (m.Segments[i+1].Joined || next-d <= m.PeriodGap) {
			return next
		}
		d = min(d, next)
	}
	return d
}

// timeline writes the S elements, one a line, unindented. Without kvs
// attributes, runs of contiguous segments of equal duration share one S
// (S@r). S@t is written where a segment does not start where the previous
// one ended: on the first, and after a gap.
func (m *Manifest) timeline(first, last int) []byte {
	kvs := m.DisplayNumber || m.DisplayTimestamp
	per := 34
	if m.DisplayNumber {
		per += 30
	}
	if m.DisplayTimestamp {
		per += 26
	}
	b := make([]byte, 0, (last-first+1)*per)
	end := int64(-1)
	for i := first; i <= last; {
		s := &m.Segments[i]
		d := m.duration(i)
		n := 1
		if !kvs {
			for i+n <= last && m.duration(i+n) == d && m.Segments[i+n].Time == s.Time+int64(n)*d {
				n++
			}
		}
		b = append(b, "<S"...)
		if s.Time != end {
			b = append(b, ` t="`...)
			b = strconv.AppendInt(b, s.Time, 10)
			b = append(b, '"')
		}
		b = append(b, ` d="`...)
		b = strconv.AppendInt(b, d, 10)
		b = append(b, '"')
		if n > 1 {
			b = append(b, ` r="`...)
			b = strconv.AppendInt(b, int64(n-1), 10)
			b = append(b, '"')
		}
		if m.DisplayNumber {
			b = append(b, ` kvs:fn="`...)
			b = strconv.AppendUint(b, s.Number, 10)
			b = append(b, '"')
		}
		if m.DisplayTimestamp {
			b = append(b, ` kvs:ts="`...)
			b = appendEpochMS(b, s.TimestampMS)
			b = append(b, '"')
		}
		b = append(b, "/>\n"...)
		end = s.Time + int64(n)*d
		i += n
	}
	return b
}

// appendEpochMS appends unix milliseconds as seconds with three decimals.
func appendEpochMS(b []byte, ms int64) []byte {
	if ms < 0 {
		b = append(b, '-')
		ms = -ms
	}
	b = strconv.AppendInt(b, ms/1000, 10)
	frac := ms % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// skeleton is the MPD without its S elements.
func (m *Manifest) skeleton(runs []run) *doc {
	str := func(s string) *string { return &s }
	typ := "static"
	if m.Dynamic {
		typ = "dynamic"
	}
	root := &mpd.MPD{
		XMLNs:         str("urn:mpeg:dash:schema:mpd:2011"),
		Profiles:      str(Profile),
		Type:          str(typ),
		MinBufferTime: str(Duration(m.MinBufferTime)),
	}
	// The presentation lasts from the first Period's start to the timeline's
	// end, less the gaps between Periods.
	lastRun := runs[len(runs)-1]
	total := lastRun.start + ticks(m.End()-lastRun.pto)
	if !m.Dynamic || m.Ended {
		root.MediaPresentationDuration = str(Duration(total))
	}
	if m.Dynamic {
		root.AvailabilityStartTime = str(DateTime(m.AvailabilityStart))
		root.PublishTime = str(DateTime(m.PublishTime))
		if !m.Ended {
			root.MinimumUpdatePeriod = str(Duration(m.MinimumUpdatePeriod))
		}
		root.TimeShiftBufferDepth = str(Duration(m.TimeShiftBufferDepth))
		spd := mpd.Duration(m.SuggestedPresentationDelay)
		root.SuggestedPresentationDelay = &spd
		if m.UTCTiming != "" {
			root.UTCTiming = &mpd.DescriptorType{SchemeIDURI: str(UTCTimingScheme), Value: str(m.UTCTiming)}
		}
	}
	for k, r := range runs {
		root.Periods = append(root.Periods, m.period(k, r))
	}
	d := &doc{MPD: root}
	if m.DisplayNumber || m.DisplayTimestamp {
		d.KVS = Namespace
	}
	return d
}

// period is one Period of the skeleton.
func (m *Manifest) period(k int, r run) *mpd.Period {
	str := func(s string) *string { return &s }
	i64 := func(v int64) *int64 { return &v }
	start := mpd.Duration(r.start)
	period := &mpd.Period{ID: strconv.Itoa(k), Start: &start}
	for _, t := range m.Tracks {
		id := strconv.Itoa(t.ID)
		as := &mpd.AdaptationSet{ID: str(id), SegmentAlignment: new(true)}
		as.StartWithSAP = i64(1) // a fragment starts with a key frame
		rep := &mpd.Representation{ID: str(id), Codecs: str(t.Codecs), Bandwidth: i64(max(1, t.Bandwidth))}
		if t.Video {
			as.ContentType = str("video")
			as.MimeType = str(mpd.DASH_MIME_TYPE_VIDEO_MP4)
			if t.Width > 0 && t.Height > 0 {
				rep.Width, rep.Height = i64(int64(t.Width)), i64(int64(t.Height))
			}
			if fr := FrameRate(t.FrameRate); fr != "" {
				rep.FrameRate = str(fr)
			}
		} else {
			as.ContentType = str("audio")
			as.MimeType = str(mpd.DASH_MIME_TYPE_AUDIO_MP4)
			if t.SampleRate > 0 {
				rep.AudioSamplingRate = i64(int64(t.SampleRate))
			}
			if t.Channels > 0 {
				rep.AudioChannelConfiguration = &mpd.AudioChannelConfiguration{
					SchemeIDURI: str(string(mpd.AUDIO_CHANNEL_CONFIGURATION_MPEG_DASH)), Value: str(strconv.Itoa(t.Channels))}
			}
		}
		as.SegmentTemplate = &mpd.SegmentTemplate{
			Timescale:       i64(Timescale),
			Initialization:  str(t.Init),
			Media:           str(t.Media),
			SegmentTimeline: &mpd.SegmentTimeline{},
		}
		if r.pto > 0 {
			pto := uint64(r.pto)
			as.SegmentTemplate.PresentationTimeOffset = &pto
		}
		as.Representations = []*mpd.Representation{rep}
		period.AdaptationSets = append(period.AdaptationSets, as)
	}
	return period
}

// Duration formats d as an xs:duration in seconds with up to millisecond
// precision: PT0S, PT2S, PT10.04S, PT3600S.
func Duration(d time.Duration) string {
	ms := d.Milliseconds()
	b := []byte("PT")
	if ms < 0 {
		b = []byte("-PT")
		ms = -ms
	}
	b = strconv.AppendInt(b, ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		f := []byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		for f[len(f)-1] == '0' {
			f = f[:len(f)-1]
		}
		b = append(b, f...)
	}
	return string(append(b, 'S'))
}

// DateTime formats t as an xs:dateTime in UTC with up to millisecond
// precision.
func DateTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

// FrameRate formats a frame rate as DASH's FrameRateType (an integer or a
// fraction): 25, 30000/1001, 12500/1000 (12.5); "" for none.
func FrameRate(fps float64) string {
	if !(fps > 0) || fps > 1e6 {
		return ""
	}
	if r := math.Round(fps); math.Abs(fps-r) < 0.001 {
		return strconv.Itoa(int(r))
	}
	if n := math.Round(fps * 1001 / 1000); math.Abs(fps-n*1000/1001) < 0.001 {
		return strconv.Itoa(int(n)*1000) + "/1001"
	}
	return strconv.Itoa(int(math.Round(fps*1000))) + "/1000"
}
