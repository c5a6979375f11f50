package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/smithy-go"
)

var (
	testCreds  = Credentials{AccessKeyID: "AKIDEXAMPLE00000001", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	otherCreds = Credentials{AccessKeyID: "AKIDEXAMPLE00000002", SecretAccessKey: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"}
	// testTime is the server clock in the table tests; 23:50 so that a few cases can cross midnight.
	testTime = time.Date(2026, 11, 21, 23, 50, 0, 0, time.UTC)
)

const (
	producerUA        = "AWS-SDK-KVS-CPP-CLIENT/3.4.2/1.5.3 GCC/12.2.0 Linux/6.6.51+rpt-rpi-v8 aarch64 CPPSDK"
	producerSignedHdr = "connection;host;transfer-encoding;user-agent;x-amz-date;x-amzn-fragment-acknowledgment-required;" +
		"x-amzn-fragment-timecode-type;x-amzn-producer-start-timestamp;x-amzn-stream-name"
	describeBody = `{"StreamName":"my-stream"}`
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testVerifier(now time.Time) *Verifier {
	v := NewVerifier([]Credentials{testCreds, otherCreds})
	v.now = func() time.Time { return now }
	return v
}

func awsCreds(c Credentials) aws.Credentials {
	return aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Source: "test"}
}

// toServer writes a client-side request to the wire and parses it back the way
// net/http's server does, so that header canonicalisation, Host and
// Transfer-Encoding handling are what a handler would see.
func toServer(t *testing.T, req *http.Request) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return parseWire(t, buf.String())
}

func parseWire(t *testing.T, wire string) *http.Request {
	t.Helper()
	sr, err := http.ReadRequest(bufio.NewReader(strings.NewReader(wire)))
	if err != nil {
		t.Fatalf("ReadRequest: %v\n%s", err, wire)
	}
	return sr
}

// sdkRequest signs a DescribeStream call the way aws-sdk-go-v2 does: JSON body
// hashed, Host with port, X-Amz-Date, Content-Type, SDK bookkeeping headers
// (signed) and a User-Agent (ignored by the signer).
func sdkRequest(t *testing.T, c Credentials, service string, at time.Time, body string, extra http.Header) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:4567/describeStream", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aws-sdk-go-v2/1.47.0 ua/2.1 os/linux lang/go#1.26 api/kinesisvideo#1.34.0")
	req.Header.Set("Amz-Sdk-Invocation-Id", "0b1f1c2e-4b8e-4a43-9d2c-1c7d5b0b8d11")
	req.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
	for k, vs := range extra {
		req.Header[k] = vs
	}
	payload := sha256Hex([]byte(body))
	if h := req.Header.Get("X-Amz-Content-Sha256"); h != "" {
		payload = h
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), awsCreds(c), req, payload, service, "us-west-2", at); err != nil {
		t.Fatal(err)
	}
	return req
}

type producerOpts struct {
	host        string // Host header; default "127.0.0.1" (no port, as the C producer sends it)
	payloadHash string // default sha256("")
	streamName  string // default "my-stream"
}

// producerAuth signs a KVS C producer PutMedia request with the SDK signer. The
// header map uses lower-case keys so that the signer includes user-agent and
// transfer-encoding, which it would skip under their canonical names. It returns
// the X-Amz-Date and Authorization values.
func producerAuth(t *testing.T, c Credentials, at time.Time, o producerOpts) (amzDate, authz string) {
	t.Helper()
	req := &http.Request{
		Method: http.MethodPost,
		URL:    &url.URL{Path: "/putMedia"},
		Host:   o.host,
		Header: http.Header{
			"connection":        {"keep-alive"},
			"transfer-encoding": {"chunked"},
			"user-agent":        {producerUA},
			"x-amzn-fragment-acknowledgment-required": {"1"},
			"x-amzn-fragment-timecode-type":           {"ABSOLUTE"},
			"x-amzn-producer-start-timestamp":         {"1763769000.123"},
			"x-amzn-stream-name":                      {o.streamName},
		},
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), awsCreds(c), req, o.payloadHash, "kinesisvideo", "us-west-2", at); err != nil {
		t.Fatal(err)
	}
	authz = req.Header.Get("Authorization")
	if !strings.Contains(authz, "SignedHeaders="+producerSignedHdr+",") {
		t.Fatalf("oracle did not sign the KVS producer header set: %s", authz)
	}
	return req.Header.Get("X-Amz-Date"), authz
}

