package web

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Credentials is one static key pair the gateway accepts.
type Credentials struct{ AccessKeyID, SecretAccessKey string }

// Environment variables read by LoadCredentials when no file is given.
const (
	envAccessKeyID     = "KVSGATE_ACCESS_KEY_ID"
	envSecretAccessKey = "KVSGATE_SECRET_ACCESS_KEY"
)

// LoadCredentials reads key pairs from a file in the AWS shared-credentials INI format
// ([profile] sections with aws_access_key_id / aws_secret_access_key; every profile is accepted),
// and, if path is "", from the environment KVSGATE_ACCESS_KEY_ID / KVSGATE_SECRET_ACCESS_KEY.
// No credentials found => empty slice, nil error (the server then runs open).
//
// The file is parsed like botocore does it: "key = value" or "key: value" lines,
// whole-line comments starting with '#' or ';', no inline comments (a secret may
// contain any character), key names are case-insensitive and other keys (region,
// aws_session_token, nested "s3 =" blocks, ...) are ignored. A profile that has only
// one of the two keys, a key outside any [section], or one access key id listed
// with two different secrets is an error rather than something silently skipped,
// since skipping could leave the server running open. An environment with only
// one of the two variables set is an error for the same reason.
func LoadCredentials(path string) ([]Credentials, error) {
	creds := []Credentials{}
	if path == "" {
		id, secret := os.Getenv(envAccessKeyID), os.Getenv(envSecretAccessKey)
		switch {
		case id == "" && secret == "":
			return creds, nil
		case id == "" || secret == "":
			return nil, fmt.Errorf("sigv4: %s and %s must be set together", envAccessKeyID, envSecretAccessKey)
		}
		return append(creds, Credentials{AccessKeyID: id, SecretAccessKey: secret}), nil
	}

	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sigv4: reading credentials: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM

	type profile struct {
		name, id, secret string
		line             int
	}
	var profiles []*profile
	var cur *profile
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("sigv4: %s:%d: malformed section header %q", path, n, line)
			}
			cur = &profile{name: strings.TrimSpace(line[1 : len(line)-1]), line: n}
			profiles = append(profiles, cur)
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			continue // continuation line of a multi-line value (e.g. nested s3 settings)
		}
		key := strings.ToLower(strings.TrimSpace(line[:i]))
		val := strings.TrimSpace(line[i+1:])
		if key != "aws_access_key_id" && key != "aws_secret_access_key" {
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("sigv4: %s:%d: %s outside of a [profile] section", path, n, key)
		}
		if key == "aws_access_key_id" {
			cur.id = val
		} else {
			cur.secret = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sigv4: reading %s: %w", path, err)
	}

	seen := map[string]string{}
	for _, p := range profiles {
		switch {
		case p.id == "" && p.secret == "":
			continue // e.g. a profile holding only region settings
		case p.id == "":
			return nil, fmt.Errorf("sigv4: %s:%d: profile [%s] has aws_secret_access_key but no aws_access_key_id", path, p.line, p.name)
		case p.secret == "":
			return nil, fmt.Errorf("sigv4: %s:%d: profile [%s] has aws_access_key_id but no aws_secret_access_key", path, p.line, p.name)
		}
		if old, ok := seen[p.id]; ok {
			if old != p.secret {
				return nil, fmt.Errorf("sigv4: %s: access key %s is listed twice with different secrets", path, p.id)
			}
			continue
		}
		seen[p.id] = p.secret
		creds = append(creds, Credentials{AccessKeyID: p.id, SecretAccessKey: p.secret})
	}
	return creds, nil
}

// AuthError is the error Verify returns; Code and Status are the AWS common error
// code and HTTP status the server should answer with.
type AuthError struct {
	Code    string
	Status  int
	Message string
}

func (e *AuthError) Error() string { return e.Code + ": " + e.Message }

type authErrKind int

const (
	errMissingToken authErrKind = iota
	errIncomplete
	errUnknownKey
	errExpired
	errMismatch
)

