// Package hls is reserved for a later issue; see README.md.
package hls
