package fragments

import (
	"strconv"
)

// Ack event types of PutMedia.
const (
	AckBuffering = "BUFFERING"
	AckReceived  = "RECEIVED"
	AckPersisted = "PERSISTED"
	AckError     = "ERROR"
	AckIdle      = "IDLE"
)

// Ack is one PutMedia acknowledgement.
type Ack struct {
	EventType        string
	FragmentTimecode int64
	FragmentNumber   uint64 // 0: none (IDLE, or an error before a fragment started)
	ErrorID          int
}

// PutMedia error ids and their codes, as in the API reference.
const (
	ErrStreamRead          = 4000
	ErrMaxFragmentSize     = 4001
	ErrMaxFragmentDuration = 4002
	ErrMaxConnDuration     = 4003
	ErrTimecodeOrder       = 4004
	ErrMoreTracks          = 4005
	ErrInvalidMKV          = 4006
	ErrProducerTimestamp   = 4007
	ErrStreamNotActive     = 4008
	ErrMetadataLimit       = 4009
	ErrTrackMismatch       = 4010
	ErrFramesMissing       = 4011
	ErrInvalidMetadata     = 4012
	ErrInternal            = 5000
	ErrArchival            = 5001
)

var errorCodes = map[int]string{
	ErrStreamRead:          "STREAM_READ_ERROR",
	ErrMaxFragmentSize:     "MAX_FRAGMENT_SIZE_REACHED",
	ErrMaxFragmentDuration: "MAX_FRAGMENT_DURATION_REACHED",
	ErrMaxConnDuration:     "MAX_CONNECTION_DURATION_REACHED",
	ErrTimecodeOrder:       "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
	ErrMoreTracks:          "MORE_THAN_ALLOWED_TRACKS_FOUND",
	ErrInvalidMKV:          "INVALID_MKV_DATA",
	ErrProducerTimestamp:   "INVALID_PRODUCER_TIMESTAMP",
	ErrStreamNotActive:     "STREAM_NOT_ACTIVE",
	ErrMetadataLimit:       "FRAGMENT_METADATA_LIMIT_REACHED",
	ErrTrackMismatch:       "TRACK_NUMBER_MISMATCH",
	ErrFramesMissing:       "FRAMES_MISSING_FOR_TRACK",
	ErrInvalidMetadata:     "INVALID_FRAGMENT_METADATA",
	ErrInternal:            "INTERNAL_ERROR",
	ErrArchival:            "ARCHIVAL_ERROR",
}

// ErrorCode returns the ErrorCode string of a PutMedia error id.
func ErrorCode(id int) string { return errorCodes[id] }

// AppendJSON appends the ack as one line of JSON, the wire format producers parse.
func (a Ack) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"EventType":"`...)
	dst = append(dst, a.EventType...)
	dst = append(dst, '"')
	if a.EventType != AckIdle {
		dst = append(dst, `,"FragmentTimecode":`...)
		dst = strconv.AppendInt(dst, a.FragmentTimecode, 10)
	}
	if a.FragmentNumber != 0 {
		dst = append(dst, `,"FragmentNumber":"`...)
		dst = strconv.AppendUint(dst, a.FragmentNumber, 10)
		dst = append(dst, '"')
	}
	if a.ErrorID != 0 {
		dst = append(dst, `,"ErrorId":`...)
		dst = strconv.AppendInt(dst, int64(a.ErrorID), 10)
		dst = append(dst, `,"ErrorCode":"`...)
		dst = append(dst, ErrorCode(a.ErrorID)...)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

// PutError is a fragment rejected with a PutMedia error id.
type PutError struct {
	ID     int
	Detail string
}

func (e *PutError) Error() string {
	return strconv.Itoa(e.ID) + " " + ErrorCode(e.ID) + ": " + e.Detail
}
