// Package session holds playback sessions (HLS and DASH): sealed,
// self-contained session tokens, and the fragment window a session shows at
// a given moment.
//
// A token carries everything a session needs (stream, mode, selector, range,
// options, expiry), sealed with AES-256-GCM, so any server holding the key
// can serve any session without shared state.
package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Errors of Open. Both mean the caller is not authorized for the session.
var (
	ErrInvalid = errors.New("session token is not valid")
	ErrExpired = errors.New("session token has expired")
)

// Protocol is HLS or DASH.
type Protocol uint8

// Protocols.
const (
	HLS  Protocol = 1
	DASH Protocol = 2
)

// Mode is the API's PlaybackMode.
type Mode uint8

// Playback modes.
const (
	Live Mode = iota
	LiveReplay
	OnDemand
)

// Discontinuity is HLS's DiscontinuityMode.
type Discontinuity uint8

// Discontinuity modes.
const (
	DiscontinuityAlways Discontinuity = iota
	DiscontinuityNever
	DiscontinuityOnGap
)

// Session is what a token carries.
type Session struct {
	ID       [8]byte
	Protocol Protocol
	StreamID int64
	Mode     Mode
	// Producer: the selector's timestamps are producer timestamps (else server).
	Producer bool
	// StartNS and EndNS bound the range (unix ns); HasEnd says EndNS is set.
	StartNS, EndNS int64
	HasEnd         bool
	Container      uint8 // HLS: 0 fMP4, 1 MPEG-TS
	Discontinuity  Discontinuity
	// DisplayTimestamp: EXT-X-PROGRAM-DATE-TIME (HLS) or kvs:ts (DASH).
	DisplayTimestamp bool
	// DisplayNumber: kvs:fn (DASH).
	DisplayNumber bool
	MaxResults    int
	CreatedNS     int64
	ExpiresNS     int64
	// BaseOrdinal is the stream's newest ordinal when a LIVE session began:
	// discontinuity sequences count from it.
	BaseOrdinal int64
}

const (
	tokenVersion = 1
	keySize      = 32
)

var aad = []byte("kvsgate session v1")

// Keyring seals and opens tokens.
type Keyring struct{ aead cipher.AEAD }

// NewKeyring makes a keyring from a 32-byte key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("session key must be %d bytes, not %d", keySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keyring{aead: aead}, nil
}

// LoadOrCreateKey reads a hex key from path, creating it (0600) with a new
// random key if it does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != keySize {
			return nil, fmt.Errorf("%s: want %d bytes of hex", path, keySize)
		}
		return key, nil
	}
	if !os.IsNotExist(err) {
		return nil, err
	}
	key := make([]byte, keySize)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return key, f.Close()
}

// New fills in a session's id and creation time.
func New(s Session, now time.Time, expires time.Duration) *Session {
	rand.Read(s.ID[:])
	s.CreatedNS = now.UnixNano()
	s.ExpiresNS = now.Add(expires).UnixNano()
	return &s
}

// Seal returns the token of a session: URL-safe base64 of a version byte,
// the nonce and the sealed fields.
func (k *Keyring) Seal(s *Session) string {
	plain := s.marshal()
	out := make([]byte, 1, 1+k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	out[0] = tokenVersion
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	out = k.aead.Seal(out, nonce, plain, aad)
	return base64.RawURLEncoding.EncodeToString(out)
}

// MaxTokenLength bounds what Open looks at.
const MaxTokenLength = 4096

// Open checks a token and returns its session: ErrInvalid if it was not
// sealed with this key (or was altered), ErrExpired past its expiry.
func (k *Keyring) Open(token string, now time.Time) (*Session, error) {
	if len(token) == 0 || len(token) > MaxTokenLength {
		return nil, ErrInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	ns := k.aead.NonceSize()
	if err != nil || len(b) < 1+ns+k.aead.Overhead() || b[0] != tokenVersion {
		return nil, ErrInvalid
	}
	plain, err := k.aead.Open(nil, b[1:1+ns], b[1+ns:], aad)
	if err != nil {
		return nil, ErrInvalid
	}
	s, err := unmarshal(plain)
	if err != nil {
		return nil, ErrInvalid
	}
	if now.UnixNano() >= s.ExpiresNS {
		return nil, ErrExpired
	}
	return s, nil
}

func (s *Session) marshal() []byte {
	b := make([]byte, 0, 96)
	b = append(b, s.ID[:]...)
	flags := byte(0)
	for i, f := range []bool{s.Producer, s.HasEnd, s.DisplayTimestamp, s.DisplayNumber} {
		if f {
			flags |= 1 << i
		}
	}
	b = append(b, byte(s.Protocol), byte(s.Mode), s.Container, byte(s.Discontinuity), flags)
	for _, v := range []int64{s.StreamID, s.StartNS, s.EndNS, int64(s.MaxResults), s.CreatedNS, s.ExpiresNS, s.BaseOrdinal} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

func unmarshal(b []byte) (*Session, error) {
	s := &Session{}
	if len(b) < 13 {
		return nil, ErrInvalid
	}
	copy(s.ID[:], b)
	s.Protocol, s.Mode, s.Container, s.Discontinuity = Protocol(b[8]), Mode(b[9]), b[10], Discontinuity(b[11])
	flags := b[12]
	s.Producer, s.HasEnd, s.DisplayTimestamp, s.DisplayNumber = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
	b = b[13:]
	var maxResults int64
	for _, p := range []*int64{&s.StreamID, &s.StartNS, &s.EndNS, &maxResults, &s.CreatedNS, &s.ExpiresNS, &s.BaseOrdinal} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return nil, ErrInvalid
		}
		*p, b = v, b[n:]
	}
	if len(b) != 0 || s.Mode > OnDemand || s.Discontinuity > DiscontinuityOnGap || maxResults < 1 || maxResults > 5000 {
		return nil, ErrInvalid
	}
	s.MaxResults = int(maxResults)
	return s, nil
}
