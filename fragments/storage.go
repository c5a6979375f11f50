package fragments

import (
	"errors"
	"io"
)

// Errors of the storage layer, mapped to API errors by package web.
var (
	ErrNotFound     = errors.New("not found")
	ErrStreamExists = errors.New("stream exists")
	ErrVersion      = errors.New("version mismatch")
)

// Payloads stores fragment bytes in append-only segment files. The default
// implementation (DiskPayloads) keeps them on local disk; an object store can
// take its place.
type Payloads interface {
	// Create starts a new segment for a stream.
	Create(streamID, segmentID int64) (SegmentWriter, error)
	// Open opens a segment for reading.
	Open(streamID, segmentID int64) (SegmentReader, error)
	// Remove deletes a segment; removing a missing one is not an error.
	Remove(streamID, segmentID int64) error
	// RemoveStream deletes every segment of a stream.
	RemoveStream(streamID int64) error
}

// SegmentWriter appends to one segment. One goroutine writes (Write,
// Flush, Truncate); another may Sync at the same time.
type SegmentWriter interface {
	io.Writer
	// Size is the number of bytes written so far (flushed or not).
	Size() int64
	// Flush hands everything written so far to the storage.
	Flush() error
	// Sync makes everything flushed before it was called durable.
	Sync() error
	// Truncate discards everything after size (a rejected fragment).
	Truncate(size int64) error
	Close() error
}

// SegmentReader reads a segment.
type SegmentReader interface {
	io.ReaderAt
	io.Closer
}

// Selector says which timestamp a fragment query ranges over.
type Selector int

// Timestamp sources of the API's fragment selectors.
const (
	ByServer Selector = iota
	ByProducer
	// ByOrdinal lists in ingest order after AfterOrdinal (From, To and
	// AfterTS are ignored).
	ByOrdinal
)

// FragmentQuery selects fragments of one stream. Ranges are inclusive unix
// nanoseconds on the selected timestamp; results come in order of that
// timestamp, then ordinal, starting after (AfterTS, AfterOrdinal).
type FragmentQuery struct {
	StreamID     int64
	By           Selector
	From, To     int64
	AfterTS      int64
	AfterOrdinal int64
	MinServerNS  int64 // retention cutoff: older fragments are never returned
	Limit        int
	// Brief asks only for the fields playlists and manifests read: Ordinal,
	// Number, ProducerNS, ServerNS, DurationNS, Size and HeaderID. An index
	// may leave Timecode, SegmentID and Offset zero (it reads fewer columns).
	Brief bool
}

// Pending is a fragment ready to commit: its row, meta and (if not yet
// stored) its header.
type Pending struct {
	Fragment *Fragment
	Meta     []byte
	Header   *Header // Header.ID == 0: insert it and set the ID

	partial *PartialFragment // leaves the partial feed once committed
}

// Index keeps streams and the fragment index. The default implementation
// (package fragments/sqlindex) is SQLite.
type Index interface {
	CreateStream(s *Stream) error
	// Stream looks a live stream up by name or, if name is "", by ARN.
	Stream(name, arn string) (*Stream, error)
	// StreamByID looks a live stream up by its internal id.
	StreamByID(id int64) (*Stream, error)
	// Streams lists live streams whose name starts with prefix and sorts after after.
	Streams(prefix, after string, limit int) ([]*Stream, error)
	// UpdateStream replaces a stream's mutable fields if its version is still oldVersion.
	UpdateStream(s *Stream, oldVersion string) error
	// DeleteStream removes a stream and its fragments from the index.
	DeleteStream(id int64) error

	// NewSegment registers a payload segment and returns its id.
	NewSegment(streamID int64) (int64, error)
	// CloseSegments marks segments as no longer written (all, at start-up).
	CloseSegment(id int64) error
	// Commit durably stores a batch of fragments in one transaction,
	// assigning each its Ordinal (and headers their IDs).
	Commit(batch []*Pending) error
	// LastOrdinal returns a stream's newest ordinal (0 if none).
	LastOrdinal(streamID int64) (int64, error)
	// MaxFragmentNumber returns the largest fragment number ever stored.
	MaxFragmentNumber() (uint64, error)

	Fragments(q FragmentQuery) ([]Fragment, error)
	// Breaks counts discontinuities without listing the fragments: a LIVE
	// session's discontinuity sequence counts them from its start, so its
	// cost must not grow with the session's age.
	Breaks(q BreakQuery) (int64, error)
	FragmentByNumber(streamID int64, number uint64) (*Fragment, error)
	Meta(streamID, ordinal int64) (*Meta, error)
	Header(id int64) (*Header, error)

	// Expire drops fragments of a stream older than cutoff (server time) and
	// returns the closed segments that no longer hold a retained fragment.
	Expire(streamID, cutoffNS int64) ([]int64, error)
	// DropSegment forgets a segment (after its file is removed).
	DropSegment(id int64) error
	// AllStreams lists every live stream (for retention).
	AllStreams() ([]*Stream, error)
	Close() error
}
