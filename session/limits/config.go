// Package limits enforces the request limits and fragment-credit quotas of
// the KVS guide's quota section: per-stream fragment-metadata and
// fragment-media credits shared across the archived-media APIs, TPS limits
// per account, per stream and per playback session, and connection limits
// per stream. It knows nothing of HTTP: the web package maps requests onto
// it and its errors onto AWS exceptions.
//
// Every limit is a token bucket refilled continuously at its rate, holding at
// most one second of it. A request is admitted when every bucket it draws on
// holds what it needs, and then takes from all of them; a refused request
// takes nothing. A request that needs more than a bucket can ever hold (a
// GetMediaForFragmentList of 1000 fragments against 500 media credits per
// second) is admitted from a full bucket and leaves it in debt.
package limits

import (
	"fmt"
	"strconv"
	"strings"
)

// Op is an API operation with a TPS limit.
type Op uint8

// The operations with TPS limits. Their scope (account, stream, session) is
// in the ops table.
const (
	CreateStream Op = iota
	DeleteStream
	DescribeStream
	GetDataEndpoint
	ListStreams
	ListTagsForStream
	TagStream
	UntagStream
	UpdateDataRetention
	UpdateStream
	PutMedia
	GetMedia
	GetHLSStreamingSessionURL
	GetDASHStreamingSessionURL
	GetHLSMasterPlaylist
	GetHLSMediaPlaylist
	GetDASHManifest
	GetMP4InitFragment
	GetMP4MediaFragment
	GetTSFragment
	// GetHLSMediaPlaylistLL and GetMP4MediaPart are LL-HLS requests
	// (kvsgate's; KVS has no LL-HLS): blocking media playlist reloads
	// (_HLS_msn) and partial segments (Part=). A low-latency player makes
	// one of each per part instead of per fragment, so their per-session
	// rates are GetHLSMediaPlaylist's and GetMP4MediaFragment's times the
	// parts in a second at the default PART-TARGET (4).
	GetHLSMediaPlaylistLL
	GetMP4MediaPart
	// NumOps counts the operations; it is no operation.
	NumOps
)

// Scope says what a TPS limit is counted per.
type Scope uint8

const (
	PerStream  Scope = iota // each stream has its own bucket
	PerSession              // each HLS or DASH playback session has its own
)

// opSpec is an operation's row of the guide's tables.
type opSpec struct {
	api     string // the KVS operation name
	name    string // its figures' names: <name>-tps, <name>-account-tps
	scope   Scope
	tps     int // per stream or session; 0: none
	account int // per account; 0: none
}

// ops are the guide's control-plane, media and playback tables.
var ops = [NumOps]opSpec{
	CreateStream:               {"CreateStream", "create-stream", PerStream, 0, 50},
	DeleteStream:               {"DeleteStream", "delete-stream", PerStream, 5, 50},
	DescribeStream:             {"DescribeStream", "describe-stream", PerStream, 5, 300},
	GetDataEndpoint:            {"GetDataEndpoint", "get-data-endpoint", PerStream, 5, 300},
	ListStreams:                {"ListStreams", "list-streams", PerStream, 0, 50},
	ListTagsForStream:          {"ListTagsForStream", "list-tags-for-stream", PerStream, 5, 50},
	TagStream:                  {"TagStream", "tag-stream", PerStream, 5, 50},
	UntagStream:                {"UntagStream", "untag-stream", PerStream, 5, 50},
	UpdateDataRetention:        {"UpdateDataRetention", "update-data-retention", PerStream, 5, 50},
	UpdateStream:               {"UpdateStream", "update-stream", PerStream, 5, 50},
	PutMedia:                   {"PutMedia", "put-media", PerStream, 5, 0},
	GetMedia:                   {"GetMedia", "get-media", PerStream, 5, 0},
	GetHLSStreamingSessionURL:  {"GetHLSStreamingSessionURL", "get-hls-streaming-session-url", PerStream, 25, 0},
	GetDASHStreamingSessionURL: {"GetDASHStreamingSessionURL", "get-dash-streaming-session-url", PerStream, 25, 0},
	GetHLSMasterPlaylist:       {"GetHLSMasterPlaylist", "get-hls-master-playlist", PerSession, 5, 0},
	GetHLSMediaPlaylist:        {"GetHLSMediaPlaylist", "get-hls-media-playlist", PerSession, 5, 0},
	GetDASHManifest:            {"GetDASHManifest", "get-dash-manifest", PerSession, 5, 0},
	GetMP4InitFragment:         {"GetMP4InitFragment", "get-mp4-init-fragment", PerSession, 5, 0},
	GetMP4MediaFragment:        {"GetMP4MediaFragment", "get-mp4-media-fragment", PerSession, 20, 0},
	GetTSFragment:              {"GetTSFragment", "get-ts-fragment", PerSession, 20, 0},
	GetHLSMediaPlaylistLL:      {"GetHLSMediaPlaylist (LL-HLS blocking reload)", "get-hls-media-playlist-ll", PerSession, 20, 0},
	GetMP4MediaPart:            {"GetMP4MediaFragment (LL-HLS part)", "get-mp4-media-part", PerSession, 80, 0},
}

