// Package session is reserved for a later issue; see README.md.
package session
