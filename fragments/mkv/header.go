package mkv

import (
	"encoding/binary"
	"fmt"
	"math"
)

// StreamHeader is what the EBML header, Info and Tracks of one Segment say.
type StreamHeader struct {
	TimecodeScale int64 // nanoseconds per timecode unit
	Tracks        []Track
	// Raw holds the header bytes as received: EBML header, Segment ID and
	// size, Info and Tracks.
	Raw []byte
}

// Track is one TrackEntry.
type Track struct {
	Number          uint64
	UID             uint64
	Type            uint64 // 1 video, 2 audio
	CodecID         string // trailing NULs removed
	CodecPrivate    []byte
	Name            string
	DefaultDuration int64 // nanoseconds, 0 if absent
	Width, Height   uint64
	SamplingFreq    float64
	Channels        uint64
	BitDepth        uint64
}

// Track returns the track with the given number, or nil.
func (h *StreamHeader) Track(n uint64) *Track {
	for i := range h.Tracks {
		if h.Tracks[i].Number == n {
			return &h.Tracks[i]
		}
	}
	return nil
}

func (h *StreamHeader) parseInfo(body []byte) error {
	return walk(body, func(id uint32, p []byte, _ int) error {
		if id == IDTimecodeScale {
			v, ok := readUint(p)
			if !ok || v == 0 || v > 1e12 {
				return fmt.Errorf("%w: bad TimecodeScale", ErrInvalid)
			}
			h.TimecodeScale = int64(v)
		}
		return nil
	})
}

// MaxTracks is the most tracks a KVS stream header may declare.
const MaxTracks = 3

func (h *StreamHeader) parseTracks(body []byte) error {
	h.Tracks = h.Tracks[:0]
	err := walk(body, func(id uint32, p []byte, _ int) error {
		if id != IDTrackEntry {
			return nil
		}
		t, err := parseTrackEntry(p)
		if err != nil {
			return err
		}
		if t.Number == 0 {
			return fmt.Errorf("%w: TrackEntry without TrackNumber", ErrInvalid)
		}
		if h.Track(t.Number) != nil {
			return fmt.Errorf("%w: duplicate track %d", ErrInvalid, t.Number)
		}
		h.Tracks = append(h.Tracks, t)
		return nil
	})
	if err != nil {
		return err
	}
	if len(h.Tracks) == 0 || len(h.Tracks) > MaxTracks {
		return fmt.Errorf("%w: %d tracks (1 to %d allowed)", ErrInvalid, len(h.Tracks), MaxTracks)
	}
	return nil
}

func parseTrackEntry(body []byte) (Track, error) {
	var t Track
	uint := func(p []byte, dst *uint64) error {
		v, ok := readUint(p)
		if !ok {
			return fmt.Errorf("%w: bad unsigned integer in TrackEntry", ErrInvalid)
		}
		*dst = v
		return nil
	}
	err := walk(body, func(id uint32, p []byte, _ int) error {
		switch id {
		case IDTrackNumber:
			return uint(p, &t.Number)
		case IDTrackUID:
			return uint(p, &t.UID)
		case IDTrackType:
			return uint(p, &t.Type)
		case IDCodecID:
			t.CodecID = string(trimNUL(p))
		case IDCodecPrivate:
			t.CodecPrivate = append([]byte(nil), p...)
		case IDName:
			t.Name = string(trimNUL(p))
		case IDDefaultDur:
			var v uint64
			if err := uint(p, &v); err != nil || v > 1<<40 {
				return fmt.Errorf("%w: bad DefaultDuration", ErrInvalid)
			}
			t.DefaultDuration = int64(v)
		case IDVideo:
			return walk(p, func(id uint32, q []byte, _ int) error {
				switch id {
				case IDPixelWidth:
					return uint(q, &t.Width)
				case IDPixelHeight:
					return uint(q, &t.Height)
				}
				return nil
			})
		case IDAudio:
			return walk(p, func(id uint32, q []byte, _ int) error {
				switch id {
				case IDSamplingFreq:
					f, ok := readFloat(q)
					if !ok {
						return fmt.Errorf("%w: bad SamplingFrequency", ErrInvalid)
					}
					t.SamplingFreq = f
				case IDChannels:
					return uint(q, &t.Channels)
				case IDBitDepth:
					return uint(q, &t.BitDepth)
				}
				return nil
			})
		}
		return nil
	})
	return t, err
}

func readFloat(p []byte) (float64, bool) {
	switch len(p) {
	case 0:
		return 0, true
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(p))), true
	case 8:
		return math.Float64frombits(binary.BigEndian.Uint64(p)), true
	}
	return 0, false
}
