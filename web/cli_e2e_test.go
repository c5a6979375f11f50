package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
)

// The tests in this file drive a real kvsgate through the Debian AWS CLI
// (/usr/bin/aws), against an open server and against a SigV4 server.

// cliEnv is a server and the environment the CLI runs with.
type cliEnv struct {
	ts     *testServer
	signed bool
	aws    string
	env    []string
}

func newCLIEnv(t *testing.T, signed bool) *cliEnv {
	t.Helper()
	cli := requireTool(t, "/usr/bin/aws")
	if testing.Short() {
		t.Skip("starts the AWS CLI")
	}
	var creds []Credentials
	if signed {
		creds = []Credentials{e2eCreds}
	}
	return &cliEnv{
		ts: newTestServer(t, creds, fragments.Config{}), signed: signed, aws: cli,
		env: []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + t.TempDir(),
			"AWS_ACCESS_KEY_ID=" + e2eCreds.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY=" + e2eCreds.SecretAccessKey,
			"AWS_DEFAULT_REGION=us-west-2",
			"AWS_CONFIG_FILE=/dev/null",
			"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_MAX_ATTEMPTS=1",
			"AWS_PAGER=",
		},
	}
}

// forEachCLIAuth runs fn against an open and a SigV4 server.
func forEachCLIAuth(t *testing.T, fn func(t *testing.T, c *cliEnv)) {
	for _, signed := range []bool{false, true} {
		t.Run(map[bool]string{false: "open", true: "sigv4"}[signed], func(t *testing.T) { fn(t, newCLIEnv(t, signed)) })
	}
}

