// Package images is reserved for a later issue; see README.md.
package images
