package dash

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zencoder/go-dash/v3/mpd"
)

func write(t *testing.T, m *Manifest) string {
	t.Helper()
	var b strings.Builder
	if err := Write(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func tracks() []Track {
	return []Track{
		{ID: 1, Video: true, Codecs: "avc1.64001e", Width: 640, Height: 480, FrameRate: 25, Bandwidth: 1e6,
			Init: "init.mp4?TrackNumber=1&SessionToken=T", Media: "media.mp4?TrackNumber=1&Time=$Time$&SessionToken=T"},
		{ID: 2, Codecs: "mp4a.40.2", SampleRate: 48000, Channels: 2, Bandwidth: 64000,
			Init: "init.mp4?TrackNumber=2&SessionToken=T", Media: "media.mp4?TrackNumber=2&Time=$Time$&SessionToken=T"},
	}
}

// timelines returns each SegmentTimeline's S lines, trimmed, joined by "|".
func timelines(text string) []string {
	var out []string
	for _, part := range strings.Split(text, "<SegmentTimeline>")[1:] {
		part = part[:strings.Index(part, "</SegmentTimeline>")]
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		out = append(out, strings.Join(lines, "|"))
	}
	return out
}

func TestTimelineRepeatsGapsOverlaps(t *testing.T) {
	m := &Manifest{Tracks: tracks(), PresentationTimeOffset: 1000, Segments: []Segment{
		{Time: 1000, Duration: 1000}, {Time: 2000, Duration: 1000}, {Time: 3000, Duration: 1000},
		{Time: 7000, Duration: 1000},                               // a 3 s gap
		{Time: 8000, Duration: 1000}, {Time: 8800, Duration: 1200}, // a 200 ms overlap
	}}
	text := write(t, m)
	want := `<S t="1000" d="1000" r="2"/>|<S t="7000" d="1000"/>|<S d="800"/>|<S d="1200"/>`
	tl := timelines(text)
	if len(tl) != 2 || tl[0] != want || tl[1] != want {
		t.Fatalf("timelines %q, want two of %q\n%s", tl, want, text)
	}
	if strings.Contains(text, "xmlns:kvs") || strings.Contains(text, "<Period id=\"1\"") {
		t.Errorf("a kvs namespace or a second Period without being asked:\n%s", text)
	}
	// go-dash reads it back; the URLs are escaped.
	doc, err := mpd.ReadFromString(text)
	if err != nil {
		t.Fatal(err)
	}
	st := doc.Periods[0].AdaptationSets[1].SegmentTemplate
	if *st.Media != tracks()[1].Media || *st.Timescale != 1000 || *st.PresentationTimeOffset != 1000 || *doc.Type != "static" ||
		*doc.MediaPresentationDuration != "PT9S" {
		t.Errorf("read back: media %q timescale %d pto %d type %s duration %s", *st.Media, *st.Timescale, *st.PresentationTimeOffset, *doc.Type, *doc.MediaPresentationDuration)
	}
	if !strings.Contains(text, `media="media.mp4?TrackNumber=1&amp;Time=$Time$&amp;SessionToken=T"`) {
		t.Errorf("media URL not escaped:\n%s", text)
	}
	rep := doc.Periods[0].AdaptationSets[0].Representations[0]
	if *rep.Width != 640 || *rep.FrameRate != "25" || *rep.Codecs != "avc1.64001e" || *doc.Periods[0].AdaptationSets[0].MimeType != "video/mp4" {
		t.Errorf("video representation %+v", rep)
	}
	audio := doc.Periods[0].AdaptationSets[1]
	if *audio.ContentType != "audio" || *audio.Representations[0].AudioSamplingRate != 48000 || *audio.Representations[0].AudioChannelConfiguration.Value != "2" {
		t.Errorf("audio AdaptationSet %+v", audio)
	}
}

func TestKVSAttributes(t *testing.T) {
	segs := []Segment{{Time: 1000, Duration: 1000, Number: 18446744073709551615, TimestampMS: 1790000000000},
		{Time: 2000, Duration: 1000, Number: 2, TimestampMS: 1790000001007}}
	for _, c := range []struct {
		number, timestamp bool
		want              string
	}{
		{true, true, `<S t="1000" d="1000" kvs:fn="18446744073709551615" kvs:ts="1790000000.000"/>|<S d="1000" kvs:fn="2" kvs:ts="1790000001.007"/>`},
		{true, false, `<S t="1000" d="1000" kvs:fn="18446744073709551615"/>|<S d="1000" kvs:fn="2"/>`},
		{false, true, `<S t="1000" d="1000" kvs:ts="1790000000.000"/>|<S d="1000" kvs:ts="1790000001.007"/>`},
	} {
		text := write(t, &Manifest{Tracks: tracks()[:1], Segments: segs, DisplayNumber: c.number, DisplayTimestamp: c.timestamp})
		if tl := timelines(text); len(tl) != 1 || tl[0] != c.want {
			t.Errorf("fn=%v ts=%v: %q, want %q", c.number, c.timestamp, tl, c.want)
		}
		if !strings.Contains(text, `xmlns:kvs="`+Namespace+`"`) {
			t.Errorf("no kvs namespace:\n%s", text)
		}
		// A namespace-aware parser sees the attributes in kvsgate's namespace.
		var doc struct {
			S []struct {
				Attrs []xml.Attr `xml:",any,attr"`
			} `xml:"Period>AdaptationSet>SegmentTemplate>SegmentTimeline>S"`
		}
		if err := xml.Unmarshal([]byte(text), &doc); err != nil {
			t.Fatal(err)
		}
		for _, a := range doc.S[0].Attrs {
			if (a.Name.Local == "fn" || a.Name.Local == "ts") && a.Name.Space != Namespace {
				t.Errorf("attribute %s in namespace %q", a.Name.Local, a.Name.Space)
			}
		}
	}
}

func TestPeriodsAtGaps(t *testing.T) {
	m := &Manifest{Tracks: tracks()[:1], PresentationTimeOffset: 1000, PeriodGap: 50, Segments: []Segment{
		{Time: 1000, Duration: 1000}, {Time: 2030, Duration: 1000}, // 30 ms: same Period
		{Time: 6000, Duration: 1000}, {Time: 7000, Duration: 500}, // a gap: a new Period
		{Time: 7551, Duration: 1000}, // 51 ms: another
	}}
	text := write(t, m)
	doc, err := mpd.ReadFromString(text)
	if err != nil {
		t.Fatal(err)
	}
	type period struct {
		start time.Duration
		pto   uint64
	}
	want := []period{{0, 1000}, {2030 * time.Millisecond, 6000}, {3530 * time.Millisecond, 7551}}
	if len(doc.Periods) != len(want) {
		t.Fatalf("%d Periods, want %d\n%s", len(doc.Periods), len(want), text)
	}
	for i, p := range doc.Periods {
		st := p.AdaptationSets[0].SegmentTemplate
		var pto uint64
		if st.PresentationTimeOffset != nil {
			pto = *st.PresentationTimeOffset
		}
		if time.Duration(*p.Start).Round(time.Millisecond) != want[i].start || pto != want[i].pto || p.ID != []string{"0", "1", "2"}[i] {
			t.Errorf("Period %d: id %s start %v pto %d, want start %v pto %d", i, p.ID, time.Duration(*p.Start), pto, want[i].start, want[i].pto)
		}
	}
	tl := timelines(text)
	if strings.Join(tl, " || ") != `<S t="1000" d="1030"/>|<S d="1000"/> || <S t="6000" d="1000"/>|<S d="500"/> || <S t="7551" d="1000"/>` {
		t.Errorf("timelines %q", tl)
	}
	if *doc.MediaPresentationDuration != "PT4.53S" {
		t.Errorf("duration %s, want PT4.53S (the gaps left out)", *doc.MediaPresentationDuration)
	}
}

// TestJoinedSegments: a Joined segment stays in its predecessor's Period
// however far apart their times are, and the predecessor is listed up to
// it (no hole in the Period's timeline); the presentation lasts as long.
func TestJoinedSegments(t *testing.T) {
	m := &Manifest{Tracks: tracks()[:1], PresentationTimeOffset: 1000, PeriodGap: 50, Segments: []Segment{
		{Time: 1000, Duration: 1000}, {Time: 2088, Duration: 1000, Joined: true}, // 88 ms apart, joined
		{Time: 3050, Duration: 1000}, // an overlap: shortened as ever
		{Time: 6000, Duration: 1000}, // a gap not joined: a new Period
	}}
	text := write(t, m)
	doc, err := mpd.ReadFromString(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Periods) != 2 {
		t.Fatalf("%d Periods, want 2\n%s", len(doc.Periods), text)
	}
	tl := timelines(text)
	if strings.Join(tl, " || ") != `<S t="1000" d="1088"/>|<S d="962"/>|<S d="1000"/> || <S t="6000" d="1000"/>` {
		t.Errorf("timelines %q", tl)
	}
	if *doc.MediaPresentationDuration != "PT4.05S" {
		t.Errorf("duration %s, want PT4.05S", *doc.MediaPresentationDuration)
	}
}

func TestDynamic(t *testing.T) {
	m := &Manifest{Dynamic: true, Tracks: tracks()[:1], Segments: []Segment{{Time: 1790000000000, Duration: 2000}},
		AvailabilityStart: time.Unix(0, 0), PublishTime: time.UnixMilli(1790000002345), MinimumUpdatePeriod: time.Second,
		TimeShiftBufferDepth: 4 * time.Second, SuggestedPresentationDelay: 2 * time.Second, MinBufferTime: 2 * time.Second,
		PeriodStart: 90 * time.Minute, UTCTiming: "http://h/dash/v1/time"}
	text := write(t, m)
	for _, want := range []string{`type="dynamic"`, `availabilityStartTime="1970-01-01T00:00:00Z"`, `publishTime="2026-09-21T14:13:22.345Z"`,
		`minimumUpdatePeriod="PT1S"`, `timeShiftBufferDepth="PT4S"`, `suggestedPresentationDelay="PT2S"`, `<Period id="0" start="PT1H30M0S">`,
		`<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="http://h/dash/v1/time">`} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in\n%s", want, text)
		}
	}
	if strings.Contains(text, "mediaPresentationDuration") || strings.Contains(text, "presentationTimeOffset") {
		t.Errorf("an open dynamic MPD with a duration or a presentation time offset of 0:\n%s", text)
	}
	m.Ended = true
	text = write(t, m)
	if !strings.Contains(text, `mediaPresentationDuration="PT1790005402S"`) || strings.Contains(text, "minimumUpdatePeriod") {
		t.Errorf("an ended dynamic MPD needs its duration and no update period:\n%s", text)
	}
}

func TestWriteErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		m    Manifest
		want error
	}{
		{"no segments", Manifest{}, ErrNoSegments},
		{"same time", Manifest{Segments: []Segment{{Time: 1, Duration: 1}, {Time: 1, Duration: 1}}}, ErrOrder},
		{"back in time", Manifest{Segments: []Segment{{Time: 5, Duration: 1}, {Time: 1, Duration: 1}}}, ErrOrder},
		{"negative duration", Manifest{Segments: []Segment{{Time: 5, Duration: -1}}}, ErrOrder},
		{"before the offset", Manifest{PresentationTimeOffset: 6, Segments: []Segment{{Time: 5, Duration: 1}}}, ErrOrder},
	} {
		var b strings.Builder
		if err := Write(&b, &c.m); !errors.Is(err, c.want) || b.Len() != 0 {
			t.Errorf("%s: %v (%d bytes written), want %v", c.name, err, b.Len(), c.want)
		}
	}
}

func TestFormats(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "PT0S", 2 * time.Second: "PT2S", 10040 * time.Millisecond: "PT10.04S",
		1500 * time.Microsecond: "PT0.001S", time.Hour: "PT3600S", -time.Second: "-PT1S"} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %s, want %s", d, got, want)
		}
	}
	for fps, want := range map[float64]string{25: "25", 24.9996: "25", 29.97003: "30000/1001", 59.94006: "60000/1001", 12.5: "12500/1000",
		0: "", -1: "", 1e9: ""} {
		if got := FrameRate(fps); got != want {
			t.Errorf("FrameRate(%v) = %q, want %q", fps, got, want)
		}
	}
	if got := DateTime(time.Date(2026, 9, 21, 14, 53, 22, 345e6, time.FixedZone("x", 7200))); got != "2026-09-21T12:53:22.345Z" {
		t.Errorf("DateTime: %s", got)
	}
	if got := string(appendEpochMS(nil, 1790000001007)); got != "1790000001.007" {
		t.Errorf("epoch ms: %s", got)
	}
}