// exec runs the CLI and returns its stdout, stderr and exit code.
func (c *cliEnv) exec(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append(args, "--endpoint-url", c.ts.URL, "--output", "json")
	cmd := exec.CommandContext(ctx, c.aws, args...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("aws %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// run runs the CLI, which must succeed, and decodes its JSON output into v
// (unless v is nil).
func (c *cliEnv) run(t *testing.T, v any, args ...string) {
	t.Helper()
	out, errOut, code := c.exec(t, args...)
	if code != 0 {
		t.Fatalf("aws %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	if v == nil {
		return
	}
	reflect.ValueOf(v).Elem().SetZero() // a key absent from the output stays absent
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("aws %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fail runs the CLI, which must fail with a service error (exit 254, the
// CLI v2 code for an error the service answered) naming code.
func (c *cliEnv) fail(t *testing.T, code string, args ...string) {
	t.Helper()
	out, errOut, exit := c.exec(t, args...)
	if exit != 254 || !strings.Contains(errOut, "("+code+")") {
		t.Fatalf("aws %s: exit %d, want 254 and %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), exit, code, out, errOut)
	}
}

// cliTime is a timestamp as the CLI prints it: ISO 8601 (CLI v2's default),
// or epoch seconds.
type cliTime struct{ time.Time }

func (ct *cliTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return fmt.Errorf("timestamp %s", b)
		}
		ct.Time = time.UnixMilli(int64(f*1000 + 0.5))
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	ct.Time = t
	return err
}

type cliStreamInfo struct {
	DeviceName, StreamName, StreamARN, MediaType, KmsKeyId, Version, Status string
	CreationTime                                                            cliTime
	DataRetentionInHours                                                    int
}

func (c *cliEnv) describe(t *testing.T, name string) cliStreamInfo {
	t.Helper()
	var out struct{ StreamInfo cliStreamInfo }
	c.run(t, &out, "kinesisvideo", "describe-stream", "--stream-name", name)
	return out.StreamInfo
}

func TestCLIControlPlane(t *testing.T) {
	forEachCLIAuth(t, func(t *testing.T, c *cliEnv) {
		before := time.Now()
		var created struct{ StreamARN string }
		c.run(t, &created, "kinesisvideo", "create-stream", "--stream-name", "cli-1", "--device-name", "cam-7",
			"--media-type", "video/h264", "--data-retention-in-hours", "24", "--tags", "k1=v1,k2=v2")
		m := reE2EARN.FindStringSubmatch(created.StreamARN)
		if m == nil || m[1] != "cli-1" {
			t.Fatalf("StreamARN %q", created.StreamARN)
		}
		createdMS, _ := strconv.ParseInt(m[2], 10, 64)
		if createdMS < before.UnixMilli() || createdMS > time.Now().UnixMilli() {
			t.Errorf("ARN creation ms %d, created after %v", createdMS, before)
		}
		c.fail(t, "ResourceInUseException", "kinesisvideo", "create-stream", "--stream-name", "cli-1")
		c.fail(t, "InvalidArgumentException", "kinesisvideo", "create-stream", "--stream-name", "bad name")

		si := c.describe(t, "cli-1")
		if si.StreamName != "cli-1" || si.StreamARN != created.StreamARN || si.DeviceName != "cam-7" || si.MediaType != "video/h264" ||
			si.Status != "ACTIVE" || si.DataRetentionInHours != 24 || si.Version == "" ||
			si.KmsKeyId != "arn:aws:kms:us-west-2:000000000000:alias/aws/kinesisvideo" || si.CreationTime.UnixMilli() != createdMS {
			t.Errorf("describe-stream: %+v", si)
		}
		var byARN struct{ StreamInfo cliStreamInfo }
		c.run(t, &byARN, "kinesisvideo", "describe-stream", "--stream-arn", created.StreamARN)
		if byARN.StreamInfo != si {
			t.Errorf("describe-stream by ARN: %+v, by name %+v", byARN.StreamInfo, si)
		}

		for _, n := range []string{"cli-2", "cli-3", "other"} {
			c.run(t, nil, "kinesisvideo", "create-stream", "--stream-name", n)
		}
		type listOut struct {
			StreamInfoList []cliStreamInfo
			NextToken      string
		}
		names := func(l listOut) []string {
			var out []string
			for _, si := range l.StreamInfoList {
				out = append(out, si.StreamName)
			}
			return out
		}
		var l listOut
		c.run(t, &l, "kinesisvideo", "list-streams", "--stream-name-condition", "ComparisonOperator=BEGINS_WITH,ComparisonValue=cli-")
		if got := names(l); !slices.Equal(got, []string{"cli-1", "cli-2", "cli-3"}) || l.NextToken != "" {
			t.Errorf("list-streams BEGINS_WITH cli-: %v, token %q", got, l.NextToken)
		}
		if l.StreamInfoList[0] != si {
			t.Errorf("list-streams entry %+v, describe-stream %+v", l.StreamInfoList[0], si)
		}
		// The CLI pages by one through the server's NextToken.
		c.run(t, &l, "kinesisvideo", "list-streams", "--page-size", "1")
		if got := names(l); !slices.Equal(got, []string{"cli-1", "cli-2", "cli-3", "other"}) {
			t.Errorf("list-streams --page-size 1: %v", got)
		}
		c.run(t, &l, "kinesisvideo", "list-streams", "--page-size", "1", "--max-items", "2",
			"--stream-name-condition", `{"ComparisonOperator":"BEGINS_WITH","ComparisonValue":"cli-"}`)
		if got := names(l); !slices.Equal(got, []string{"cli-1", "cli-2"}) || l.NextToken == "" {
			t.Fatalf("list-streams --max-items 2: %v, token %q", got, l.NextToken)
		}
		c.run(t, &l, "kinesisvideo", "list-streams", "--page-size", "1", "--starting-token", l.NextToken,
			"--stream-name-condition", `{"ComparisonOperator":"BEGINS_WITH","ComparisonValue":"cli-"}`)
		if got := names(l); !slices.Equal(got, []string{"cli-3"}) || l.NextToken != "" {
			t.Errorf("list-streams --starting-token: %v, token %q", got, l.NextToken)
		}
		c.fail(t, "InvalidArgumentException", "kinesisvideo", "list-streams", "--max-results", "10001")

		c.run(t, nil, "kinesisvideo", "update-data-retention", "--stream-name", "cli-1", "--current-version", si.Version,
			"--operation", "INCREASE_DATA_RETENTION", "--data-retention-change-in-hours", "6")
		si2 := c.describe(t, "cli-1")
		if si2.DataRetentionInHours != 30 || si2.Version == si.Version {
			t.Errorf("after +6 h: %+v", si2)
		}
		c.fail(t, "VersionMismatchException", "kinesisvideo", "update-data-retention", "--stream-arn", created.StreamARN,
			"--current-version", si.Version, "--operation", "DECREASE_DATA_RETENTION", "--data-retention-change-in-hours", "1")
		c.fail(t, "InvalidArgumentException", "kinesisvideo", "update-data-retention", "--stream-arn", created.StreamARN,
			"--current-version", si2.Version, "--operation", "DECREASE_DATA_RETENTION", "--data-retention-change-in-hours", "31")
		c.run(t, nil, "kinesisvideo", "update-data-retention", "--stream-arn", created.StreamARN, "--current-version", si2.Version,
			"--operation", "DECREASE_DATA_RETENTION", "--data-retention-change-in-hours", "30")
		if si3 := c.describe(t, "cli-1"); si3.DataRetentionInHours != 0 {
			t.Errorf("after -30 h: %+v", si3)
		}

		for _, api := range []string{"PUT_MEDIA", "LIST_FRAGMENTS", "GET_HLS_STREAMING_SESSION_URL"} {
			var ep struct{ DataEndpoint string }
			c.run(t, &ep, "kinesisvideo", "get-data-endpoint", "--stream-name", "cli-1", "--api-name", api)
			if ep.DataEndpoint != c.ts.URL {
				t.Errorf("get-data-endpoint %s: %q, want %q", api, ep.DataEndpoint, c.ts.URL)
			}
		}

		tags := func() map[string]string {
			var out struct{ Tags map[string]string }
			c.run(t, &out, "kinesisvideo", "list-tags-for-stream", "--stream-name", "cli-1")
			return out.Tags
		}
		if got := tags(); !maps.Equal(got, map[string]string{"k1": "v1", "k2": "v2"}) {
			t.Errorf("tags from create-stream: %v", got)
		}
		c.run(t, nil, "kinesisvideo", "tag-stream", "--stream-arn", created.StreamARN, "--tags", "k3=v3,k1=one")
		if got := tags(); !maps.Equal(got, map[string]string{"k1": "one", "k2": "v2", "k3": "v3"}) {
			t.Errorf("tags after tag-stream: %v", got)
		}
		c.run(t, nil, "kinesisvideo", "untag-stream", "--stream-name", "cli-1", "--tag-key-list", "k2", "k3")
		if got := tags(); !maps.Equal(got, map[string]string{"k1": "one"}) {
			t.Errorf("tags after untag-stream: %v", got)
		}

		c.fail(t, "VersionMismatchException", "kinesisvideo", "delete-stream", "--stream-arn", created.StreamARN, "--current-version", si.Version)
		c.run(t, nil, "kinesisvideo", "delete-stream", "--stream-arn", created.StreamARN)
		c.fail(t, "ResourceNotFoundException", "kinesisvideo", "describe-stream", "--stream-name", "cli-1")
		c.fail(t, "ResourceNotFoundException", "kinesisvideo", "describe-stream", "--stream-arn", created.StreamARN)
		c.fail(t, "ResourceNotFoundException", "kinesisvideo", "delete-stream", "--stream-arn", created.StreamARN)
		c.fail(t, "ResourceNotFoundException", "kinesisvideo", "list-tags-for-stream", "--stream-name", "cli-1")

		// An unsigned request: refused by the SigV4 server only.
		if c.signed {
			c.fail(t, "MissingAuthenticationTokenException", "kinesisvideo", "describe-stream", "--stream-name", "cli-2", "--no-sign-request")
			c.env = append(c.env, "AWS_SECRET_ACCESS_KEY=wrong")
			c.fail(t, "InvalidSignatureException", "kinesisvideo", "describe-stream", "--stream-name", "cli-2")
		} else {
			c.run(t, nil, "kinesisvideo", "describe-stream", "--stream-name", "cli-2", "--no-sign-request")
		}
	})
}

type cliFragment struct {
	FragmentNumber               string
	FragmentSizeInBytes          int64
	FragmentLengthInMilliseconds int64
	ProducerTimestamp            cliTime
	ServerTimestamp              cliTime
}

type cliFragmentsOut struct {
	Fragments []cliFragment
	NextToken string
}

func cliNumbers(fs []cliFragment) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.FragmentNumber)
	}
	return out
}

// selectorJSON is a --fragment-selector argument, times in ISO 8601. (The
// CLI sends whole epoch seconds, whatever fraction it is given.)
func selectorJSON(typ string, start, end time.Time) string {
	const layout = "2006-01-02T15:04:05Z07:00"
	return fmt.Sprintf(`{"FragmentSelectorType":%q,"TimestampRange":{"StartTimestamp":%q,"EndTimestamp":%q}}`,
		typ, start.UTC().Format(layout), end.UTC().Format(layout))
}

func TestCLIListFragments(t *testing.T) {
	forEachCLIAuth(t, func(t *testing.T, c *cliEnv) {
		ingestClip(t, c.ts, c.signed, "clif", 2)
		byServer := indexFragments(t, c.ts, "clif", fragments.ByServer)
		byProducer := indexFragments(t, c.ts, "clif", fragments.ByProducer)
		if len(byServer) != 20 {
			t.Fatalf("%d fragments in the index, want 20", len(byServer))
		}

		// The CLI follows NextToken by itself: pages of 3 give all 20.
		var out cliFragmentsOut
		c.run(t, &out, "kinesis-video-archived-media", "list-fragments", "--stream-name", "clif", "--page-size", "3")
		if !slices.Equal(cliNumbers(out.Fragments), indexNumbers(byServer)) || out.NextToken != "" {
			t.Fatalf("list-fragments --page-size 3: %v, token %q\nwant %v", cliNumbers(out.Fragments), out.NextToken, indexNumbers(byServer))
		}
		for i, f := range out.Fragments {
			x := byServer[i]
			if f.FragmentSizeInBytes != x.Size || f.FragmentLengthInMilliseconds != x.DurationNS/1e6 ||
				!f.ServerTimestamp.Equal(msTime(x.ServerNS)) || !f.ProducerTimestamp.Equal(msTime(x.ProducerNS)) {
				t.Errorf("fragment %d: %+v; index %+v", i, f, x)
			}
		}

		// --max-items stops early with the CLI's own token; --starting-token
		// goes on. Producer-timestamp order over the whole range.
		sel := selectorJSON("PRODUCER_TIMESTAMP", time.Unix(0, 0), time.Now().Add(time.Hour))
		var all []cliFragment
		token := ""
		for calls := 0; ; calls++ {
			if calls > 5 {
				t.Fatal("list-fragments --max-items never ended")
			}
			args := []string{"kinesis-video-archived-media", "list-fragments", "--stream-name", "clif",
				"--fragment-selector", sel, "--page-size", "3", "--max-items", "7"}
			if token != "" {
				args = append(args, "--starting-token", token)
			}
			out = cliFragmentsOut{}
			c.run(t, &out, args...)
			all = append(all, out.Fragments...)
			if out.NextToken == "" {
				break
			}
			if len(out.Fragments) != 7 {
				t.Fatalf("a truncated page of %d fragments, want 7", len(out.Fragments))
			}
			token = out.NextToken
		}
		if !slices.Equal(cliNumbers(all), indexNumbers(byProducer)) {
			t.Errorf("list-fragments by producer timestamp, 7 items at a time: %v\nwant %v", cliNumbers(all), indexNumbers(byProducer))
		}
		if err := seenOnce(cliNumbers(all)); err != nil {
			t.Error(err)
		}

		// Ranges, inclusive at both ends. The CLI sends whole seconds, so
		// the bounds are whole seconds.
		rangeTest := func(typ string, frags []fragments.Fragment, ts func(fragments.Fragment) int64, start, end time.Time, min, max int) {
			t.Helper()
			var want []string
			for _, f := range frags {
				if ms := msTime(ts(f)); !ms.Before(start) && !ms.After(end) {
					want = append(want, strconv.FormatUint(f.Number, 10))
				}
			}
			var out cliFragmentsOut
			c.run(t, &out, "kinesis-video-archived-media", "list-fragments", "--stream-name", "clif",
				"--fragment-selector", selectorJSON(typ, start, end), "--page-size", "2")
			if got := cliNumbers(out.Fragments); !slices.Equal(got, want) || len(want) < min || len(want) > max {
				t.Errorf("%s [%v, %v]: %v, want %v (%d to %d fragments)", typ, start, end, got, want, min, max)
			}
		}
		producerTS := func(f fragments.Fragment) int64 { return f.ProducerNS }
		serverTS := func(f fragments.Fragment) int64 { return f.ServerNS }
		sec := func(ns int64) time.Time { return time.Unix(ns/1e9, 0) }
		// The two copies' fragments are a second apart by producer time.
		rangeTest("PRODUCER_TIMESTAMP", byProducer, producerTS, sec(byProducer[4].ProducerNS), sec(byProducer[15].ProducerNS), 6, 16)
		rangeTest("PRODUCER_TIMESTAMP", byProducer, producerTS, sec(byProducer[0].ProducerNS), sec(byProducer[19].ProducerNS).Add(time.Second), 20, 20)
		// They all arrived within a second or two.
		last := sec(byServer[19].ServerNS)
		rangeTest("SERVER_TIMESTAMP", byServer, serverTS, sec(byServer[0].ServerNS), last.Add(time.Second), 20, 20)
		rangeTest("SERVER_TIMESTAMP", byServer, serverTS, last.Add(time.Second), last.Add(time.Hour), 0, 0)

		c.fail(t, "ResourceNotFoundException", "kinesis-video-archived-media", "list-fragments", "--stream-name", "nope")
		c.fail(t, "InvalidArgumentException", "kinesis-video-archived-media", "list-fragments", "--stream-name", "clif",
			"--fragment-selector", selectorJSON("SERVER_TIMESTAMP", time.Now(), time.Now().Add(-time.Hour)))
		c.run(t, nil, "kinesisvideo", "create-stream", "--stream-name", "live")
		c.fail(t, "NoDataRetentionException", "kinesis-video-archived-media", "list-fragments", "--stream-name", "live")
	})
}