// producerWire is the request as the KVS C producer (curl) puts it on the wire:
// lower-case header names, Host without port, chunked body.
func producerWire(host, amzDate, authz, streamName string) string {
	return "POST /putMedia HTTP/1.1\r\n" +
		"host: " + host + "\r\n" +
		"accept: */*\r\n" +
		"authorization: " + authz + "\r\n" +
		"connection: keep-alive\r\n" +
		"transfer-encoding: chunked\r\n" +
		"user-agent: " + producerUA + "\r\n" +
		"x-amz-date: " + amzDate + "\r\n" +
		"x-amzn-fragment-acknowledgment-required: 1\r\n" +
		"x-amzn-fragment-timecode-type: ABSOLUTE\r\n" +
		"x-amzn-producer-start-timestamp: 1763769000.123\r\n" +
		"x-amzn-stream-name: " + streamName + "\r\n" +
		"\r\n" +
		"5\r\n\x1a\x45\xdf\xa3\x01\r\n0\r\n\r\n"
}

func producerRequest(t *testing.T, c Credentials, at time.Time, o producerOpts) *http.Request {
	t.Helper()
	if o.host == "" {
		o.host = "127.0.0.1"
	}
	if o.payloadHash == "" {
		o.payloadHash = emptySHA256
	}
	if o.streamName == "" {
		o.streamName = "my-stream"
	}
	amzDate, authz := producerAuth(t, c, at, o)
	return parseWire(t, producerWire(o.host, amzDate, authz, o.streamName))
}

