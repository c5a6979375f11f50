// Package fragments holds kvsgate's archive: streams, the fragment model, the
// PutMedia ingester, storage (payload files and an index) and retention.
//
// A fragment is one Matroska Cluster as a producer sent it. Its bytes are
// stored as received; beside them the index keeps a sample table (per frame:
// track, pts, dts, key flag, byte range) and the track header it belongs to,
// so playback never parses Matroska again.
package fragments

import (
	"time"

	"github.com/kvsgate/kvsgate/fragments/mkv"
)

// Stream is one Kinesis video stream.
type Stream struct {
	ID             int64 // internal id, never reused
	Name           string
	ARN            string
	DeviceName     string
	MediaType      string
	KmsKeyID       string
	Version        string
	Status         string // ACTIVE (streams are created synchronously)
	CreationTime   time.Time
	RetentionHours int
	Tags           map[string]string
}

// Archived reports whether the stream keeps fragments (DataRetentionInHours > 0).
func (s *Stream) Archived() bool { return s.RetentionHours > 0 }

// Cutoff returns the oldest server timestamp (unix ns) still retained at now.
func (s *Stream) Cutoff(now time.Time) int64 {
	return now.Add(-time.Duration(s.RetentionHours) * time.Hour).UnixNano()
}

// Fragment is one index entry. Times are unix nanoseconds.
type Fragment struct {
	StreamID   int64
	Ordinal    int64  // dense per stream, from 1, in ingest order
	Number     uint64 // the API's FragmentNumber, strictly increasing per stream
	ProducerNS int64  // earliest presentation time of the fragment's frames
	ServerNS   int64  // arrival of the fragment's first byte
	DurationNS int64
	Size       int64 // payload bytes (the stored Cluster)
	Timecode   int64 // the cluster Timecode as sent (the ack's FragmentTimecode)
	SegmentID  int64 // payload file
	Offset     int64 // payload offset in that file
	HeaderID   int64 // track header
}

// LengthMS returns the fragment duration in whole milliseconds.
func (f *Fragment) LengthMS() int64 { return f.DurationNS / 1e6 }

// Sample is one frame of a fragment. Times are nanoseconds relative to the
// fragment's ProducerNS; Offset is relative to the start of the payload.
type Sample struct {
	Track  uint8 // index into the header's Tracks
	Key    bool
	PTS    int64
	DTS    int64
	Dur    int64
	Offset int64
	Size   int64
}

// Meta is what the index keeps per fragment besides the Fragment row.
type Meta struct {
	Samples []Sample
	Tags    []mkv.SimpleTag
}

// Header is one stored track header (EBML header, Info, Tracks).
type Header struct {
	ID            int64
	StreamID      int64
	TimecodeScale int64
	Tracks        []mkv.Track
	Raw           []byte
}
