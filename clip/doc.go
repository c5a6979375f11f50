// Package clip is reserved for a later issue; see README.md.
package clip
