package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/kvsgate/kvsgate/fragments"
)

// jsonRoutes are the AWS JSON operations kvsgate serves.
var jsonRoutes = []string{
	"/createStream", "/describeStream", "/listStreams", "/deleteStream", "/updateStream",
	"/updateDataRetention", "/getDataEndpoint", "/tagStream", "/untagStream", "/listTagsForStream",
	"/TagResource", "/UntagResource", "/ListTagsForResource", "/listFragments",
}

// checkErrorResponse checks an error response the way the SDKs read it:
// the status, the exception name in the body's __type and in
// x-amzn-ErrorType, a message, and the request id headers.
func checkErrorResponse(t testing.TB, what string, status int, h http.Header, body []byte, wantStatus int, wantType string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d (body %.300s)", what, status, wantStatus, body)
	}
	if got := h.Get("x-amzn-ErrorType"); got != wantType {
		t.Errorf("%s: x-amzn-ErrorType %q, want %q", what, got, wantType)
	}
	if id := h.Get("x-amz-RequestId"); id == "" || h.Get("x-amzn-RequestId") != id {
		t.Errorf("%s: x-amz-RequestId %q, x-amzn-RequestId %q", what, id, h.Get("x-amzn-RequestId"))
	}
	if len(body) == 0 { // HEAD
		return
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-amz-json-1.1") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Type != wantType || e.Message == "" {
		t.Errorf("%s: body %.300s, want __type %s and a message", what, body, wantType)
	}
}

// rawCall sends one request and returns the status, headers and body.
func rawCall(t *testing.T, c *http.Client, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestAPIErrorsRaw(t *testing.T) {
	ts := newTestServer(t, nil, fragments.Config{})
	if _, err := ts.Store.CreateStream(fragments.NewStream{Name: "s", RetentionHours: 1}); err != nil {
		t.Fatal(err)
	}
	c := ts.http.Client()
	huge := append([]byte(`{"StreamName":"s","x":"`), bytes.Repeat([]byte("a"), 1<<20)...)
	huge = append(huge, `"}`...)
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)

	cases := []struct {
		name, method, path, body string
		status                   int
		typ                      string
	}{
		{"malformed JSON", "POST", "/describeStream", `{"StreamName":`, 400, "InvalidArgumentException"},
		{"not an object", "POST", "/describeStream", `["s"]`, 400, "InvalidArgumentException"},
		{"a string", "POST", "/listStreams", `"s"`, 400, "InvalidArgumentException"},
		{"trailing data", "POST", "/describeStream", `{"StreamName":"s"} {}`, 400, "InvalidArgumentException"},
		{"trailing garbage", "POST", "/describeStream", `{"StreamName":"s"}x`, 400, "InvalidArgumentException"},
		{"name is a number", "POST", "/describeStream", `{"StreamName":5}`, 400, "InvalidArgumentException"},
		{"retention is a string", "POST", "/createStream", `{"StreamName":"n","DataRetentionInHours":"x"}`, 400, "InvalidArgumentException"},
		{"retention is a fraction", "POST", "/createStream", `{"StreamName":"n","DataRetentionInHours":1.5}`, 400, "InvalidArgumentException"},
		{"MaxResults overflows", "POST", "/listStreams", `{"MaxResults":99999999999999999999999}`, 400, "InvalidArgumentException"},
		{"MaxResults 1e999", "POST", "/listFragments", `{"StreamName":"s","MaxResults":1e999}`, 400, "InvalidArgumentException"},
		{"tags is a list", "POST", "/tagStream", `{"StreamName":"s","Tags":["a"]}`, 400, "InvalidArgumentException"},
		{"tag value is a number", "POST", "/tagStream", `{"StreamName":"s","Tags":{"a":1}}`, 400, "InvalidArgumentException"},
		{"resource tags is a map", "POST", "/TagResource", `{"ResourceARN":"x","Tags":{"a":"b"}}`, 400, "InvalidArgumentException"},
		{"timestamp is a string", "POST", "/listFragments",
			`{"StreamName":"s","FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":"2024-01-01T00:00:00Z","EndTimestamp":1}}}`,
			400, "InvalidArgumentException"},
		{"timestamp is negative", "POST", "/listFragments",
			`{"StreamName":"s","FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":-1,"EndTimestamp":1}}}`,
			400, "InvalidArgumentException"},
		{"timestamp past 2262", "POST", "/listFragments",
			`{"StreamName":"s","FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":0,"EndTimestamp":1e19}}}`,
			400, "InvalidArgumentException"},
		{"timestamp null", "POST", "/listFragments",
			`{"StreamName":"s","FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":null,"EndTimestamp":1}}}`,
			400, "InvalidArgumentException"},
		{"invalid UTF-8", "POST", "/describeStream", "{\"StreamName\":\"s\xff\"}", 400, "InvalidArgumentException"},
		{"nested too deep", "POST", "/listStreams", deep, 400, "InvalidArgumentException"},
		{"body over 1 MiB", "POST", "/describeStream", string(huge), 400, "InvalidArgumentException"},
		{"empty body", "POST", "/describeStream", "", 400, "InvalidArgumentException"},
		{"empty body, create", "POST", "/createStream", "", 400, "InvalidArgumentException"},
		{"empty object", "POST", "/listFragments", "{}", 400, "InvalidArgumentException"},
		{"unknown stream", "POST", "/describeStream", `{"StreamName":"nope"}`, 404, "ResourceNotFoundException"},
		{"unknown route", "POST", "/describeStreams", `{}`, 404, "UnknownOperationException"},
		{"POST to the console's page", "POST", "/", `{}`, 405, "UnknownOperationException"},
		{"GET on a POST route", "GET", "/describeStream", "", 405, "UnknownOperationException"},
		{"PUT on a POST route", "PUT", "/createStream", `{"StreamName":"n"}`, 405, "UnknownOperationException"},
		{"DELETE on a POST route", "DELETE", "/deleteStream", "", 405, "UnknownOperationException"},
		{"HEAD on a POST route", "HEAD", "/listStreams", "", 405, "UnknownOperationException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			status, h, body := rawCall(t, c, req)
			checkErrorResponse(t, tc.method+" "+tc.path, status, h, body, tc.status, tc.typ)
			if tc.method == "HEAD" && len(body) != 0 {
				t.Errorf("HEAD answered with a body: %q", body)
			}
		})
	}

	// Controls: what the failing cases vary from works.
	for _, body := range []string{"", "{}", "null", " \n"} {
		req, _ := http.NewRequest("POST", ts.URL+"/listStreams", strings.NewReader(body))
		status, h, b := rawCall(t, c, req)
		if status != 200 || h.Get("x-amz-RequestId") == "" || !bytes.Contains(b, []byte(`"StreamName":"s"`)) {
			t.Errorf("listStreams with body %q: %d %s", body, status, b)
		}
	}
	for _, body := range []string{`{"StreamName":"s"}`, `{"StreamName":"s","Unknown":[1,{"x":2}]}`, `{"StreamName":"s","MaxResults":1000}`} {
		req, _ := http.NewRequest("POST", ts.URL+"/listFragments", strings.NewReader(body))
		if status, _, b := rawCall(t, c, req); status != 200 {
			t.Errorf("listFragments with body %s: %d %s", body, status, b)
		}
	}
	// Exactly 1 MiB is accepted.
	exact := append([]byte(`{"StreamName":"s","x":"`), bytes.Repeat([]byte("a"), 1<<20-len(`{"StreamName":"s","x":""}`))...)
	exact = append(exact, `"}`...)
	req, _ := http.NewRequest("POST", ts.URL+"/describeStream", bytes.NewReader(exact))
	if status, _, b := rawCall(t, c, req); status != 200 || len(exact) != 1<<20 {
		t.Errorf("describeStream with a %d-byte body: %d %.200s", len(exact), status, b)
	}

	// The same through the handler directly, where the whole oversized
	// body is certainly sent.
	rec := httptest.NewRecorder()
	ts.Server.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/createStream", bytes.NewReader(huge)))
	checkErrorResponse(t, "recorder: oversized createStream", rec.Code, rec.Header(), rec.Body.Bytes(), 400, "InvalidArgumentException")
}

