package mkv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Kind says what an Event reports.
type Kind int

// Event kinds, in the order they appear in a well-formed stream.
const (
	KindEBMLHeader   Kind = iota + 1 // a new EBML header: a new stream header starts
	KindSegment                      // a Segment starts
	KindTracks                       // Tracks parsed; Event.Header is complete
	KindClusterStart                 // a Cluster starts; Raw is its ID and size
	KindTimecode                     // the cluster Timecode; Event.Timecode
	KindBlock                        // a SimpleBlock or BlockGroup; Event.Block
	KindClusterOther                 // another cluster child (Position, Void, ...)
	KindClusterEnd                   // the current Cluster ended (no Raw)
	KindTags                         // segment-level Tags; Event.Tags
)

var kindNames = [...]string{"?", "EBMLHeader", "Segment", "Tracks", "ClusterStart", "Timecode", "Block", "ClusterOther", "ClusterEnd", "Tags"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Frame is the byte range of one frame inside Event.Raw.
type Frame struct{ Off, Len int }

// Block is one SimpleBlock, or the Block of a BlockGroup.
type Block struct {
	Track    uint64
	Timecode int16 // relative to the cluster Timecode, in TimecodeScale units
	Key      bool
	Duration int64 // BlockDuration in TimecodeScale units, or -1
	Frames   []Frame
}

// SimpleTag is one segment-level tag (fragment metadata in KVS terms).
type SimpleTag struct {
	Name   string
	Value  string
	Binary bool
}

// Event is what Reader.Next reports. It and the slices it holds stay valid
// only until the next call to Next.
type Event struct {
	Kind Kind
	// Raw is the element's bytes as read (ID, size and body). For
	// KindClusterStart only the ID and size. Empty for KindClusterEnd.
	Raw []byte
	// Offset is the input offset of Raw.
	Offset   int64
	Header   *StreamHeader // KindTracks
	Timecode int64         // KindTimecode (signed is allowed by the format; KVS uses uint)
	Block    Block         // KindBlock
	Tags     []SimpleTag   // KindTags (tags with no target, or a segment-wide target)
}

// Reader reads Matroska incrementally. The zero value is not usable; see NewReader.
type Reader struct {
	br *bufio.Reader
	// MaxElementSize bounds the size of any element read into memory.
	MaxElementSize int64

	off        int64
	level      int   // 0 top, 1 segment, 2 cluster
	segEnd     int64 // absolute end offset or -1
	clusterEnd int64
	pending    *elemHeader
	ph         elemHeader
	buf        []byte
	ev         Event
	header     *StreamHeader
	frames     []Frame
	tags       []SimpleTag
}

type elemHeader struct {
	id   uint32
	size int64
	off  int64 // offset of the ID
	n    int   // header length
	raw  [12]byte
}

func (h *elemHeader) end() int64 {
	if h.size == UnknownSize {
		return -1
	}
	return h.off + int64(h.n) + h.size
}

// NewReader reads Matroska from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), MaxElementSize: 64 << 20, segEnd: -1, clusterEnd: -1}
}

// Offset returns the number of input bytes consumed so far.
func (r *Reader) Offset() int64 { return r.off }

// readHeader reads the next element header. io.EOF means a clean end between elements.
func (r *Reader) readHeader() (*elemHeader, error) {
	if r.pending != nil {
		h := r.pending
		r.pending = nil
		return h, nil
	}
	h := &r.ph
	h.off = r.off
	b, err := r.br.ReadByte()
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, err
	}
	h.raw[0] = b
	idLen := vintLen(b)
	if idLen == 0 || idLen > 4 {
		return nil, fmt.Errorf("%w: bad element ID byte 0x%02x at %d", ErrInvalid, b, r.off)
	}
	if _, err := io.ReadFull(r.br, h.raw[1:idLen]); err != nil {
		return nil, r.truncated(err)
	}
	sb, err := r.br.ReadByte()
	if err != nil {
		return nil, r.truncated(err)
	}
	h.raw[idLen] = sb
	sizeLen := vintLen(sb)
	if sizeLen == 0 {
		return nil, fmt.Errorf("%w: bad size byte at %d", ErrInvalid, r.off+int64(idLen))
	}
	if _, err := io.ReadFull(r.br, h.raw[idLen+1:idLen+sizeLen]); err != nil {
		return nil, r.truncated(err)
	}
	h.n = idLen + sizeLen
	h.id, _ = readID(h.raw[:idLen])
	var n int
	h.size, n = readSize(h.raw[idLen:h.n])
	if n < 0 {
		return nil, fmt.Errorf("%w: bad size at %d", ErrInvalid, r.off+int64(idLen))
	}
	r.off += int64(h.n)
	return h, nil
}