func TestVerify(t *testing.T) {
	body := []byte(describeBody)
	bodyHash := sha256Hex(body)
	mismatch := authErrors[errMismatch].Message

	tests := []struct {
		name     string
		req      func(t *testing.T) *http.Request
		bodyHash string // passed to Verify
		code     string // "" = must verify
		status   int
		msg      string // substring of Message
	}{
		// (a) aws-sdk-go-v2 style.
		{name: "sdk", bodyHash: bodyHash, req: func(t *testing.T) *http.Request {
			return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
		}},
		{name: "sdk second key", bodyHash: bodyHash, req: func(t *testing.T) *http.Request {
			return toServer(t, sdkRequest(t, otherCreds, "kinesisvideo", testTime, describeBody, nil))
		}},
		{name: "sdk unsigned header changed", bodyHash: bodyHash, req: func(t *testing.T) *http.Request {
			r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
			r.Header.Set("User-Agent", "something else")
			r.Header.Set("X-Forwarded-For", "10.0.0.1")
			return r
		}},
		{name: "sdk 14 min old", bodyHash: bodyHash, req: func(t *testing.T) *http.Request {
			return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime.Add(-14*time.Minute), describeBody, nil))
		}},
		{name: "sdk 14 min ahead, next day", bodyHash: bodyHash, req: func(t *testing.T) *http.Request {
			return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime.Add(14*time.Minute), describeBody, nil))
		}},
		{name: "sdk query string", bodyHash: bodyHash, req: func(t *testing.T) *http.Request {
			req := sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil)
			req2, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:4567/list%20Streams?b=2&a=1&a=0&c=x%2Fy", strings.NewReader(describeBody))
			req2.Header = req.Header.Clone()
			req2.Header.Del("Authorization")
			if err := v4.NewSigner().SignHTTP(context.Background(), awsCreds(testCreds), req2, bodyHash, "kinesisvideo", "us-west-2", testTime); err != nil {
				t.Fatal(err)
			}
			return toServer(t, req2)
		}},

		// (b) KVS C producer PutMedia, streamed body.
		{name: "producer", req: func(t *testing.T) *http.Request {
			return producerRequest(t, testCreds, testTime, producerOpts{})
		}},
		{name: "producer host with port", req: func(t *testing.T) *http.Request {
			return producerRequest(t, testCreds, testTime, producerOpts{host: "127.0.0.1:8080"})
		}},
		{name: "producer host with default port", req: func(t *testing.T) *http.Request {
			return producerRequest(t, testCreds, testTime, producerOpts{host: "kvsgate.local:80"})
		}},
		{name: "producer UNSIGNED-PAYLOAD", req: func(t *testing.T) *http.Request {
			return producerRequest(t, testCreds, testTime, producerOpts{payloadHash: unsignedPayload})
		}},

		// (c) X-Amz-Content-Sha256.
		{name: "content-sha256 header", bodyHash: bodyHash, req: func(t *testing.T) *http.Request {
			return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody,
				http.Header{"X-Amz-Content-Sha256": {bodyHash}}))
		}},
		{name: "content-sha256 header, body not hashed", req: func(t *testing.T) *http.Request {
			return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody,
				http.Header{"X-Amz-Content-Sha256": {bodyHash}}))
		}},
		{name: "content-sha256 UNSIGNED-PAYLOAD", bodyHash: bodyHash, req: func(t *testing.T) *http.Request {
			return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody,
				http.Header{"X-Amz-Content-Sha256": {unsignedPayload}}))
		}},

		// Negative cases.
		{name: "wrong secret", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				c := testCreds
				c.SecretAccessKey = otherCreds.SecretAccessKey
				return toServer(t, sdkRequest(t, c, "kinesisvideo", testTime, describeBody, nil))
			}},
		{name: "producer wrong secret", code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				return producerRequest(t, Credentials{testCreds.AccessKeyID, "nope"}, testTime, producerOpts{})
			}},
		{name: "unknown key", bodyHash: bodyHash, code: "UnrecognizedClientException", status: 403,
			req: func(t *testing.T) *http.Request {
				return toServer(t, sdkRequest(t, Credentials{"AKIDUNKNOWN", testCreds.SecretAccessKey}, "kinesisvideo", testTime, describeBody, nil))
			}},
		{name: "tampered signed header", code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := producerRequest(t, testCreds, testTime, producerOpts{})
				r.Header.Set("X-Amzn-Stream-Name", "someone-elses-stream")
				return r
			}},
		{name: "tampered signed header on the wire", code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				amzDate, authz := producerAuth(t, testCreds, testTime, producerOpts{host: "127.0.0.1", payloadHash: emptySHA256, streamName: "my-stream"})
				return parseWire(t, producerWire("127.0.0.1", amzDate, authz, "my-streak"))
			}},
		{name: "tampered user-agent (signed by producer)", code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := producerRequest(t, testCreds, testTime, producerOpts{})
				r.Header.Set("User-Agent", "curl/8.0")
				return r
			}},
		{name: "tampered transfer-encoding (signed by producer)", code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := producerRequest(t, testCreds, testTime, producerOpts{})
				r.TransferEncoding = nil
				return r
			}},
		{name: "tampered host", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Host = "127.0.0.1"
				return r
			}},
		{name: "tampered path", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.URL.Path, r.URL.RawPath = "/deleteStream", ""
				return r
			}},
		{name: "tampered query", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.URL.RawQuery = "admin=1"
				return r
			}},
		{name: "tampered method", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Method = http.MethodPut
				return r
			}},
		{name: "body hash mismatch", bodyHash: sha256Hex([]byte(`{"StreamName":"other"}`)), code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
			}},
		{name: "content-sha256 header does not match body", bodyHash: sha256Hex([]byte(`{"StreamName":"other"}`)),
			code: "InvalidSignatureException", status: 403, msg: "x-amz-content-sha256",
			req: func(t *testing.T) *http.Request {
				return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody,
					http.Header{"X-Amz-Content-Sha256": {bodyHash}}))
			}},
		{name: "producer signed a body hash", code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				return producerRequest(t, testCreds, testTime, producerOpts{payloadHash: sha256Hex([]byte("x"))})
			}},
		{name: "date 20 min old", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: "Signature expired",
			req: func(t *testing.T) *http.Request {
				return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime.Add(-20*time.Minute), describeBody, nil))
			}},
		{name: "producer date 20 min old", code: "InvalidSignatureException", status: 403, msg: "Signature expired",
			req: func(t *testing.T) *http.Request {
				return producerRequest(t, testCreds, testTime.Add(-20*time.Minute), producerOpts{})
			}},
		{name: "date 20 min ahead", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: "Signature expired",
			req: func(t *testing.T) *http.Request {
				return toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime.Add(20*time.Minute), describeBody, nil))
			}},
		{name: "x-amz-date changed within skew", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Set("X-Amz-Date", testTime.Add(time.Minute).Format(amzDateLayout))
				return r
			}},
		{name: "x-amz-date on another day than the scope", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: "Credential scope",
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Set("X-Amz-Date", testTime.Add(11*time.Minute).Format(amzDateLayout))
				return r
			}},
		{name: "wrong service in scope", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: "kinesisvideo",
			req: func(t *testing.T) *http.Request {
				return toServer(t, sdkRequest(t, testCreds, "s3", testTime, describeBody, nil))
			}},
		{name: "missing authorization", bodyHash: bodyHash, code: "MissingAuthenticationTokenException", status: 403,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Del("Authorization")
				return r
			}},
		{name: "empty authorization", bodyHash: bodyHash, code: "MissingAuthenticationTokenException", status: 403,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Set("Authorization", "")
				return r
			}},
		{name: "two authorization headers", bodyHash: bodyHash, code: "IncompleteSignatureException", status: 400,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Add("Authorization", r.Header.Get("Authorization"))
				return r
			}},
		{name: "missing x-amz-date", bodyHash: bodyHash, code: "IncompleteSignatureException", status: 400, msg: "X-Amz-Date",
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Del("X-Amz-Date")
				return r
			}},
		{name: "malformed x-amz-date", bodyHash: bodyHash, code: "IncompleteSignatureException", status: 400, msg: "ISO8601",
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Set("X-Amz-Date", testTime.Format(time.RFC3339))
				return r
			}},
		{name: "host not signed", bodyHash: bodyHash, code: "IncompleteSignatureException", status: 400, msg: "Host",
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";host;", ";", 1))
				return r
			}},
		{name: "signed header absent from request", bodyHash: bodyHash, code: "InvalidSignatureException", status: 403, msg: mismatch,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Del("Amz-Sdk-Request")
				return r
			}},
	}

	garbage := []string{
		"garbage",
		"Bearer abc",
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA256 Credential=",
		"AWS AKIDEXAMPLE00000001:c2lnbmF0dXJl",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=xyz",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/2026-11-21/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=Host;X-Amz-Date, Signature=" + strings.Repeat("a", 64),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;;x-amz-date, Signature=" + strings.Repeat("a", 64),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("A", 64),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64) + ", Foo=bar",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request,, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64) + ",",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/../kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64),
		"AWS4-HMAC-SHA256 Credential=AKID EXAMPLE/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64),
		"AWS4-HMAC-SHA256 " + strings.Repeat("x", 10000),
		"\x00\xff\xfe",
	}
	for i, g := range garbage {
		tests = append(tests, struct {
			name     string
			req      func(t *testing.T) *http.Request
			bodyHash string
			code     string
			status   int
			msg      string
		}{
			name: "garbage " + string(rune('a'+i)), bodyHash: bodyHash, code: "IncompleteSignatureException", status: 400,
			req: func(t *testing.T) *http.Request {
				r := toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil))
				r.Header.Set("Authorization", g)
				return r
			},
		})
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := testVerifier(testTime)
			r := tc.req(t)
			err := v.Verify(r, tc.bodyHash)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Verify: %v\nAuthorization: %s", err, r.Header.Get("Authorization"))
				}
				return
			}
			var ae *AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("Verify = %v (%T), want *AuthError %s", err, err, tc.code)
			}
			if ae.Code != tc.code || ae.Status != tc.status || !strings.Contains(ae.Message, tc.msg) {
				t.Fatalf("Verify = {%s %d %q}, want {%s %d ...%q...}", ae.Code, ae.Status, ae.Message, tc.code, tc.status, tc.msg)
			}
		})
	}
}