// signedRequest is a JSON request signed like the SDKs sign it.
func signedRequest(t *testing.T, url, path, body string, c Credentials) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", "us-west-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestAPIErrorsSigned(t *testing.T) {
	ts := newTestServer(t, []Credentials{e2eCreds}, fragments.Config{})
	c := ts.http.Client()
	for _, tc := range []struct {
		name, path, body string
		status           int
		typ              string
	}{
		{"malformed JSON", "/describeStream", `{"StreamName"`, 400, "InvalidArgumentException"},
		{"wrong type", "/createStream", `{"StreamName":5}`, 400, "InvalidArgumentException"},
		{"empty body", "/describeStream", ``, 400, "InvalidArgumentException"},
		{"valid", "/listStreams", `{}`, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := rawCall(t, c, signedRequest(t, ts.URL, tc.path, tc.body, e2eCreds))
			if tc.status == 200 {
				if status != 200 {
					t.Fatalf("signed %s: %d %s", tc.path, status, body)
				}
			} else {
				checkErrorResponse(t, "signed "+tc.name, status, h, body, tc.status, tc.typ)
			}
			// The same body unsigned, or signed with a wrong key, is refused
			// before it is decoded.
			req, _ := http.NewRequest("POST", ts.URL+tc.path, strings.NewReader(tc.body))
			status, h, body = rawCall(t, c, req)
			checkErrorResponse(t, "unsigned "+tc.name, status, h, body, 403, "MissingAuthenticationTokenException")
			status, h, body = rawCall(t, c, signedRequest(t, ts.URL, tc.path, tc.body, Credentials{e2eCreds.AccessKeyID, "wrong"}))
			checkErrorResponse(t, "wrong key "+tc.name, status, h, body, 403, "InvalidSignatureException")
		})
	}
	// A signed request whose body was changed after signing.
	req := signedRequest(t, ts.URL, "/listStreams", `{"MaxResults":5}`, e2eCreds)
	req.Body = io.NopCloser(strings.NewReader(`{"MaxResults":6}`))
	status, h, body := rawCall(t, c, req)
	checkErrorResponse(t, "changed body", status, h, body, 403, "InvalidSignatureException")
}

