package fragments

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DiskPayloads keeps segments as files: <dir>/<stream id>/<segment id>.mkv.
type DiskPayloads struct{ Dir string }

func (d DiskPayloads) path(streamID, segmentID int64) string {
	return filepath.Join(d.Dir, fmt.Sprint(streamID), fmt.Sprintf("%012d.mkv", segmentID))
}

// Create implements Payloads.
func (d DiskPayloads) Create(streamID, segmentID int64) (SegmentWriter, error) {
	p := d.path(streamID, segmentID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	// Make the new directory entry durable with the first Sync.
	return &diskWriter{f: f, w: bufio.NewWriterSize(f, 256<<10), dir: filepath.Dir(p), syncDir: true}, nil
}

// Open implements Payloads.
func (d DiskPayloads) Open(streamID, segmentID int64) (SegmentReader, error) {
	return os.Open(d.path(streamID, segmentID))
}

// Remove implements Payloads.
func (d DiskPayloads) Remove(streamID, segmentID int64) error {
	err := os.Remove(d.path(streamID, segmentID))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// RemoveStream implements Payloads.
func (d DiskPayloads) RemoveStream(streamID int64) error {
	return os.RemoveAll(filepath.Join(d.Dir, fmt.Sprint(streamID)))
}

type diskWriter struct {
	f       *os.File
	w       *bufio.Writer
	size    int64
	dir     string
	syncDir bool
}

func (w *diskWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *diskWriter) Size() int64 { return w.size }

func (w *diskWriter) Flush() error { return w.w.Flush() }

func (w *diskWriter) Sync() error {
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return err
	}
	if w.syncDir {
		// The segment's directory entry, and the stream directory's own.
		for _, d := range []string{w.dir, filepath.Dir(w.dir)} {
			if err := syncDir(d); err != nil {
				return err
			}
		}
		w.syncDir = false
	}
	return nil
}

func syncDir(path string) error {
	dir, err := os.Open(path)
	if err != nil {
		return err
	}
	err = dir.Sync()
	if cerr := dir.Close(); err == nil {
		err = cerr
	}
	return err
}

func (w *diskWriter) Truncate(size int64) error {
	if err := w.w.Flush(); err != nil {
		return err
	}
	if err := w.f.Truncate(size); err != nil {
		return err
	}
	if _, err := w.f.Seek(size, 0); err != nil {
		return err
	}
	w.size = size
	return nil
}

func (w *diskWriter) Close() error {
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