// aliases are operations the guide does not list, limited as the one they
// do the work of (the same call by ARN).
var aliases = map[string]Op{
	"TagResource":         TagStream,
	"UntagResource":       UntagStream,
	"ListTagsForResource": ListTagsForStream,
}

var byAPI = func() map[string]Op {
	m := make(map[string]Op, int(NumOps)+len(aliases))
	for op, s := range ops {
		m[s.api] = Op(op)
	}
	for api, op := range aliases {
		m[api] = op
	}
	return m
}()

// OpOf returns the operation of a KVS API name, and whether it has one.
func OpOf(api string) (Op, bool) {
	op, ok := byAPI[api]
	return op, ok
}

// String is the KVS operation name.
func (op Op) String() string {
	if op >= NumOps {
		return "Op(" + strconv.Itoa(int(op)) + ")"
	}
	return ops[op].api
}

// Scope is what the operation's TPS limit is counted per.
func (op Op) Scope() Scope { return ops[op].scope }

// Conn is a kind of connection counted per stream.
type Conn uint8

const (
	GetMediaConns     Conn = iota // open GetMedia responses
	FragmentListConns             // GetMediaForFragmentList requests in progress
	numConns
)

// Config holds every figure. A figure of 0 means no limit. Default returns
// the guide's.
type Config struct {
	// Off turns every limit off (a lab). Requests still report the credits
	// they would consume.
	Off bool
	// FragmentMetadataCredits and FragmentMediaCredits are each stream's
	// fragment credits per second, shared by the archived-media APIs.
	FragmentMetadataCredits int
	FragmentMediaCredits    int
	// TPS is each operation's limit per stream or per session (its Scope),
	// AccountTPS its limit across all streams.
	TPS        [NumOps]int
	AccountTPS [NumOps]int
	// Connections are the connections (or requests in progress) a stream
	// allows at once, by kind.
	Connections [numConns]int
}

// Default returns the guide's figures.
func Default() Config {
	c := Config{FragmentMetadataCredits: 10000, FragmentMediaCredits: 500}
	for op, s := range ops {
		c.TPS[op], c.AccountTPS[op] = s.tps, s.account
	}
	c.Connections[GetMediaConns] = 3
	c.Connections[FragmentListConns] = 5
	return c
}

// Figure is one settable figure of a Config.
type Figure struct {
	Name    string // as --limit and the config file name it
	Default int
	Meaning string
	field   func(*Config) *int
}

// Figures lists every figure, in the order README's table gives them.
func Figures() []Figure {
	fs := []Figure{
		{"fragment-metadata-credits", 0, "fragment-metadata credits per second per stream (ListFragments, GetClip, GetHLSMediaPlaylist, GetDASHManifest, GetImages)",
			func(c *Config) *int { return &c.FragmentMetadataCredits }},
		{"fragment-media-credits", 0, "fragment-media credits per second per stream (GetMediaForFragmentList, GetClip, GetMP4MediaFragment, GetTSFragment, GetImages)",
			func(c *Config) *int { return &c.FragmentMediaCredits }},
		{"get-media-connections", 0, "GetMedia connections per stream at once (ConnectionLimitExceededException)",
			func(c *Config) *int { return &c.Connections[GetMediaConns] }},
		{"get-media-for-fragment-list-connections", 0, "GetMediaForFragmentList requests per stream at once (ClientLimitExceededException: its API knows no other)",
			func(c *Config) *int { return &c.Connections[FragmentListConns] }},
	}
	for op := range NumOps {
		s := ops[op]
		if s.tps > 0 {
			per := "stream"
			if s.scope == PerSession {
				per = "session"
			}
			fs = append(fs, Figure{s.name + "-tps", 0, s.api + " requests per second per " + per,
				func(c *Config) *int { return &c.TPS[op] }})
		}
		if s.account > 0 {
			fs = append(fs, Figure{s.name + "-account-tps", 0, s.api + " requests per second across all streams",
				func(c *Config) *int { return &c.AccountTPS[op] }})
		}
	}
	def := Default()
	for i := range fs {
		fs[i].Default = *fs[i].field(&def)
	}
	return fs
}

// Set sets the figure called name from a decimal value (0: no limit).
func (c *Config) Set(name, value string) error {
	for _, f := range Figures() {
		if f.Name == name {
			v, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || v < 0 || v > 1e9 {
				return fmt.Errorf("limit %s: %q is not a whole number from 0 to 1000000000", name, value)
			}
			*f.field(c) = v
			return nil
		}
	}
	return fmt.Errorf("no limit called %q", name)
}

// SetPair sets a "name=value" figure.
func (c *Config) SetPair(pair string) error {
	name, value, ok := strings.Cut(pair, "=")
	if !ok {
		return fmt.Errorf("limit %q is not name=value", pair)
	}
	return c.Set(strings.TrimSpace(name), value)
}
