package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLogFormatJSON: `serve --log-format json` writes every log line as
// JSON, a request's line with its id, API, stream, status, error, latency
// and bytes; the line of a PutMedia comes when it ends, with its duration.
// With --metrics-listen, /metrics is served there and not on the API's
// listener.
func TestLogFormatJSON(t *testing.T) {
	p := startServer(t, t.TempDir(), "--log-format", "json", "--metrics-listen", "127.0.0.1:0")
	resp, err := http.Post(p.url+"/describeStream", "application/json", strings.NewReader(`{"StreamName":"missing"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("x-amzn-RequestId")
	clip := loadClip(t)
	apiCall(t, p.url, "createStream", map[string]any{"StreamName": "cam", "DataRetentionInHours": 1}, nil)
	req, _ := http.NewRequest("POST", p.url+"/putMedia", bytes.NewReader(clip.header))
	req.Header.Set("x-amzn-stream-name", "cam")
	req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
	put, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, put.Body)
	put.Body.Close()

	var reqLine, putLine map[string]any
	waitFor(t, "the request log lines", 5*time.Second, func() bool {
		reqLine, putLine = nil, nil
		for line := range strings.Lines(p.log()) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line is not JSON: %v: %q", err, line)
			}
			switch {
			case m["msg"] == "request" && m["request_id"] == id:
				reqLine = m
			case m["msg"] == "request" && m["request_id"] == put.Header.Get("x-amzn-RequestId"):
				putLine = m
			}
		}
		return reqLine != nil && putLine != nil
	})
	for k, v := range map[string]any{"api": "DescribeStream", "stream": "", "status": float64(404), "error": "ResourceNotFoundException",
		"bytes": float64(len(body)), "method": "POST", "path": "/describeStream", "level": "INFO"} {
		if reqLine[k] != v {
			t.Errorf("%s = %v, want %v (%v)", k, reqLine[k], v, reqLine)
		}
	}
	if ms, ok := reqLine["latency_ms"].(float64); !ok || ms <= 0 {
		t.Errorf("latency_ms %v", reqLine["latency_ms"])
	}
	for k, v := range map[string]any{"api": "PutMedia", "stream": "cam", "status": float64(200), "error": "", "fragments": float64(0),
		"bytes_in": float64(len(clip.header))} {
		if putLine[k] != v {
			t.Errorf("PutMedia %s = %v, want %v (%v)", k, putLine[k], v, putLine)
		}
	}
	if ms, ok := putLine["duration_ms"].(float64); !ok || ms <= 0 {
		t.Errorf("PutMedia duration_ms %v", putLine["duration_ms"])
	}

	m := regexp.MustCompile(`"msg":"metrics endpoint","metrics":"([^"]+)"`).FindStringSubmatch(p.log())
	if m == nil {
		t.Fatalf("no metrics endpoint logged:\n%s", p.log())
	}
	resp, err = http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(metrics, []byte(`kvs_requests_total{api="PutMedia",stream="cam"} 1`)) {
		t.Errorf("GET %s: %s\n%s", m[1], resp.Status, metrics)
	}
	resp, err = http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /metrics on the API listener: %s, want 404", resp.Status)
	}
}

// TestLogFormatBad: an unknown --log-format is refused at start.
func TestLogFormatBad(t *testing.T) {
	out, err := exec.Command(kvsgateBinary(t), "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "xml").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--log-format must be text or json") {
		t.Fatalf("--log-format xml: %v: %s", err, out)
	}
}
