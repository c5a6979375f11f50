//go:build !unix

package sqlindex

// newChunk returns room for briefChunk rows.
func newChunk() ([]briefRow, error) { return make([]briefRow, 0, briefChunk), nil }

// freeChunk releases a chunk of newChunk.
func freeChunk([]briefRow) {}