func (r *Reader) truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return ErrTruncated
	}
	return err
}

// readBody reads the body of h into the reader's buffer and returns the whole
// element (header and body).
func (r *Reader) readBody(h *elemHeader) ([]byte, error) {
	if h.size == UnknownSize {
		return nil, fmt.Errorf("%w: element 0x%X of unknown size", ErrInvalid, h.id)
	}
	if h.size > r.MaxElementSize {
		return nil, fmt.Errorf("%w: element 0x%X of %d bytes", ErrTooLarge, h.id, h.size)
	}
	total := h.n + int(h.size)
	if cap(r.buf) < total {
		r.buf = make([]byte, total, total+total/4)
	}
	buf := r.buf[:total]
	copy(buf, h.raw[:h.n])
	if _, err := io.ReadFull(r.br, buf[h.n:]); err != nil {
		return nil, r.truncated(err)
	}
	r.off += h.size
	return buf, nil
}

// skip discards the body of h.
func (r *Reader) skip(h *elemHeader) error {
	if h.size == UnknownSize {
		return fmt.Errorf("%w: element 0x%X of unknown size", ErrInvalid, h.id)
	}
	n, err := r.br.Discard(int(min(h.size, 1<<62)))
	r.off += int64(n)
	if err != nil {
		return r.truncated(err)
	}
	return nil
}