// TestVerifyProducerHandSigned checks the KVS producer case against a signature
// computed by hand from the SigV4 specification (as in the AWS PutMedia Python
// sample), independently of the SDK signer and of the lower-case header trick.
func TestVerifyProducerHandSigned(t *testing.T) {
	at := testTime.Add(-3 * time.Minute)
	amzDate := at.Format(amzDateLayout)
	scope := at.Format("20060102") + "/eu-central-1/kinesisvideo/aws4_request"
	canonical := "POST\n/putMedia\n\n" +
		"connection:keep-alive\n" +
		"host:127.0.0.1\n" +
		"transfer-encoding:chunked\n" +
		"user-agent:" + producerUA + "\n" +
		"x-amz-date:" + amzDate + "\n" +
		"x-amzn-fragment-acknowledgment-required:1\n" +
		"x-amzn-fragment-timecode-type:ABSOLUTE\n" +
		"x-amzn-producer-start-timestamp:1763769000.123\n" +
		"x-amzn-stream-name:my-stream\n" +
		"\n" + producerSignedHdr + "\n" + emptySHA256
	stringToSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + sha256Hex([]byte(canonical))
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	key := mac([]byte("AWS4"+testCreds.SecretAccessKey), at.Format("20060102"))
	key = mac(key, "eu-central-1")
	key = mac(key, "kinesisvideo")
	key = mac(key, "aws4_request")
	sig := hex.EncodeToString(mac(key, stringToSign))
	authz := "AWS4-HMAC-SHA256 Credential=" + testCreds.AccessKeyID + "/" + scope + ", SignedHeaders=" + producerSignedHdr + ", Signature=" + sig

	v := testVerifier(testTime)
	if err := v.Verify(parseWire(t, producerWire("127.0.0.1", amzDate, authz, "my-stream")), ""); err != nil {
		t.Fatalf("hand-signed producer request: %v", err)
	}
	flipped := authz[:len(authz)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", authz[len(authz)-1])+1)%16])
	if err := v.Verify(parseWire(t, producerWire("127.0.0.1", amzDate, flipped, "my-stream")), ""); err == nil {
		t.Fatal("request with a flipped signature digit verified")
	}
}

func TestVerifyOpen(t *testing.T) {
	for _, creds := range [][]Credentials{nil, {}} {
		v := NewVerifier(creds)
		if !v.Open() {
			t.Fatalf("NewVerifier(%v).Open() = false", creds)
		}
		r := httptest.NewRequest(http.MethodPost, "/describeStream", nil)
		if err := v.Verify(r, ""); err != nil {
			t.Fatalf("open Verify = %v", err)
		}
		r.Header.Set("Authorization", "garbage")
		if err := v.Verify(r, ""); err != nil {
			t.Fatalf("open Verify = %v", err)
		}
	}
	if NewVerifier([]Credentials{testCreds}).Open() {
		t.Fatal("Verifier with credentials is open")
	}
	// Verify must return an untyped nil, usable as err == nil by callers.
	var err error = testVerifier(testTime).Verify(toServer(t, sdkRequest(t, testCreds, "kinesisvideo", testTime, describeBody, nil)), sha256Hex([]byte(describeBody)))
	if err != nil {
		t.Fatalf("Verify = %#v", err)
	}
}

func TestAuthErrorTable(t *testing.T) {
	for k, e := range authErrors {
		if e.Code == "" || e.Status == 0 || e.Message == "" {
			t.Errorf("authErrors[%d] incomplete: %+v", k, e)
		}
	}
	e := authErr(errExpired, "Signature expired: x")
	if e.Error() != "InvalidSignatureException: Signature expired: x" {
		t.Errorf("Error() = %q", e.Error())
	}
	if authErrors[errExpired].Message != "Signature expired" {
		t.Error("authErr modified the table")
	}
}

// kvsServer is an httptest server whose handler verifies every request and
// answers DescribeStream like KVS does.
type kvsServer struct {
	*httptest.Server
	verified atomic.Int32
	rejected atomic.Int32
	lastErr  atomic.Value // string
	lastAuth atomic.Value // string: the last Authorization header seen
}

func newKVSServer(t *testing.T, v *Verifier) *kvsServer {
	s := &kvsServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.lastAuth.Store(r.Header.Get("Authorization"))
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := v.Verify(r, sha256Hex(body)); err != nil {
			s.rejected.Add(1)
			s.lastErr.Store(err.Error())
			var ae *AuthError
			if !errors.As(err, &ae) {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-Errortype", ae.Code)
			w.WriteHeader(ae.Status)
			json.NewEncoder(w).Encode(map[string]string{"message": ae.Message})
			return
		}
		s.verified.Add(1)
		var in struct{ StreamName string }
		if r.URL.Path != "/describeStream" || json.Unmarshal(body, &in) != nil {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"StreamInfo": map[string]any{
			"StreamName":           in.StreamName,
			"StreamARN":            "arn:aws:kinesisvideo:us-west-2:123456789012:stream/" + in.StreamName + "/1763769000000",
			"Status":               "ACTIVE",
			"MediaType":            "video/h264",
			"Version":              "abc",
			"DataRetentionInHours": 24,
			"CreationTime":         1763769000,
		}})
	}))
	t.Cleanup(s.Close)
	return s
}

