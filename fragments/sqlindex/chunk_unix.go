//go:build unix

package sqlindex

import (
	"syscall"
	"unsafe"
)

// newChunk returns room for briefChunk rows outside the Go heap (an
// anonymous mapping): brief rows hold no pointers, and kept on the heap
// their 40 MB per million fragments would double through the garbage
// collector's headroom (GOGC). Pages are only backed once written.
func newChunk() ([]briefRow, error) {
	b, err := syscall.Mmap(-1, 0, briefChunk*int(unsafe.Sizeof(briefRow{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*briefRow)(unsafe.Pointer(&b[0])), briefChunk)[:0], nil
}

// freeChunk releases a chunk of newChunk; nothing may use it afterwards.
func freeChunk(c []briefRow) {
	c = c[:cap(c)]
	syscall.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), briefChunk*int(unsafe.Sizeof(briefRow{}))))
}