// authErrors is the one table of error codes Verify can produce. A Message given
// when the error is created replaces the default one.
var authErrors = [...]AuthError{
	errMissingToken: {"MissingAuthenticationTokenException", http.StatusForbidden, "Missing Authentication Token"},
	errIncomplete:   {"IncompleteSignatureException", http.StatusBadRequest, "The Authorization header is malformed."},
	errUnknownKey:   {"UnrecognizedClientException", http.StatusForbidden, "The security token included in the request is invalid."},
	errExpired:      {"InvalidSignatureException", http.StatusForbidden, "Signature expired"},
	errMismatch: {"InvalidSignatureException", http.StatusForbidden,
		"The request signature we calculated does not match the signature you provided. " +
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."},
}

func authErr(kind authErrKind, msg string) *AuthError {
	e := authErrors[kind]
	if msg != "" {
		e.Message = msg
	}
	return &e
}

const (
	sigv4Algorithm  = "AWS4-HMAC-SHA256"
	sigv4Service    = "kinesisvideo"
	sigv4Terminator = "aws4_request"
	amzDateLayout   = "20060102T150405Z"
	maxClockSkew    = 15 * time.Minute

	emptySHA256     = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	unsignedPayload = "UNSIGNED-PAYLOAD"
)

// Verifier checks AWS Signature Version 4 Authorization headers (service "kinesisvideo", any region).
//
// The signature is recomputed with aws-sdk-go-v2's v4.Signer.SignHTTP rather than a
// canonicalisation of our own, on a fresh request holding exactly the headers the
// client listed in SignedHeaders. Three properties of that signer matter:
//
//   - It never signs the headers on its IgnoredHeaders list (Authorization,
//     User-Agent, X-Amzn-Trace-Id, Expect, Transfer-Encoding), but the KVS C
//     producer signs user-agent and transfer-encoding. That list is matched
//     against the http.Header map key exactly as stored, while the canonical
//     request uses strings.ToLower(key). The fresh request therefore stores every
//     header under its lower-case name (h["user-agent"] = ...), which puts it in
//     the canonical request like any other header. The signer package exports no
//     lower-level canonicalisation helpers to fall back on; the KVS producer tests
//     (one of them against an independently hand-computed signature) fail if a
//     future SDK changes this behaviour.
//   - It always signs host (from req.Host) and X-Amz-Date (from the signing time),
//     and signs content-length exactly when req.ContentLength > 0. Verify thus
//     requires host and x-amz-date to be signed, and sets ContentLength only when
//     content-length is signed. A signed "content-length: 0" cannot be reproduced
//     and fails as a signature mismatch (no known KVS client sends one).
//   - It strips a default port from the host only for the "http"/"https" URL
//     schemes; the fresh request has no scheme, so the Host is signed exactly as
//     received (the KVS C producer omits the port, SDKs and the CLI include it).
//
// A new v4.Signer is made per call: the signer caches derived keys per
// region/service without bound, and the region comes from the request.
//
// Only header-based signing is supported (no presigned query strings), the signing
// time must come from X-Amz-Date (not Date), and for "STREAMING-*" payload hashes
// only the seed signature is checked, not the per-chunk signatures.
type Verifier struct {
	secrets map[string]string // access key id -> secret access key
	now     func() time.Time  // the server clock; replaced in tests
}

// NewVerifier returns a Verifier accepting the given key pairs; nil/empty creds
// gives an open Verifier whose Verify always returns nil.
func NewVerifier(creds []Credentials) *Verifier {
	v := &Verifier{secrets: make(map[string]string, len(creds)), now: time.Now}
	for _, c := range creds {
		v.secrets[c.AccessKeyID] = c.SecretAccessKey
	}
	return v
}

// Open reports whether the Verifier accepts every request (no credentials configured).
func (v *Verifier) Open() bool { return v == nil || len(v.secrets) == 0 }

// Verify checks r. bodySHA256 is the lowercase hex SHA-256 of the request body when the caller has read it
// (JSON APIs), or "" when the body is streamed and cannot be hashed up front (PutMedia).
//
// The payload hash signed is the X-Amz-Content-Sha256 header if present (which,
// when it is a hex digest and bodySHA256 is known, must equal bodySHA256), else
// bodySHA256, else (streamed body) the SHA-256 of the empty string, which is what
// the KVS C producer signs for PutMedia, and then "UNSIGNED-PAYLOAD".
//
// The returned error is nil or an *AuthError. Verify does not read r.Body.
func (v *Verifier) Verify(r *http.Request, bodySHA256 string) error {
	if v.Open() {
		return nil
	}
	if err := v.verify(r, bodySHA256); err != nil {
		return err
	}
	return nil
}

func (v *Verifier) verify(r *http.Request, bodySHA256 string) *AuthError {
	values := r.Header.Values("Authorization")
	if len(values) == 0 || (len(values) == 1 && strings.TrimSpace(values[0]) == "") {
		return authErr(errMissingToken, "")
	}
	if len(values) > 1 {
		return authErr(errIncomplete, "Only one Authorization header is allowed.")
	}
	auth, err := parseAuthorization(values[0])
	if err != nil {
		return authErr(errIncomplete, err.Error())
	}
	if auth.Service != sigv4Service {
		return authErr(errMismatch, "Credential should be scoped to correct service: '"+sigv4Service+"'.")
	}
	if !slices.Contains(auth.SignedHeaders, "host") {
		return authErr(errIncomplete, "'Host' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if !slices.Contains(auth.SignedHeaders, "x-amz-date") {
		return authErr(errIncomplete, "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
	}

	dates := r.Header.Values("X-Amz-Date")
	if len(dates) != 1 {
		return authErr(errIncomplete, "Authorization header requires existence of exactly one 'X-Amz-Date' header.")
	}
	signingTime, err := time.Parse(amzDateLayout, dates[0])
	if err != nil || signingTime.Format(amzDateLayout) != dates[0] {
		return authErr(errIncomplete, "'X-Amz-Date' must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'.")
	}
	if auth.Date != dates[0][:8] {
		return authErr(errMismatch, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '"+
			auth.Date+"' != '"+dates[0][:8]+"', from '"+dates[0]+"'.")
	}

	secret, ok := v.secrets[auth.AccessKeyID]
	if !ok {
		return authErr(errUnknownKey, "")
	}

	now := v.now().UTC()
	switch {
	case signingTime.Before(now.Add(-maxClockSkew)):
		return authErr(errExpired, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)",
			dates[0], now.Add(-maxClockSkew).Format(amzDateLayout), now.Format(amzDateLayout)))
	case signingTime.After(now.Add(maxClockSkew)):
		// AWS words this case "Signature not yet current"; kept under the one
		// "Signature expired" message as the API contract asks.
		return authErr(errExpired, fmt.Sprintf("Signature expired: %s is now later than %s (%s + 15 min.)",
			dates[0], now.Add(maxClockSkew).Format(amzDateLayout), now.Format(amzDateLayout)))
	}

	var candidates []string
	if hs := r.Header.Values("X-Amz-Content-Sha256"); len(hs) > 0 {
		if len(hs) > 1 {
			return authErr(errIncomplete, "Only one X-Amz-Content-Sha256 header is allowed.")
		}
		if isHexDigest(hs[0]) && bodySHA256 != "" && !strings.EqualFold(hs[0], bodySHA256) {
			return authErr(errMismatch, "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		candidates = []string{hs[0]}
	} else if bodySHA256 != "" {
		candidates = []string{bodySHA256}
	} else {
		candidates = []string{emptySHA256, unsignedPayload}
	}

	creds := aws.Credentials{AccessKeyID: auth.AccessKeyID, SecretAccessKey: secret, Source: "kvsgate"}
	signer := v4.NewSigner()
	wantHeaders := strings.Join(auth.SignedHeaders, ";")
	for _, payloadHash := range candidates {
		req := resignRequest(r, auth.SignedHeaders)
		err := signer.SignHTTP(r.Context(), creds, req, payloadHash, auth.Service, auth.Region, signingTime)
		if err != nil {
			return authErr(errMismatch, "")
		}
		got, err := parseAuthorization(req.Header.Get("Authorization"))
		if err != nil || strings.Join(got.SignedHeaders, ";") != wantHeaders {
			// A signed header is absent from the request, the list is not sorted,
			// or it is one the signer cannot reproduce (content-length: 0). The
			// signature would differ as well; this only skips further candidates.
			return authErr(errMismatch, "")
		}
		if subtle.ConstantTimeCompare([]byte(got.Signature), []byte(auth.Signature)) == 1 {
			return nil
		}
	}
	return authErr(errMismatch, "")
}

// resignRequest builds the request handed to the SDK signer: r's method, path, raw
// query and Host, and only the headers named in signed, stored under lower-case
// keys (see Verifier). The net/http server moves Host to r.Host and
// Transfer-Encoding to r.TransferEncoding (both put back here when signed); it
// leaves Connection in r.Header for requests. X-Amz-Date is added by the signer
// itself and content-length is conveyed through ContentLength.
func resignRequest(r *http.Request, signed []string) *http.Request {
	want := make(map[string]bool, len(signed))
	for _, name := range signed {
		want[name] = true
	}
	h := make(http.Header, len(signed))
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if !want[lk] {
			continue
		}
		switch lk {
		case "host", "x-amz-date", "content-length", "authorization":
			continue
		}
		h[lk] = append(h[lk], vs...)
	}
	if want["transfer-encoding"] && len(h["transfer-encoding"]) == 0 && len(r.TransferEncoding) > 0 {
		h["transfer-encoding"] = append([]string(nil), r.TransferEncoding...)
	}
	var contentLength int64
	if want["content-length"] && r.ContentLength > 0 {
		contentLength = r.ContentLength
	}
	u := &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	return &http.Request{
		Method:        r.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Host:          r.Host,
		Header:        h,
		ContentLength: contentLength,
	}
}

// authorization is a parsed AWS4-HMAC-SHA256 Authorization header.
type authorization struct {
	AccessKeyID   string
	Date          string // YYYYMMDD from the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string // 64 lower-case hex digits
}

func (a authorization) String() string {
	return sigv4Algorithm + " Credential=" + a.AccessKeyID + "/" + a.Date + "/" + a.Region + "/" + a.Service + "/" + sigv4Terminator +
		", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") + ", Signature=" + a.Signature
}

const maxAuthorizationLen = 8 << 10

// parseAuthorization parses
//
//	AWS4-HMAC-SHA256 Credential=AKID/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=a;b;c, Signature=hex
//
// The three components may be separated by "," with optional spaces and come in
// any order, each exactly once. The input is untrusted; errors are meant to be
// shown to the client.
func parseAuthorization(s string) (authorization, error) {
	var a authorization
	if len(s) > maxAuthorizationLen {
		return a, errors.New("Authorization header is too long.")
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), sigv4Algorithm)
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return a, errors.New("Authorization header must use the " + sigv4Algorithm + " algorithm.")
	}
	var haveCred, haveHeaders, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		part = strings.Trim(part, " \t")
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			return a, fmt.Errorf("Authorization header component %q is not key=value.", clip(part))
		}
		switch key {
		case "Credential":
			if haveCred {
				return a, errors.New("Authorization header has more than one 'Credential' parameter.")
			}
			haveCred = true
			f := strings.Split(val, "/")
			if len(f) != 5 || f[0] == "" || !isScopeDate(f[1]) || !isScopeToken(f[2]) || !isScopeToken(f[3]) || f[4] != sigv4Terminator ||
				!isPrintable(f[0]) {
				return a, errors.New("Credential must have the form <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request.")
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			if haveHeaders {
				return a, errors.New("Authorization header has more than one 'SignedHeaders' parameter.")
			}
			haveHeaders = true
			names := strings.Split(val, ";")
			seen := make(map[string]bool, len(names))
			for _, n := range names {
				if !isLowerToken(n) || seen[n] {
					return a, errors.New("SignedHeaders must be a ';'-separated list of distinct lower-case header names.")
				}
				seen[n] = true
			}
			a.SignedHeaders = names
		case "Signature":
			if haveSig {
				return a, errors.New("Authorization header has more than one 'Signature' parameter.")
			}
			haveSig = true
			if len(val) != 64 || !isHexDigest(val) || strings.ToLower(val) != val {
				return a, errors.New("Signature must be 64 lower-case hexadecimal digits.")
			}
			a.Signature = val
		default:
			return a, fmt.Errorf("Authorization header has an unknown component %q.", clip(key))
		}
	}
	switch {
	case !haveCred:
		return a, errors.New("Authorization header requires 'Credential' parameter.")
	case !haveHeaders:
		return a, errors.New("Authorization header requires 'SignedHeaders' parameter.")
	case !haveSig:
		return a, errors.New("Authorization header requires 'Signature' parameter.")
	}
	return a, nil
}

// clip shortens untrusted text quoted back in error messages.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func isScopeDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	_, err := time.Parse("20060102", s)
	return err == nil
}

// isScopeToken accepts region and service names: 1..64 of [a-z0-9-].
func isScopeToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == ',' {
			return false
		}
	}
	return true
}

// isLowerToken accepts an RFC 9110 header field name without upper-case letters.
func isLowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