func TestVerifySDKClient(t *testing.T) {
	srv := newKVSServer(t, NewVerifier([]Credentials{testCreds}))
	describe := func(c Credentials) (*kinesisvideo.DescribeStreamOutput, error) {
		client := kinesisvideo.New(kinesisvideo.Options{
			Region:       "us-west-2",
			BaseEndpoint: aws.String(srv.URL),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return awsCreds(c), nil
			}),
			HTTPClient: srv.Client(),
			Retryer:    aws.NopRetryer{},
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return client.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("sdk-stream")})
	}

	out, err := describe(testCreds)
	if err != nil {
		t.Fatalf("DescribeStream with the right keys: %v (server: %v)", err, srv.lastErr.Load())
	}
	if out.StreamInfo == nil || aws.ToString(out.StreamInfo.StreamName) != "sdk-stream" {
		t.Fatalf("DescribeStream output = %+v", out.StreamInfo)
	}
	if srv.verified.Load() != 1 {
		t.Fatalf("verified = %d, want 1", srv.verified.Load())
	}
	t.Logf("aws-sdk-go-v2 sent: %v", srv.lastAuth.Load())

	for _, tc := range []struct {
		creds Credentials
		code  string
	}{
		{Credentials{testCreds.AccessKeyID, "wrong-secret"}, "InvalidSignatureException"},
		{otherCreds, "UnrecognizedClientException"},
	} {
		_, err := describe(tc.creds)
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.code {
			t.Errorf("DescribeStream with %s = %v, want %s", tc.creds.AccessKeyID, err, tc.code)
		}
	}
	if srv.verified.Load() != 1 || srv.rejected.Load() != 2 {
		t.Fatalf("verified = %d, rejected = %d; want 1, 2", srv.verified.Load(), srv.rejected.Load())
	}
}

