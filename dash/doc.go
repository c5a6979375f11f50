// Package dash is reserved for a later issue; see README.md.
package dash
