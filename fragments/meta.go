package fragments

import (
	"encoding/binary"
	"errors"

	"github.com/kvsgate/kvsgate/fragments/mkv"
)

const metaVersion = 1

var errBadMeta = errors.New("fragments: corrupt fragment meta")

// AppendMeta encodes m compactly (varints) for the index.
func AppendMeta(dst []byte, m *Meta) []byte {
	dst = append(dst, metaVersion)
	dst = binary.AppendUvarint(dst, uint64(len(m.Samples)))
	for _, s := range m.Samples {
		flags := byte(0)
		if s.Key {
			flags = 1
		}
		dst = append(dst, s.Track, flags)
		dst = binary.AppendVarint(dst, s.PTS)
		dst = binary.AppendVarint(dst, s.PTS-s.DTS)
		dst = binary.AppendVarint(dst, s.Dur)
		dst = binary.AppendUvarint(dst, uint64(s.Offset))
		dst = binary.AppendUvarint(dst, uint64(s.Size))
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Tags)))
	for _, t := range m.Tags {
		dst = binary.AppendUvarint(dst, uint64(len(t.Name)))
		dst = append(dst, t.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(t.Value)))
		dst = append(dst, t.Value...)
		b := byte(0)
		if t.Binary {
			b = 1
		}
		dst = append(dst, b)
	}
	return dst
}

// DecodeMeta decodes what AppendMeta wrote.
func DecodeMeta(p []byte) (*Meta, error) {
	d := metaDecoder{p: p}
	if d.byte() != metaVersion {
		return nil, errBadMeta
	}
	n := d.uvarint()
	if n > uint64(len(p)) {
		return nil, errBadMeta
	}
	m := &Meta{Samples: make([]Sample, n)}
	for i := range m.Samples {
		s := &m.Samples[i]
		s.Track = d.byte()
		s.Key = d.byte()&1 != 0
		s.PTS = d.varint()
		s.DTS = s.PTS - d.varint()
		s.Dur = d.varint()
		s.Offset = int64(d.uvarint())
		s.Size = int64(d.uvarint())
	}
	nt := d.uvarint()
	if nt > uint64(len(p)) {
		return nil, errBadMeta
	}
	for i := uint64(0); i < nt && d.err == nil; i++ {
		var t mkv.SimpleTag
		t.Name = d.string()
		t.Value = d.string()
		t.Binary = d.byte() == 1
		m.Tags = append(m.Tags, t)
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// metaDecoder is a sticky-error reader: callers check err once at the end.
type metaDecoder struct {
	p   []byte
	err error
}

func (d *metaDecoder) byte() byte {
	if d.err != nil || len(d.p) == 0 {
		d.err = errBadMeta
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *metaDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.err = errBadMeta
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *metaDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.err = errBadMeta
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *metaDecoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.p)) {
		d.err = errBadMeta
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	return s
}