func TestVerifyAWSCLI(t *testing.T) {
	const cli = "/usr/bin/aws"
	if _, err := os.Stat(cli); err != nil {
		t.Skipf("%s not installed", cli)
	}
	if testing.Short() {
		t.Skip("starts the AWS CLI")
	}
	srv := newKVSServer(t, NewVerifier([]Credentials{testCreds}))
	run := func(c Credentials) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, "kinesisvideo", "describe-stream", "--stream-name", "x",
			"--endpoint-url", srv.URL, "--region", "us-west-2", "--output", "json")
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + t.TempDir(),
			"AWS_ACCESS_KEY_ID=" + c.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY=" + c.SecretAccessKey,
			"AWS_CONFIG_FILE=/dev/null",
			"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_MAX_ATTEMPTS=1",
			"AWS_PAGER=",
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(testCreds)
	if err != nil {
		t.Fatalf("aws describe-stream: %v\n%s\nserver: %v", err, out, srv.lastErr.Load())
	}
	if srv.verified.Load() != 1 || !strings.Contains(out, `"StreamName": "x"`) {
		t.Fatalf("verified = %d, output:\n%s", srv.verified.Load(), out)
	}
	t.Logf("aws cli sent: %v", srv.lastAuth.Load())

	out, err = run(Credentials{testCreds.AccessKeyID, "wrong-secret"})
	if err == nil || !strings.Contains(out, "InvalidSignatureException") {
		t.Fatalf("aws describe-stream with a wrong secret: err = %v\n%s", err, out)
	}
	if srv.verified.Load() != 1 || srv.rejected.Load() == 0 {
		t.Fatalf("verified = %d, rejected = %d", srv.verified.Load(), srv.rejected.Load())
	}
}

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("0f", 32)
	want := authorization{
		AccessKeyID: "AKIDEXAMPLE00000001", Date: "20261121", Region: "us-west-2", Service: "kinesisvideo",
		SignedHeaders: []string{"content-type", "host", "x-amz-date"}, Signature: sig,
	}
	for _, s := range []string{
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + sig,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request,SignedHeaders=content-type;host;x-amz-date,Signature=" + sig,
		"  AWS4-HMAC-SHA256   Signature=" + sig + " ,\tSignedHeaders=content-type;host;x-amz-date , Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request ",
	} {
		got, err := parseAuthorization(s)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseAuthorization(%q) = %+v, %v", s, got, err)
		}
	}
	if got, err := parseAuthorization(want.String()); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("round trip = %+v, %v", got, err)
	}
}