// fuzzSeedBodies are bodies worth starting from; the corpus in
// testdata/fuzz/FuzzJSONBodies holds more.
var fuzzSeedBodies = []string{
	``, `{}`, `null`, `{"StreamName":"fz"}`, `{"StreamName":5}`, `{"StreamName":"fz","MaxResults":2}`,
	`{"StreamName":"fz","FragmentSelector":{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{"StartTimestamp":0,"EndTimestamp":9.2e9}}}`,
	`{"StreamName":"fz","NextToken":"AQACAP7wxoj7ypXqMYDjmaDoZPqMRA"}`,
	`{"StreamName":"fz","CurrentVersion":"x","Operation":"DECREASE_DATA_RETENTION","DataRetentionChangeInHours":1}`,
	`{"ResourceARN":"arn:aws:kinesisvideo:us-west-2:000000000000:stream/fz/1","Tags":[{"Key":"a","Value":"b"}]}`,
}

// FuzzJSONBodies posts arbitrary bytes to every JSON operation: the answer
// is never a server error, and an error is always a well-formed AWS error.
func FuzzJSONBodies(f *testing.F) {
	ts := newTestServer(f, nil, fragments.Config{})
	ingestClip(f, ts, false, "fz", 1)
	h := ts.Server.Handler()
	for _, b := range fuzzSeedBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, route := range jsonRoutes {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", route, bytes.NewReader(body)))
			if rec.Code >= 500 {
				t.Fatalf("%s %q: %d %s", route, body, rec.Code, rec.Body.Bytes())
			}
			if rec.Code == 200 {
				if !json.Valid(rec.Body.Bytes()) || rec.Header().Get("x-amz-RequestId") == "" {
					t.Fatalf("%s %q: 200 with %q", route, body, rec.Body.Bytes())
				}
				continue
			}
			typ := rec.Header().Get("x-amzn-ErrorType")
			if !strings.HasSuffix(typ, "Exception") {
				t.Fatalf("%s %q: %d, x-amzn-ErrorType %q", route, body, rec.Code, typ)
			}
			checkErrorResponse(t, route, rec.Code, rec.Header(), rec.Body.Bytes(), rec.Code, typ)
		}
	})
}

// FuzzFragmentToken: decodeFragmentToken never panics and rejects with
// InvalidArgumentException; every query round-trips through a token that
// matches the API's token pattern.
func FuzzFragmentToken(f *testing.F) {
	f.Add("", int64(1), int64(0), int64(1), int64(-1), int64(0), false)
	f.Add(encodeFragmentToken(fragments.FragmentQuery{StreamID: 7, By: fragments.ByProducer, From: 1, To: 1 << 62, AfterTS: 5, AfterOrdinal: 3}),
		int64(-1), int64(-9), int64(1<<62), int64(1<<63-1), int64(-1<<63), true)
	f.Add("AQACAP7wxoj7ypXqMYDjmaDo+ZPqMRA", int64(0), int64(0), int64(0), int64(0), int64(0), false)
	f.Add("AQACAP7wxoj7ypXqMYDjmaDo-ZPqMRA", int64(0), int64(0), int64(0), int64(0), int64(0), false)
	f.Add("AQI", int64(0), int64(0), int64(0), int64(0), int64(0), false)
	f.Add("AgA", int64(0), int64(0), int64(0), int64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, tok string, id, from, to, afterTS, afterOrd int64, producer bool) {
		q, err := decodeFragmentToken(tok)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Type != "InvalidArgumentException" || ae.Status != 400 {
				t.Fatalf("decode %q: %v", tok, err)
			}
		} else {
			if q.To < q.From || len(tok) > 4096 || q.By > fragments.ByProducer {
				t.Fatalf("decode %q accepted %+v", tok, q)
			}
			again, err := decodeFragmentToken(encodeFragmentToken(q))
			if err != nil || again != q {
				t.Fatalf("decode %q = %+v; re-encoded and decoded: %+v, %v", tok, q, again, err)
			}
		}

		if to < from {
			from, to = to, from
		}
		by := fragments.ByServer
		if producer {
			by = fragments.ByProducer
		}
		want := fragments.FragmentQuery{StreamID: id, By: by, From: from, To: to, AfterTS: afterTS, AfterOrdinal: afterOrd}
		enc := encodeFragmentToken(want)
		if len(enc) > 4096 || !reListFragmentsToken.MatchString(enc) {
			t.Fatalf("token %q for %+v does not match the API's pattern", enc, want)
		}
		got, err := decodeFragmentToken(enc)
		if err != nil || got != want {
			t.Fatalf("round trip of %+v: %+v, %v", want, got, err)
		}
	})
}
