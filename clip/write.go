package clip

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Sample data is copied one of two ways. A sample of at least
// sendfileMin bytes in a segment file goes from the file to w with w's
// ReadFrom (an http.ResponseWriter with a Content-Length turns that into
// sendfile). Smaller samples are read in windows: one ReadAt of the stored
// bytes that span consecutive samples (at most copyBufSize; the block
// headers between them are read and dropped), the samples moved together
// in the buffer, and one Write. Memory is the one pooled buffer.
var (
	sendfileMin = int64(64 << 10)
	copyBufSize = 256 << 10
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// WriteTo writes the clip: its head (ftyp, moov, mdat header), then each
// fragment's samples from its payload segment. It writes exactly Size
// bytes unless it fails.
func (c *Clip) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(c.head)
	written := int64(n)
	if err != nil {
		return written, err
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	if len(*bp) != copyBufSize {
		*bp = make([]byte, copyBufSize)
	}
	buf := *bp
	rf, _ := w.(io.ReaderFrom)
	for i := range c.frags {
		f := &c.frags[i]
		file, _ := f.seg.(*os.File)
		if rf == nil {
			file = nil
		}
		refs := f.refs
		for len(refs) > 0 {
			r := refs[0]
			size := int64(r.size)
			switch {
			case file != nil && size >= sendfileMin:
				if _, err := file.Seek(f.off+int64(r.off), io.SeekStart); err != nil {
					return written, err
				}
				k, err := rf.ReadFrom(io.LimitReader(file, size))
				written += k
				if err == nil && k < size {
					err = io.ErrUnexpectedEOF
				}
				if err != nil {
					return written, err
				}
				refs = refs[1:]
			case size > int64(len(buf)):
				k, err := io.CopyBuffer(writerOnly{w}, io.NewSectionReader(f.seg, f.off+int64(r.off), size), buf)
				written += k
				if err == nil && k < size {
					err = io.ErrUnexpectedEOF
				}
				if err != nil {
					return written, err
				}
				refs = refs[1:]
			default:
				// A window of consecutive samples in storage order.
				lo, hi := int64(r.off), int64(r.off)+size
				j := 1
				for ; j < len(refs); j++ {
					s := refs[j]
					end := int64(s.off) + int64(s.size)
					if int64(s.off) < hi || end-lo > int64(len(buf)) || file != nil && int64(s.size) >= sendfileMin {
						break
					}
					hi = end
				}
				win := buf[:hi-lo]
				if k, err := f.seg.ReadAt(win, f.off+lo); k < len(win) {
					if err == nil || errors.Is(err, io.EOF) {
						err = io.ErrUnexpectedEOF
					}
					return written, fmt.Errorf("clip: reading a payload: %w", err)
				}
				out := 0
				for _, s := range refs[:j] {
					out += copy(buf[out:], win[int64(s.off)-lo:int64(s.off)-lo+int64(s.size)])
				}
				k, err := w.Write(buf[:out])
				written += int64(k)
				if err != nil {
					return written, err
				}
				refs = refs[j:]
			}
		}
	}
	return written, nil
}

// writerOnly hides a writer's ReadFrom, so that io.CopyBuffer uses the buffer.
type writerOnly struct{ io.Writer }
