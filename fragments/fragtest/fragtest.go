// Package fragtest opens real stores for the tests of other packages: a
// SQLite index and payload files in a directory, as `kvsgate serve` keeps
// them, with logs discarded.
package fragtest

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/sqlindex"
)

// OpenStore opens the store kept in dir (creating it if it is empty). The
// caller closes it: restart tests open the same dir again.
func OpenStore(tb testing.TB, dir string) *fragments.Store {
	tb.Helper()
	idx, err := sqlindex.Open(filepath.Join(dir, "index.db"))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := fragments.NewStore(idx, fragments.DiskPayloads{Dir: filepath.Join(dir, "payload")},
		fragments.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// NewStore opens a new store in a temporary directory, closed when the test
// ends, with one stream that keeps its fragments retentionHours.
func NewStore(tb testing.TB, stream string, retentionHours int) (*fragments.Store, *fragments.Stream) {
	tb.Helper()
	s := OpenStore(tb, tb.TempDir())
	tb.Cleanup(func() { s.Close() })
	st, err := s.CreateStream(fragments.NewStream{Name: stream, RetentionHours: retentionHours})
	if err != nil {
		tb.Fatal(err)
	}
	return s, st
}