// Next returns the next event. At the end of input it returns io.EOF, after a
// KindClusterEnd for an open cluster. Invalid input gives an error wrapping
// ErrInvalid, ErrTruncated or ErrTooLarge; the reader is unusable after any error.
func (r *Reader) Next() (*Event, error) {
	for {
		h, err := r.readHeader()
		if err == io.EOF {
			if r.level == 2 {
				r.level = 1
				return r.event(KindClusterEnd, nil, r.off), nil
			}
			if r.level == 1 && r.segEnd >= 0 && r.off < r.segEnd {
				return nil, ErrTruncated
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		switch r.level {
		case 2:
			if (r.clusterEnd >= 0 && h.off >= r.clusterEnd) || (r.clusterEnd < 0 && !isClusterChild(h.id)) {
				r.pending = h
				r.level = 1
				return r.event(KindClusterEnd, nil, h.off), nil
			}
			if r.clusterEnd >= 0 && (h.size == UnknownSize || h.end() > r.clusterEnd) {
				return nil, fmt.Errorf("%w: element 0x%X overruns its cluster", ErrInvalid, h.id)
			}
			return r.clusterChild(h)
		case 1:
			if (r.segEnd >= 0 && h.off >= r.segEnd) || (r.segEnd < 0 && h.id == IDEBML) {
				r.pending = h
				r.level = 0
				continue
			}
			if r.segEnd >= 0 && h.size != UnknownSize && h.end() > r.segEnd {
				return nil, fmt.Errorf("%w: element 0x%X overruns its segment", ErrInvalid, h.id)
			}
			ev, err := r.segmentChild(h)
			if ev != nil || err != nil {
				return ev, err
			}
		default:
			switch h.id {
			case IDEBML:
				raw, err := r.readBody(h)
				if err != nil {
					return nil, err
				}
				if err := checkEBMLHeader(raw[h.n:]); err != nil {
					return nil, err
				}
				r.header = &StreamHeader{TimecodeScale: 1000000}
				r.header.Raw = append(r.header.Raw, raw...)
				return r.event(KindEBMLHeader, raw, h.off), nil
			case IDSegment:
				if r.header == nil {
					return nil, fmt.Errorf("%w: Segment before EBML header", ErrInvalid)
				}
				r.level = 1
				r.segEnd = h.end()
				raw := h.raw[:h.n]
				r.header.Raw = append(r.header.Raw, raw...)
				return r.event(KindSegment, raw, h.off), nil
			case IDVoid, IDCRC32:
				if err := r.skip(h); err != nil {
					return nil, err
				}
			default:
				return nil, fmt.Errorf("%w: unexpected top-level element 0x%X at %d", ErrInvalid, h.id, h.off)
			}
		}
	}
}

func (r *Reader) event(k Kind, raw []byte, off int64) *Event {
	r.ev = Event{Kind: k, Raw: raw, Offset: off}
	return &r.ev
}

// segmentChild handles an element directly inside the Segment. It returns a
// nil event for elements that are skipped.
func (r *Reader) segmentChild(h *elemHeader) (*Event, error) {
	switch h.id {
	case IDCluster:
		if r.header == nil || len(r.header.Tracks) == 0 {
			return nil, fmt.Errorf("%w: Cluster before Tracks", ErrInvalid)
		}
		r.level = 2
		r.clusterEnd = h.end()
		return r.event(KindClusterStart, h.raw[:h.n], h.off), nil
	case IDInfo, IDTracks, IDTags:
		raw, err := r.readBody(h)
		if err != nil {
			return nil, err
		}
		body := raw[h.n:]
		switch h.id {
		case IDInfo:
			if err := r.header.parseInfo(body); err != nil {
				return nil, err
			}
			r.header.Raw = append(r.header.Raw, raw...)
			return nil, nil
		case IDTracks:
			if err := r.header.parseTracks(body); err != nil {
				return nil, err
			}
			r.header.Raw = append(r.header.Raw, raw...)
			ev := r.event(KindTracks, raw, h.off)
			ev.Header = r.header
			return ev, nil
		default:
			tags, err := parseTags(body, r.tags[:0])
			if err != nil {
				return nil, err
			}
			r.tags = tags
			ev := r.event(KindTags, raw, h.off)
			ev.Tags = tags
			return ev, nil
		}
	default:
		// SeekHead, Cues, Chapters, Attachments, Void, CRC-32 and unknown
		// elements of known size carry nothing a fragment needs.
		return nil, r.skip(h)
	}
}

func (r *Reader) clusterChild(h *elemHeader) (*Event, error) {
	raw, err := r.readBody(h)
	if err != nil {
		return nil, err
	}
	body := raw[h.n:]
	switch h.id {
	case IDTimecode:
		tc, ok := readUint(body)
		if !ok || tc > 1<<62 {
			return nil, fmt.Errorf("%w: bad cluster Timecode", ErrInvalid)
		}
		ev := r.event(KindTimecode, raw, h.off)
		ev.Timecode = int64(tc)
		return ev, nil
	case IDSimpleBlock:
		b, err := r.parseBlock(body, h.n)
		if err != nil {
			return nil, err
		}
		ev := r.event(KindBlock, raw, h.off)
		ev.Block = b
		return ev, nil
	case IDBlockGroup:
		b, err := r.parseBlockGroup(body, h.n)
		if err != nil {
			return nil, err
		}
		ev := r.event(KindBlock, raw, h.off)
		ev.Block = b
		return ev, nil
	default:
		return r.event(KindClusterOther, raw, h.off), nil
	}
}

// parseBlock parses a SimpleBlock or Block body that starts at base in Raw.
func (r *Reader) parseBlock(body []byte, base int) (Block, error) {
	track, n := readVint(body)
	if n == 0 || len(body) < n+3 {
		return Block{}, fmt.Errorf("%w: short block", ErrInvalid)
	}
	b := Block{
		Track:    track,
		Timecode: int16(uint16(body[n])<<8 | uint16(body[n+1])),
		Key:      body[n+2]&0x80 != 0,
		Duration: -1,
	}
	lacing := (body[n+2] >> 1) & 3
	p := n + 3
	frames, err := splitLaces(body, p, lacing, r.frames[:0])
	if err != nil {
		return Block{}, err
	}
	for i := range frames {
		frames[i].Off += base
	}
	r.frames = frames
	b.Frames = frames
	return b, nil
}

func (r *Reader) parseBlockGroup(body []byte, base int) (Block, error) {
	var blk Block
	found := false
	ref := false
	dur := int64(-1)
	err := walk(body, func(id uint32, p []byte, off int) error {
		switch id {
		case IDBlock:
			if found {
				return fmt.Errorf("%w: two Blocks in a BlockGroup", ErrInvalid)
			}
			b, err := r.parseBlock(p, base+off)
			if err != nil {
				return err
			}
			blk, found = b, true
		case IDReferenceBlock:
			ref = true
		case IDBlockDuration:
			v, ok := readUint(p)
			if !ok || v > 1<<62 {
				return fmt.Errorf("%w: bad BlockDuration", ErrInvalid)
			}
			dur = int64(v)
		}
		return nil
	})
	if err != nil {
		return Block{}, err
	}
	if !found {
		return Block{}, fmt.Errorf("%w: BlockGroup without Block", ErrInvalid)
	}
	blk.Key = !ref
	blk.Duration = dur
	return blk, nil
}

// splitLaces returns the frames of a block whose frame data starts at p.
func splitLaces(body []byte, p int, lacing byte, frames []Frame) ([]Frame, error) {
	if lacing == 0 {
		return append(frames, Frame{Off: p, Len: len(body) - p}), nil
	}
	if p >= len(body) {
		return nil, fmt.Errorf("%w: short laced block", ErrInvalid)
	}
	count := int(body[p]) + 1
	p++
	sizes := make([]int, 0, count)
	switch lacing {
	case 1: // Xiph
		for i := 0; i < count-1; i++ {
			s := 0
			for {
				if p >= len(body) {
					return nil, fmt.Errorf("%w: short Xiph lace", ErrInvalid)
				}
				v := body[p]
				p++
				s += int(v)
				if v != 255 {
					break
				}
			}
			sizes = append(sizes, s)
		}
	case 3: // EBML
		first, n := readVint(body[p:])
		if n == 0 || first > 1<<31 {
			return nil, fmt.Errorf("%w: bad EBML lace", ErrInvalid)
		}
		p += n
		sizes = append(sizes, int(first))
		prev := int64(first)
		for i := 1; i < count-1; i++ {
			v, n := readVint(body[p:])
			if n == 0 {
				return nil, fmt.Errorf("%w: bad EBML lace", ErrInvalid)
			}
			p += n
			delta := int64(v) - (int64(1)<<(7*n-1) - 1)
			prev += delta
			if prev < 0 || prev > 1<<31 {
				return nil, fmt.Errorf("%w: bad EBML lace size", ErrInvalid)
			}
			sizes = append(sizes, int(prev))
		}
	case 2: // fixed
		rest := len(body) - p
		if rest%count != 0 {
			return nil, fmt.Errorf("%w: fixed lace of %d bytes in %d frames", ErrInvalid, rest, count)
		}
		for i := 0; i < count-1; i++ {
			sizes = append(sizes, rest/count)
		}
	}
	for _, s := range sizes {
		if s > len(body)-p {
			return nil, fmt.Errorf("%w: lace overruns block", ErrInvalid)
		}
		frames = append(frames, Frame{Off: p, Len: s})
		p += s
	}
	if p > len(body) {
		return nil, fmt.Errorf("%w: lace overruns block", ErrInvalid)
	}
	return append(frames, Frame{Off: p, Len: len(body) - p}), nil
}

// walk calls fn for each child element of a known-size master body. off is
// the offset of the child's body in the master body.
func walk(body []byte, fn func(id uint32, p []byte, off int) error) error {
	for i := 0; i < len(body); {
		id, n := readID(body[i:])
		if n <= 0 {
			return fmt.Errorf("%w: bad child ID", ErrInvalid)
		}
		size, m := readSize(body[i+n:])
		if m <= 0 || size == UnknownSize || size > int64(len(body)-i-n-m) {
			return fmt.Errorf("%w: bad child size", ErrInvalid)
		}
		start := i + n + m
		end := start + int(size)
		if err := fn(id, body[start:end], start); err != nil {
			return err
		}
		i = end
	}
	return nil
}

func checkEBMLHeader(body []byte) error {
	docType := ""
	err := walk(body, func(id uint32, p []byte, _ int) error {
		if id == IDDocType {
			docType = string(trimNUL(p))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if docType != "" && docType != "matroska" && docType != "webm" {
		return fmt.Errorf("%w: DocType %q", ErrInvalid, docType)
	}
	return nil
}

func parseTags(body []byte, tags []SimpleTag) ([]SimpleTag, error) {
	err := walk(body, func(id uint32, p []byte, _ int) error {
		if id != IDTag {
			return nil
		}
		targeted := false
		var simple [][]byte
		err := walk(p, func(id uint32, q []byte, _ int) error {
			switch id {
			case IDTargets:
				return walk(q, func(id uint32, _ []byte, _ int) error {
					switch id {
					case IDTagTrackUID, IDTagEditionUID, IDTagChapterUID, IDTagAttachUID:
						targeted = true
					}
					return nil
				})
			case IDSimpleTag:
				simple = append(simple, q)
			}
			return nil
		})
		if err != nil || targeted {
			return err
		}
		for _, q := range simple {
			var t SimpleTag
			err := walk(q, func(id uint32, v []byte, _ int) error {
				switch id {
				case IDTagName:
					t.Name = string(trimNUL(v))
				case IDTagString:
					t.Value = string(trimNUL(v))
				case IDTagBinary:
					t.Value, t.Binary = string(v), true
				}
				return nil
			})
			if err != nil {
				return err
			}
			tags = append(tags, t)
		}
		return nil
	})
	return tags, err
}

// trimNUL removes trailing NUL bytes (GStreamer pads strings with one).
func trimNUL(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == 0 {
		p = p[:len(p)-1]
	}
	return p
}

// IsInvalid reports whether err means the input is not valid Matroska (as
// opposed to an I/O error of the underlying reader).
func IsInvalid(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrTruncated) || errors.Is(err, ErrTooLarge)
}