func FuzzParseAuthorization(f *testing.F) {
	sig := strings.Repeat("ab", 32)
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + sig)
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=" + producerSignedHdr + ", Signature=" + sig)
	f.Add("AWS4-HMAC-SHA256 Credential=a/20261121/r/kinesisvideo/aws4_request,SignedHeaders=host;x-amz-date,Signature=" + sig)
	f.Add("AWS4-HMAC-SHA256 Credential=///, SignedHeaders=;, Signature=")
	f.Add("AWS4-HMAC-SHA256 ,,,===")
	f.Add("")

	v := testVerifier(testTime)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAuthorization(s)
		if err == nil {
			if a.AccessKeyID == "" || !isScopeDate(a.Date) || !isScopeToken(a.Region) || !isScopeToken(a.Service) ||
				len(a.SignedHeaders) == 0 || len(a.Signature) != 64 || !isHexDigest(a.Signature) {
				t.Fatalf("parseAuthorization(%q) accepted %+v", s, a)
			}
			b, err := parseAuthorization(a.String())
			if err != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("round trip of %q: %+v, %v; want %+v", s, b, err, a)
			}
		}

		// The whole of Verify must not panic either, and no fuzzed header verifies.
		r := &http.Request{
			Method: http.MethodPost,
			URL:    &url.URL{Path: "/describeStream"},
			Host:   "127.0.0.1:4567",
			Header: http.Header{
				"Authorization": {s},
				"X-Amz-Date":    {testTime.Format(amzDateLayout)},
				"Content-Type":  {"application/json"},
			},
		}
		verr := v.Verify(r, "")
		var ae *AuthError
		if !errors.As(verr, &ae) || ae.Code == "" || ae.Status == 0 {
			t.Fatalf("Verify with Authorization %q = %v", s, verr)
		}
	})
}

func TestLoadCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Environment must not matter when a path is given.
	t.Setenv(envAccessKeyID, "ENVKEY")
	t.Setenv(envSecretAccessKey, "ENVSECRET")

	good := write("credentials", "\xef\xbb\xbf# shared credentials\n"+
		"[default]\n"+
		"aws_access_key_id = AKIDEXAMPLE00000001\n"+
		"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"+
		"region = us-west-2\n"+
		"\n"+
		"; another one\n"+
		"[profile camera2]\n"+
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE00000002\n"+
		"  aws_secret_access_key:je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY#x  \n"+
		"aws_session_token = ignored\n"+
		"s3 =\n"+
		"    max_concurrent_requests = 20\n"+
		"[only-region]\n"+
		"region = eu-west-1\n"+
		"[dup]\n"+
		"aws_access_key_id = AKIDEXAMPLE00000001\n"+
		"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n")
	got, err := LoadCredentials(good)
	want := []Credentials{
		{"AKIDEXAMPLE00000001", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
		{"AKIDEXAMPLE00000002", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY#x"},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadCredentials = %+v, %v; want %+v", got, err, want)
	}

	empty := write("empty", "# nothing here\n[default]\nregion = us-west-2\n")
	if got, err := LoadCredentials(empty); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("LoadCredentials(no keys) = %#v, %v; want empty slice", got, err)
	}

	for name, content := range map[string]string{
		"no-secret":  "[a]\naws_access_key_id = X\n",
		"no-id":      "[a]\naws_secret_access_key = Y\n",
		"no-section": "aws_access_key_id = X\naws_secret_access_key = Y\n",
		"bad-header": "[a\naws_access_key_id = X\naws_secret_access_key = Y\n",
		"conflict":   "[a]\naws_access_key_id = X\naws_secret_access_key = Y\n[b]\naws_access_key_id = X\naws_secret_access_key = Z\n",
	} {
		if got, err := LoadCredentials(write(name, content)); err == nil {
			t.Errorf("LoadCredentials(%s) = %+v, want error", name, got)
		}
	}
	if _, err := LoadCredentials(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadCredentials(missing file): no error")
	}
}

func TestLoadCredentialsEnv(t *testing.T) {
	t.Setenv(envAccessKeyID, "AKIDENV")
	t.Setenv(envSecretAccessKey, "secret/env")
	got, err := LoadCredentials("")
	if err != nil || !reflect.DeepEqual(got, []Credentials{{"AKIDENV", "secret/env"}}) {
		t.Fatalf("LoadCredentials(env) = %+v, %v", got, err)
	}

	t.Setenv(envSecretAccessKey, "")
	if got, err := LoadCredentials(""); err == nil {
		t.Fatalf("LoadCredentials(only id) = %+v, want error", got)
	}

	t.Setenv(envAccessKeyID, "")
	got, err = LoadCredentials("")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("LoadCredentials(no env) = %#v, %v; want empty slice", got, err)
	}
	if !NewVerifier(got).Open() {
		t.Fatal("no credentials should give an open verifier")
	}
}
