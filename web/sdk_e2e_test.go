package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/fragments/producer"
)

// The end-to-end tests in this file drive a real kvsgate through the
// unmodified aws-sdk-go-v2 clients, once against an open server and once
// against a server that checks SigV4.

// e2eCreds is the key pair the signing servers accept.
var e2eCreds = Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}

// sdkEnv is one server and the SDK clients pointed at it.
type sdkEnv struct {
	ts     *testServer
	signed bool // the server checks SigV4
	kv     *kinesisvideo.Client
	am     *kinesisvideoarchivedmedia.Client
}

// sdkCredentials returns a provider of static keys, or anonymous ones.
func sdkCredentials(c *Credentials) aws.CredentialsProvider {
	if c == nil {
		return aws.AnonymousCredentials{}
	}
	ac := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Source: "test"}
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return ac, nil })
}

func newKVClient(ts *testServer, creds aws.CredentialsProvider) *kinesisvideo.Client {
	return kinesisvideo.New(kinesisvideo.Options{
		Region:       "us-west-2",
		BaseEndpoint: aws.String(ts.URL),
		Credentials:  creds,
		HTTPClient:   ts.http.Client(),
		Retryer:      aws.NopRetryer{},
	})
}

func newAMClient(ts *testServer, creds aws.CredentialsProvider) *kinesisvideoarchivedmedia.Client {
	return newAMClientAt(ts.URL, ts, creds)
}

// newAMClientAt makes an archived-media client for an endpoint, as a
// GetDataEndpoint caller does.
func newAMClientAt(endpoint string, ts *testServer, creds aws.CredentialsProvider) *kinesisvideoarchivedmedia.Client {
	return kinesisvideoarchivedmedia.New(kinesisvideoarchivedmedia.Options{
		Region:       "us-west-2",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  creds,
		HTTPClient:   ts.http.Client(),
		Retryer:      aws.NopRetryer{},
	})
}

func newSDKEnv(t *testing.T, signed bool) *sdkEnv {
	t.Helper()
	var creds []Credentials
	if signed {
		creds = []Credentials{e2eCreds}
	}
	ts := newTestServer(t, creds, fragments.Config{})
	p := sdkCredentials(&e2eCreds)
	return &sdkEnv{ts: ts, signed: signed, kv: newKVClient(ts, p), am: newAMClient(ts, p)}
}

// forEachAuth runs fn against an open server and against a SigV4 server.
func forEachAuth(t *testing.T, fn func(t *testing.T, e *sdkEnv)) {
	for _, mode := range []struct {
		name   string
		signed bool
	}{{"open", false}, {"sigv4", true}} {
		t.Run(mode.name, func(t *testing.T) { fn(t, newSDKEnv(t, mode.signed)) })
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// result holds a call's two results: try(c.Op(ctx, in)).ok(t) fails the
// test on an error and returns the output.
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) ok(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatalf("unexpected error: %v", r.err)
	}
	return r.v
}

// wantAPIError checks that err is the API error code with the given HTTP
// status, and that the response carried a request id (x-amz-RequestId, and
// x-amzn-RequestId, which the SDK reads, with the same value).
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("error %v, want %s", err, code)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v carries no HTTP response", err)
	}
	if re.HTTPStatusCode() != status {
		t.Errorf("%s: HTTP status %d, want %d", code, re.HTTPStatusCode(), status)
	}
	id := re.Response.Header.Get("x-amz-RequestId")
	if id == "" || re.ServiceRequestID() != id {
		t.Errorf("%s: x-amz-RequestId %q, SDK request id %q; want the same non-empty id", code, id, re.ServiceRequestID())
	}
	if got := re.Response.Header.Get("x-amzn-ErrorType"); got != code {
		t.Errorf("x-amzn-ErrorType %q, want %q", got, code)
	}
}

// wantRequestID checks a successful output's request id.
func wantRequestID(t *testing.T, md middleware.Metadata) {
	t.Helper()
	if id, ok := awsmiddleware.GetRequestIDMetadata(md); !ok || len(id) < 16 {
		t.Errorf("request id %q on a successful response", id)
	}
}

func TestSDKAuth(t *testing.T) {
	for _, signed := range []bool{false, true} {
		t.Run(map[bool]string{false: "open", true: "sigv4"}[signed], func(t *testing.T) {
			e := newSDKEnv(t, signed)
			ctx := testCtx(t)
			try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("auth"), DataRetentionInHours: aws.Int32(1)})).ok(t)

			wrong := sdkCredentials(&Credentials{e2eCreds.AccessKeyID, "wrong-secret"})
			unknown := sdkCredentials(&Credentials{"AKIDUNKNOWN", e2eCreds.SecretAccessKey})
			anon := sdkCredentials(nil)
			cases := []struct {
				name   string
				creds  aws.CredentialsProvider
				code   string
				status int
			}{
				{"wrong secret", wrong, "InvalidSignatureException", 403},
				{"unknown key", unknown, "UnrecognizedClientException", 403},
				{"anonymous", anon, "MissingAuthenticationTokenException", 403},
			}
			for _, tc := range cases {
				kv, am := newKVClient(e.ts, tc.creds), newAMClient(e.ts, tc.creds)
				_, err1 := kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("auth")})
				_, err2 := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("auth-" + strconv.Itoa(len(tc.name)))})
				_, err3 := am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("auth")})
				for i, err := range []error{err1, err2, err3} {
					t.Run(fmt.Sprintf("%s/%d", tc.name, i), func(t *testing.T) {
						if !signed {
							if err != nil {
								t.Fatalf("open server rejected the request: %v", err)
							}
							return
						}
						wantAPIError(t, err, tc.code, tc.status)
					})
				}
			}
			if signed {
				// The rejected CreateStreams created nothing.
				out := try(e.kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{})).ok(t)
				if len(out.StreamInfoList) != 1 {
					t.Fatalf("%d streams after rejected creates, want 1", len(out.StreamInfoList))
				}
			}
		})
	}
}

var (
	reE2EARN = regexp.MustCompile(`^arn:aws:kinesisvideo:us-west-2:000000000000:stream/([a-zA-Z0-9_.\-]+)/([0-9]+)$`)
	// The NextToken patterns of the service models (plain base64).
	reListStreamsToken   = regexp.MustCompile(`^[a-zA-Z0-9+/=]{0,512}$`)
	reListFragmentsToken = regexp.MustCompile(`^[a-zA-Z0-9+/]+={0,2}$`)
)

func TestSDKCreateDescribe(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		before := time.Now()
		out := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{
			StreamName:           aws.String("cam-1.front_door"),
			DeviceName:           aws.String("device-7"),
			MediaType:            aws.String("video/h264,audio/aac"),
			KmsKeyId:             aws.String("arn:aws:kms:us-west-2:000000000000:key/1234"),
			DataRetentionInHours: aws.Int32(48),
			Tags:                 map[string]string{"site": "lab", "floor": "2"},
		})).ok(t)
		after := time.Now()
		wantRequestID(t, out.ResultMetadata)
		arn := aws.ToString(out.StreamARN)
		m := reE2EARN.FindStringSubmatch(arn)
		if m == nil || m[1] != "cam-1.front_door" {
			t.Fatalf("StreamARN %q", arn)
		}
		createdMS, _ := strconv.ParseInt(m[2], 10, 64)
		if createdMS < before.UnixMilli() || createdMS > after.UnixMilli() {
			t.Errorf("ARN creation ms %d outside [%d, %d]", createdMS, before.UnixMilli(), after.UnixMilli())
		}

		_, err := e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-1.front_door")})
		var inUse *kvtypes.ResourceInUseException
		if !errors.As(err, &inUse) {
			t.Fatalf("duplicate CreateStream: %v, want ResourceInUseException", err)
		}
		wantAPIError(t, err, "ResourceInUseException", 400)

		byName := try(e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1.front_door")})).ok(t)
		byARN := try(e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: aws.String(arn)})).ok(t)
		both := try(e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1.front_door"), StreamARN: aws.String(arn)})).ok(t)
		wantRequestID(t, byName.ResultMetadata)
		for _, o := range []*kinesisvideo.DescribeStreamOutput{byName, byARN, both} {
			si := o.StreamInfo
			if si == nil {
				t.Fatal("no StreamInfo")
			}
			if aws.ToString(si.StreamName) != "cam-1.front_door" || aws.ToString(si.StreamARN) != arn ||
				aws.ToString(si.DeviceName) != "device-7" || aws.ToString(si.MediaType) != "video/h264,audio/aac" ||
				aws.ToString(si.KmsKeyId) != "arn:aws:kms:us-west-2:000000000000:key/1234" ||
				aws.ToInt32(si.DataRetentionInHours) != 48 || si.Status != kvtypes.StatusActive || aws.ToString(si.Version) == "" {
				t.Errorf("StreamInfo %+v", *si)
			}
			if si.CreationTime == nil || si.CreationTime.UnixMilli() != createdMS {
				t.Errorf("CreationTime %v, want %d ms (from the ARN)", si.CreationTime, createdMS)
			}
		}
		if aws.ToString(byName.StreamInfo.Version) != aws.ToString(byARN.StreamInfo.Version) {
			t.Errorf("Version differs between two describes: %q, %q", aws.ToString(byName.StreamInfo.Version), aws.ToString(byARN.StreamInfo.Version))
		}

		// Defaults: no retention, the default KMS key, no device or media type.
		minimal := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("minimal")})).ok(t)
		si := try(e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: minimal.StreamARN})).ok(t).StreamInfo
		if aws.ToInt32(si.DataRetentionInHours) != 0 || si.DeviceName != nil || si.MediaType != nil ||
			aws.ToString(si.KmsKeyId) != "arn:aws:kms:us-west-2:000000000000:alias/aws/kinesisvideo" {
			t.Errorf("minimal StreamInfo %+v", *si)
		}
		tags := try(e.kv.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamName: aws.String("cam-1.front_door")})).ok(t)
		if !maps.Equal(tags.Tags, map[string]string{"site": "lab", "floor": "2"}) {
			t.Errorf("tags from CreateStream: %v", tags.Tags)
		}

		for _, in := range []*kinesisvideo.DescribeStreamInput{
			{StreamName: aws.String("nope")},
			{StreamARN: aws.String("arn:aws:kinesisvideo:us-west-2:000000000000:stream/nope/1")},
			// A real ARN with another stream's name.
			{StreamName: aws.String("minimal"), StreamARN: aws.String(arn)},
		} {
			_, err := e.kv.DescribeStream(ctx, in)
			var nf *kvtypes.ResourceNotFoundException
			if !errors.As(err, &nf) {
				t.Fatalf("DescribeStream(%v, %v): %v, want ResourceNotFoundException", aws.ToString(in.StreamName), aws.ToString(in.StreamARN), err)
			}
			wantAPIError(t, err, "ResourceNotFoundException", 404)
		}
	})
}

func TestSDKListStreams(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		var want []string
		for i := range 25 {
			n := fmt.Sprintf("page-%02d", i)
			want = append(want, n)
			try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(n), DataRetentionInHours: aws.Int32(int32(i))})).ok(t)
		}
		for _, n := range []string{"other-1", "pag", "pagf", "Page-00"} {
			try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(n)})).ok(t)
		}

		list := func(prefix string, max int32) (names []string, pages []int) {
			t.Helper()
			var token *string
			for range 100 {
				in := &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(max), NextToken: token}
				if prefix != "" {
					in.StreamNameCondition = &kvtypes.StreamNameCondition{ComparisonOperator: kvtypes.ComparisonOperatorBeginsWith, ComparisonValue: aws.String(prefix)}
				}
				out := try(e.kv.ListStreams(ctx, in)).ok(t)
				pages = append(pages, len(out.StreamInfoList))
				for _, si := range out.StreamInfoList {
					names = append(names, aws.ToString(si.StreamName))
					if si.Status != kvtypes.StatusActive || si.CreationTime == nil || !reE2EARN.MatchString(aws.ToString(si.StreamARN)) {
						t.Errorf("ListStreams entry %+v", si)
					}
					var i int
					if _, err := fmt.Sscanf(aws.ToString(si.StreamName), "page-%d", &i); err == nil && aws.ToInt32(si.DataRetentionInHours) != int32(i) {
						t.Errorf("%s: DataRetentionInHours %d, want %d", aws.ToString(si.StreamName), aws.ToInt32(si.DataRetentionInHours), i)
					}
				}
				if out.NextToken == nil {
					return names, pages
				}
				if !reListStreamsToken.MatchString(*out.NextToken) {
					t.Errorf("ListStreams NextToken %q does not match the model's pattern", *out.NextToken)
				}
				token = out.NextToken
			}
			t.Fatal("ListStreams never ended")
			return nil, nil
		}

		names, pages := list("page-", 7)
		if !slices.Equal(names, want) {
			t.Errorf("BEGINS_WITH page- by 7: %v\nwant %v", names, want)
		}
		if !slices.Equal(pages, []int{7, 7, 7, 4}) {
			t.Errorf("page sizes %v, want [7 7 7 4]", pages)
		}
		// An exact multiple: the last full page has no token.
		if names, pages = list("page-", 5); !slices.Equal(names, want) || !slices.Equal(pages, []int{5, 5, 5, 5, 5}) {
			t.Errorf("BEGINS_WITH page- by 5: %v, pages %v", names, pages)
		}
		if names, _ = list("page-1", 3); !slices.Equal(names, want[10:20]) {
			t.Errorf("BEGINS_WITH page-1: %v", names)
		}
		if names, _ = list("zzz", 3); len(names) != 0 {
			t.Errorf("BEGINS_WITH zzz: %v", names)
		}
		all := append([]string{"Page-00", "other-1", "pag", "pagf"}, want...)
		slices.Sort(all)
		if names, pages = list("", 1); !slices.Equal(names, all) || len(pages) != len(all) {
			t.Errorf("all streams one by one: %v (pages %v)\nwant %v", names, pages, all)
		}

		// No MaxResults: everything in one page.
		out := try(e.kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{})).ok(t)
		if len(out.StreamInfoList) != len(all) || out.NextToken != nil {
			t.Errorf("ListStreams without MaxResults: %d streams, token %v", len(out.StreamInfoList), out.NextToken)
		}

		// The SDK's paginator walks the same pages.
		var got []string
		pg := kinesisvideo.NewListStreamsPaginator(e.kv, &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(4),
			StreamNameCondition: &kvtypes.StreamNameCondition{ComparisonOperator: kvtypes.ComparisonOperatorBeginsWith, ComparisonValue: aws.String("page-")}})
		for pg.HasMorePages() {
			p := try(pg.NextPage(ctx)).ok(t)
			for _, si := range p.StreamInfoList {
				got = append(got, aws.ToString(si.StreamName))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("paginator: %v", got)
		}

		for _, in := range []*kinesisvideo.ListStreamsInput{
			{MaxResults: aws.Int32(0)},
			{MaxResults: aws.Int32(10001)},
			{MaxResults: aws.Int32(-1)},
			{NextToken: aws.String("***")},
			{StreamNameCondition: &kvtypes.StreamNameCondition{ComparisonOperator: "ENDS_WITH", ComparisonValue: aws.String("x")}},
			{StreamNameCondition: &kvtypes.StreamNameCondition{ComparisonOperator: kvtypes.ComparisonOperatorBeginsWith, ComparisonValue: aws.String("bad name")}},
		} {
			_, err := e.kv.ListStreams(ctx, in)
			wantAPIError(t, err, "InvalidArgumentException", 400)
		}
	})
}

func describe(t *testing.T, e *sdkEnv, name string) *kvtypes.StreamInfo {
	t.Helper()
	return try(e.kv.DescribeStream(testCtx(t), &kinesisvideo.DescribeStreamInput{StreamName: aws.String(name)})).ok(t).StreamInfo
}

func TestSDKUpdateStream(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		arn := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("u"), DeviceName: aws.String("d0"), MediaType: aws.String("video/h264")})).ok(t).StreamARN
		v0 := aws.ToString(describe(t, e, "u").Version)

		try(e.kv.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("u"), CurrentVersion: aws.String(v0), DeviceName: aws.String("d1")})).ok(t)
		si := describe(t, e, "u")
		v1 := aws.ToString(si.Version)
		if v1 == v0 || v1 == "" || aws.ToString(si.DeviceName) != "d1" || aws.ToString(si.MediaType) != "video/h264" {
			t.Fatalf("after UpdateStream(DeviceName): %+v (old version %s)", *si, v0)
		}

		// The stale version fails and changes nothing.
		_, err := e.kv.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("u"), CurrentVersion: aws.String(v0), MediaType: aws.String("video/h265")})
		var vm *kvtypes.VersionMismatchException
		if !errors.As(err, &vm) {
			t.Fatalf("UpdateStream with a stale version: %v", err)
		}
		wantAPIError(t, err, "VersionMismatchException", 400)
		if si := describe(t, e, "u"); aws.ToString(si.Version) != v1 || aws.ToString(si.MediaType) != "video/h264" {
			t.Fatalf("a rejected update changed the stream: %+v", *si)
		}

		try(e.kv.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamARN: arn, CurrentVersion: aws.String(v1), MediaType: aws.String("video/h265")})).ok(t)
		si = describe(t, e, "u")
		if v := aws.ToString(si.Version); v == v1 || v == v0 || aws.ToString(si.MediaType) != "video/h265" || aws.ToString(si.DeviceName) != "d1" {
			t.Fatalf("after UpdateStream(MediaType) by ARN: %+v", *si)
		}

		for _, in := range []*kinesisvideo.UpdateStreamInput{
			{StreamName: aws.String("u"), CurrentVersion: aws.String("")},
			{StreamName: aws.String("u"), CurrentVersion: si.Version, MediaType: aws.String("not a media type")},
			{StreamName: aws.String("u"), CurrentVersion: si.Version, DeviceName: aws.String("bad device")},
		} {
			_, err := e.kv.UpdateStream(ctx, in)
			wantAPIError(t, err, "InvalidArgumentException", 400)
		}
		_, err = e.kv.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("gone"), CurrentVersion: aws.String("x")})
		wantAPIError(t, err, "ResourceNotFoundException", 404)
	})
}

func TestSDKUpdateDataRetention(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		arn := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("r"), DataRetentionInHours: aws.Int32(24)})).ok(t).StreamARN
		update := func(op kvtypes.UpdateDataRetentionOperation, hours int32, version *string, byARN bool) error {
			in := &kinesisvideo.UpdateDataRetentionInput{Operation: op, DataRetentionChangeInHours: aws.Int32(hours), CurrentVersion: version}
			if byARN {
				in.StreamARN = arn
			} else {
				in.StreamName = aws.String("r")
			}
			_, err := e.kv.UpdateDataRetention(ctx, in)
			return err
		}
		si := describe(t, e, "r")
		if err := update(kvtypes.UpdateDataRetentionOperationIncreaseDataRetention, 6, si.Version, false); err != nil {
			t.Fatal(err)
		}
		si2 := describe(t, e, "r")
		if aws.ToInt32(si2.DataRetentionInHours) != 30 || aws.ToString(si2.Version) == aws.ToString(si.Version) {
			t.Fatalf("after +6: %d hours, version %s (was %s)", aws.ToInt32(si2.DataRetentionInHours), aws.ToString(si2.Version), aws.ToString(si.Version))
		}
		err := update(kvtypes.UpdateDataRetentionOperationDecreaseDataRetention, 1, si.Version, false)
		wantAPIError(t, err, "VersionMismatchException", 400)

		if err := update(kvtypes.UpdateDataRetentionOperationDecreaseDataRetention, 10, si2.Version, true); err != nil {
			t.Fatal(err)
		}
		si3 := describe(t, e, "r")
		if aws.ToInt32(si3.DataRetentionInHours) != 20 {
			t.Fatalf("after -10: %d hours", aws.ToInt32(si3.DataRetentionInHours))
		}
		// Below zero fails and changes nothing; down to exactly zero works.
		err = update(kvtypes.UpdateDataRetentionOperationDecreaseDataRetention, 21, si3.Version, false)
		wantAPIError(t, err, "InvalidArgumentException", 400)
		if si := describe(t, e, "r"); aws.ToInt32(si.DataRetentionInHours) != 20 || aws.ToString(si.Version) != aws.ToString(si3.Version) {
			t.Fatalf("a rejected decrease changed the stream: %+v", *si)
		}
		if err := update(kvtypes.UpdateDataRetentionOperationDecreaseDataRetention, 20, si3.Version, false); err != nil {
			t.Fatal(err)
		}
		si4 := describe(t, e, "r")
		if aws.ToInt32(si4.DataRetentionInHours) != 0 {
			t.Fatalf("after -20: %d hours", aws.ToInt32(si4.DataRetentionInHours))
		}
		for _, tc := range []struct {
			op    kvtypes.UpdateDataRetentionOperation
			hours int32
		}{{kvtypes.UpdateDataRetentionOperationDecreaseDataRetention, 1}, {"SET", 1},
			{kvtypes.UpdateDataRetentionOperationIncreaseDataRetention, 0},
			{kvtypes.UpdateDataRetentionOperationIncreaseDataRetention, 87601}} {
			wantAPIError(t, update(tc.op, tc.hours, si4.Version, false), "InvalidArgumentException", 400)
		}
		wantAPIError(t, update(kvtypes.UpdateDataRetentionOperationIncreaseDataRetention, 1, aws.String(""), false), "InvalidArgumentException", 400)
		_, err = e.kv.UpdateDataRetention(ctx, &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("gone"), CurrentVersion: aws.String("x"),
			Operation: kvtypes.UpdateDataRetentionOperationIncreaseDataRetention, DataRetentionChangeInHours: aws.Int32(1)})
		wantAPIError(t, err, "ResourceNotFoundException", 404)
	})
}

func TestSDKDeleteStream(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		a := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("del-a")})).ok(t).StreamARN
		b := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("del-b")})).ok(t).StreamARN
		keep := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("keep")})).ok(t).StreamARN

		try(e.kv.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: a})).ok(t)

		vb := describe(t, e, "del-b").Version
		_, err := e.kv.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: b, CurrentVersion: aws.String("stale")})
		wantAPIError(t, err, "VersionMismatchException", 400)
		describe(t, e, "del-b") // still there
		try(e.kv.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: b, CurrentVersion: vb})).ok(t)

		for _, n := range []string{"del-a", "del-b"} {
			_, err := e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String(n)})
			var nf *kvtypes.ResourceNotFoundException
			if !errors.As(err, &nf) {
				t.Fatalf("DescribeStream(%s) after delete: %v", n, err)
			}
		}
		_, err = e.kv.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: a})
		wantAPIError(t, err, "ResourceNotFoundException", 404)
		out := try(e.kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{})).ok(t)
		if len(out.StreamInfoList) != 1 || aws.ToString(out.StreamInfoList[0].StreamARN) != aws.ToString(keep) {
			t.Fatalf("streams after deletes: %+v", out.StreamInfoList)
		}
		// The name can be used again.
		again := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("del-a")})).ok(t).StreamARN
		if si := describe(t, e, "del-a"); aws.ToString(si.StreamARN) != aws.ToString(again) || si.Status != kvtypes.StatusActive {
			t.Fatalf("re-created stream: %+v", *si)
		}
		_, err = e.kv.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String("not-an-arn")})
		wantAPIError(t, err, "InvalidArgumentException", 400)
	})
}

func TestSDKGetDataEndpoint(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		arn := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("ep")})).ok(t).StreamARN
		names := kvtypes.APIName("").Values()
		for _, n := range []string{"PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
			"GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES"} {
			if !slices.Contains(names, kvtypes.APIName(n)) {
				t.Errorf("the SDK has no APIName %s", n)
			}
		}
		for _, api := range names {
			for _, in := range []*kinesisvideo.GetDataEndpointInput{{APIName: api, StreamName: aws.String("ep")}, {APIName: api, StreamARN: arn}} {
				out, err := e.kv.GetDataEndpoint(ctx, in)
				if err != nil {
					t.Fatalf("GetDataEndpoint(%s): %v", api, err)
				}
				if aws.ToString(out.DataEndpoint) != e.ts.URL {
					t.Errorf("GetDataEndpoint(%s) = %q, want %q", api, aws.ToString(out.DataEndpoint), e.ts.URL)
				}
			}
		}
		_, err := e.kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{APIName: "GET_EVERYTHING", StreamName: aws.String("ep")})
		wantAPIError(t, err, "InvalidArgumentException", 400)
		_, err = e.kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{APIName: kvtypes.APINameGetMedia, StreamName: aws.String("nope")})
		wantAPIError(t, err, "ResourceNotFoundException", 404)
		_, err = e.kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{APIName: kvtypes.APINameGetMedia})
		wantAPIError(t, err, "InvalidArgumentException", 400)

		// The endpoint it returns is one the archived-media client can use.
		ep := try(e.kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{APIName: kvtypes.APINameListFragments, StreamARN: arn})).ok(t).DataEndpoint
		am := newAMClientAt(aws.ToString(ep), e.ts, sdkCredentials(&e2eCreds))
		// The stream keeps no data. (The SDK's ListFragments does not model
		// NoDataRetentionException, so it is a generic API error there.)
		_, err = am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamARN: arn})
		wantAPIError(t, err, "NoDataRetentionException", 400)
	})
}

func TestSDKTags(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		arn := try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("tags"), Tags: map[string]string{"a": "1"}})).ok(t).StreamARN
		wantTags := func(want map[string]string) {
			t.Helper()
			for i, got := range []map[string]string{
				try(e.kv.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamName: aws.String("tags")})).ok(t).Tags,
				try(e.kv.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamARN: arn})).ok(t).Tags,
				try(e.kv.ListTagsForResource(ctx, &kinesisvideo.ListTagsForResourceInput{ResourceARN: arn})).ok(t).Tags,
			} {
				if !maps.Equal(got, want) {
					t.Fatalf("tags (way %d) %v, want %v", i, got, want)
				}
			}
		}
		wantTags(map[string]string{"a": "1"})
		try(e.kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("tags"), Tags: map[string]string{"b": "2", "c": "3"}})).ok(t)
		wantTags(map[string]string{"a": "1", "b": "2", "c": "3"})
		// TagStream by ARN overwrites a value.
		try(e.kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamARN: arn, Tags: map[string]string{"a": "one"}})).ok(t)
		wantTags(map[string]string{"a": "one", "b": "2", "c": "3"})
		try(e.kv.UntagStream(ctx, &kinesisvideo.UntagStreamInput{StreamName: aws.String("tags"), TagKeyList: []string{"a", "missing"}})).ok(t)
		wantTags(map[string]string{"b": "2", "c": "3"})
		try(e.kv.UntagStream(ctx, &kinesisvideo.UntagStreamInput{StreamARN: arn, TagKeyList: []string{"b"}})).ok(t)
		wantTags(map[string]string{"c": "3"})

		// The resource variants.
		try(e.kv.TagResource(ctx, &kinesisvideo.TagResourceInput{ResourceARN: arn, Tags: []kvtypes.Tag{
			{Key: aws.String("d"), Value: aws.String("4")}, {Key: aws.String("c"), Value: aws.String("three")}}})).ok(t)
		wantTags(map[string]string{"c": "three", "d": "4"})
		try(e.kv.UntagResource(ctx, &kinesisvideo.UntagResourceInput{ResourceARN: arn, TagKeyList: []string{"c"}})).ok(t)
		wantTags(map[string]string{"d": "4"})

		// At most 50 tags, counting the ones already there; a rejected
		// TagStream changes nothing.
		many := map[string]string{}
		for i := range 49 {
			many[fmt.Sprintf("k%02d", i)] = strconv.Itoa(i)
		}
		try(e.kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("tags"), Tags: many})).ok(t)
		fifty := maps.Clone(many)
		fifty["d"] = "4"
		wantTags(fifty)
		_, err := e.kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("tags"), Tags: map[string]string{"x": "51"}})
		var tl *kvtypes.TagsPerResourceExceededLimitException
		if !errors.As(err, &tl) {
			t.Fatalf("51st tag: %v", err)
		}
		wantAPIError(t, err, "TagsPerResourceExceededLimitException", 400)
		_, err = e.kv.TagResource(ctx, &kinesisvideo.TagResourceInput{ResourceARN: arn, Tags: []kvtypes.Tag{{Key: aws.String("x"), Value: aws.String("51")}}})
		wantAPIError(t, err, "TagsPerResourceExceededLimitException", 400)
		wantTags(fifty)
		// Overwriting an existing key is not a new tag.
		try(e.kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("tags"), Tags: map[string]string{"d": "four"}})).ok(t)
		fifty["d"] = "four"
		wantTags(fifty)

		fiftyOne := maps.Clone(fifty)
		fiftyOne["x"] = "51"
		_, err = e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("tags2"), Tags: fiftyOne})
		wantAPIError(t, err, "TagsPerResourceExceededLimitException", 400)
		_, err = e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("tags2")})
		wantAPIError(t, err, "ResourceNotFoundException", 404)

		// Invalid requests, on a stream with room for more tags.
		try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("tags3")})).ok(t)
		for _, err := range []error{
			func() error {
				_, err := e.kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("tags3"), Tags: map[string]string{}})
				return err
			}(),
			func() error {
				_, err := e.kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("tags3"), Tags: map[string]string{"": "v"}})
				return err
			}(),
			func() error {
				_, err := e.kv.UntagStream(ctx, &kinesisvideo.UntagStreamInput{StreamName: aws.String("tags3"), TagKeyList: []string{}})
				return err
			}(),
			func() error {
				_, err := e.kv.ListTagsForResource(ctx, &kinesisvideo.ListTagsForResourceInput{ResourceARN: aws.String("arn:aws:s3:::bucket")})
				return err
			}(),
		} {
			wantAPIError(t, err, "InvalidArgumentException", 400)
		}
		_, err = e.kv.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamName: aws.String("gone")})
		wantAPIError(t, err, "ResourceNotFoundException", 404)
		_, err = e.kv.TagResource(ctx, &kinesisvideo.TagResourceInput{ResourceARN: aws.String("arn:aws:kinesisvideo:us-west-2:000000000000:stream/gone/1"),
			Tags: []kvtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
		wantAPIError(t, err, "ResourceNotFoundException", 404)
	})
}

func TestSDKValidation(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("v"), DataRetentionInHours: aws.Int32(1)})).ok(t)
		long := string(bytes.Repeat([]byte("n"), 257))
		calls := map[string]func() error{
			"create: space in name": func() error {
				_, err := e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("bad name")})
				return err
			},
			"create: 257 characters": func() error {
				_, err := e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(long)})
				return err
			},
			"create: empty name": func() error {
				_, err := e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("")})
				return err
			},
			"create: retention -1": func() error {
				_, err := e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("x"), DataRetentionInHours: aws.Int32(-1)})
				return err
			},
			"create: retention 87601": func() error {
				_, err := e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("x"), DataRetentionInHours: aws.Int32(87601)})
				return err
			},
			"create: media type": func() error {
				_, err := e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("x"), MediaType: aws.String("h264")})
				return err
			},
			"create: device name": func() error {
				_, err := e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("x"), DeviceName: aws.String("a/b")})
				return err
			},
			"describe: bad name": func() error {
				_, err := e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("v/../v")})
				return err
			},
			"describe: bad ARN": func() error {
				_, err := e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: aws.String("arn:aws:s3:::v")})
				return err
			},
			"describe: neither": func() error {
				_, err := e.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{})
				return err
			},
			"list streams: MaxResults 0": func() error {
				_, err := e.kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(0)})
				return err
			},
			"list streams: MaxResults 10001": func() error {
				_, err := e.kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(10001)})
				return err
			},
			"list fragments: MaxResults 0": func() error {
				_, err := e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("v"), MaxResults: aws.Int64(0)})
				return err
			},
			"list fragments: MaxResults 1001": func() error {
				_, err := e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("v"), MaxResults: aws.Int64(1001)})
				return err
			},
			"list fragments: bad name": func() error {
				_, err := e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("v v")})
				return err
			},
		}
		for _, name := range slices.Sorted(maps.Keys(calls)) {
			t.Run(name, func(t *testing.T) { wantAPIError(t, calls[name](), "InvalidArgumentException", 400) })
		}
		// The two valid extremes of MaxResults.
		try(e.kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(10000)})).ok(t)
		try(e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("v"), MaxResults: aws.Int64(1000)})).ok(t)
		try(e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("v"), MaxResults: aws.Int64(1)})).ok(t)
		// A 256-character name is valid.
		try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(long[:256])})).ok(t)
		if out := try(e.kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{})).ok(t); len(out.StreamInfoList) != 2 {
			t.Fatalf("%d streams, want 2 (no invalid CreateStream may create one)", len(out.StreamInfoList))
		}
	})
}

// seenOnce reports a name listed twice.
func seenOnce(names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return fmt.Errorf("%s listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// ingestClip puts the demo clip copies times into a stream (created with
// 24 h retention) and returns the time span around the puts.
func ingestClip(t testing.TB, ts *testServer, signed bool, stream string, copies int) (from, to time.Time) {
	t.Helper()
	clip, err := os.ReadFile(filepath.Join(testRepo, "cmd/kvsgate/demo/sample.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	o := producer.Options{Endpoint: ts.URL, Stream: stream, Create: true, Client: ts.http.Client()}
	if signed {
		o.Credentials = &aws.Credentials{AccessKeyID: e2eCreds.AccessKeyID, SecretAccessKey: e2eCreds.SecretAccessKey}
	}
	from = time.Now()
	for range copies {
		stats, err := producer.Put(testCtx(t), bytes.NewReader(clip), o)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Acks["PERSISTED"] != 10 {
			t.Fatalf("acks %v, want 10 PERSISTED", stats.Acks)
		}
	}
	return from, time.Now()
}

// indexFragments reads a stream's fragments from the index, in the order
// of the selector.
func indexFragments(t *testing.T, ts *testServer, stream string, by fragments.Selector) []fragments.Fragment {
	t.Helper()
	st, err := ts.Store.Stream(stream, "")
	if err != nil {
		t.Fatal(err)
	}
	frags, err := ts.Store.Index.Fragments(fragments.FragmentQuery{StreamID: st.ID, By: by, To: 1 << 62, AfterTS: -1, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return frags
}

// msTime is a unix-ns index time as the API shows it: milliseconds.
func msTime(ns int64) time.Time { return time.UnixMilli(ns / 1e6) }

// listAll lists fragments page by page; it returns them and the page sizes.
func listAll(t *testing.T, am *kinesisvideoarchivedmedia.Client, in kinesisvideoarchivedmedia.ListFragmentsInput) ([]amtypes.Fragment, []int) {
	t.Helper()
	var all []amtypes.Fragment
	var pages []int
	for range 1000 {
		out := try(am.ListFragments(testCtx(t), &in)).ok(t)
		all = append(all, out.Fragments...)
		pages = append(pages, len(out.Fragments))
		if out.NextToken == nil {
			return all, pages
		}
		if len(*out.NextToken) > 4096 || !reListFragmentsToken.MatchString(*out.NextToken) {
			t.Errorf("ListFragments NextToken %q does not match the model's pattern", *out.NextToken)
		}
		in.NextToken = out.NextToken
		in.FragmentSelector = nil
	}
	t.Fatal("ListFragments never ended")
	return nil, nil
}

func fragmentNumbers(fs []amtypes.Fragment) []string {
	var out []string
	for _, f := range fs {
		out = append(out, aws.ToString(f.FragmentNumber))
	}
	return out
}

func indexNumbers(fs []fragments.Fragment) []string {
	var out []string
	for _, f := range fs {
		out = append(out, strconv.FormatUint(f.Number, 10))
	}
	return out
}

func TestSDKListFragments(t *testing.T) {
	forEachAuth(t, func(t *testing.T, e *sdkEnv) {
		ctx := testCtx(t)
		const copies = 2
		from, to := ingestClip(t, e.ts, e.signed, "frag", copies)
		byServer := indexFragments(t, e.ts, "frag", fragments.ByServer)
		byProducer := indexFragments(t, e.ts, "frag", fragments.ByProducer)
		if len(byServer) != 10*copies || len(byProducer) != 10*copies {
			t.Fatalf("index holds %d/%d fragments, want %d", len(byServer), len(byProducer), 10*copies)
		}

		// Everything in one call, without a selector: server-timestamp order,
		// every field as the index has it.
		out := try(e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag")})).ok(t)
		wantRequestID(t, out.ResultMetadata)
		if out.NextToken != nil || len(out.Fragments) != len(byServer) {
			t.Fatalf("%d fragments, token %v; want %d, none", len(out.Fragments), out.NextToken, len(byServer))
		}
		for i, f := range out.Fragments {
			x := byServer[i]
			if aws.ToString(f.FragmentNumber) != strconv.FormatUint(x.Number, 10) ||
				f.FragmentSizeInBytes != x.Size || f.FragmentLengthInMilliseconds != x.DurationNS/1e6 ||
				f.ServerTimestamp == nil || !f.ServerTimestamp.Equal(msTime(x.ServerNS)) ||
				f.ProducerTimestamp == nil || !f.ProducerTimestamp.Equal(msTime(x.ProducerNS)) {
				t.Errorf("fragment %d: %s size %d len %d server %v producer %v; index %+v",
					i, aws.ToString(f.FragmentNumber), f.FragmentSizeInBytes, f.FragmentLengthInMilliseconds, f.ServerTimestamp, f.ProducerTimestamp, x)
			}
			// Facts independent of the index: one-second clusters of the
			// demo clip, timestamps around the ingest.
			// (A fragment's audio starts a little before its key frame, so
			// fragments last a bit more than a second.)
			if f.FragmentSizeInBytes < 1000 || f.FragmentLengthInMilliseconds < 900 || f.FragmentLengthInMilliseconds > 1200 {
				t.Errorf("fragment %d: size %d, length %d ms", i, f.FragmentSizeInBytes, f.FragmentLengthInMilliseconds)
			}
			if st := *f.ServerTimestamp; st.Before(from.Truncate(time.Millisecond)) || st.After(to) {
				t.Errorf("fragment %d: server timestamp %v outside the ingest [%v, %v]", i, st, from, to)
			}
			// The producer start timestamp is taken at each put; AAC priming
			// puts the first audio frame some 20 ms before it.
			if pt := *f.ProducerTimestamp; pt.Before(from.Add(-100*time.Millisecond)) || pt.After(to.Add(11*time.Second)) {
				t.Errorf("fragment %d: producer timestamp %v outside [%v - 100 ms, %v + 11 s]", i, pt, from, to)
			}
			if i%10 > 0 {
				// The clip's clusters start a second apart.
				gap := f.ProducerTimestamp.Sub(*out.Fragments[i-1].ProducerTimestamp)
				if gap < 900*time.Millisecond || gap > 1100*time.Millisecond {
					t.Errorf("fragment %d: %v after the previous one", i, gap)
				}
			}
			if i > 0 {
				prevN, _ := strconv.ParseUint(aws.ToString(out.Fragments[i-1].FragmentNumber), 10, 64)
				n, err := strconv.ParseUint(aws.ToString(f.FragmentNumber), 10, 64)
				if err != nil || n <= prevN || f.ServerTimestamp.Before(*out.Fragments[i-1].ServerTimestamp) {
					t.Errorf("fragment %d (%s) not after fragment %d", i, aws.ToString(f.FragmentNumber), i-1)
				}
			}
		}

		// Paging, both selectors, every fragment exactly once and in order.
		everything := &amtypes.TimestampRange{StartTimestamp: aws.Time(time.Unix(0, 0)), EndTimestamp: aws.Time(time.Now().Add(time.Hour))}
		for _, sel := range []struct {
			typ  amtypes.FragmentSelectorType
			want []fragments.Fragment
		}{{amtypes.FragmentSelectorTypeServerTimestamp, byServer}, {amtypes.FragmentSelectorTypeProducerTimestamp, byProducer}} {
			for _, max := range []int64{1, 3, 5, 7, 19, 20, 21} {
				got, pages := listAll(t, e.am, kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag"), MaxResults: aws.Int64(max),
					FragmentSelector: &amtypes.FragmentSelector{FragmentSelectorType: sel.typ, TimestampRange: everything}})
				if !slices.Equal(fragmentNumbers(got), indexNumbers(sel.want)) {
					t.Errorf("%s by %d: %v\nwant %v", sel.typ, max, fragmentNumbers(got), indexNumbers(sel.want))
				}
				if err := seenOnce(fragmentNumbers(got)); err != nil {
					t.Errorf("%s by %d: %v", sel.typ, max, err)
				}
				wantPages := int((int64(len(sel.want)) + max - 1) / max)
				if len(pages) != wantPages {
					t.Errorf("%s by %d: pages %v, want %d", sel.typ, max, pages, wantPages)
				}
			}
		}
		// Without a selector too.
		if got, _ := listAll(t, e.am, kinesisvideoarchivedmedia.ListFragmentsInput{StreamARN: describe(t, e, "frag").StreamARN, MaxResults: aws.Int64(6)}); !slices.Equal(fragmentNumbers(got), indexNumbers(byServer)) {
			t.Errorf("by 6 without a selector: %v", fragmentNumbers(got))
		}

		// Ranges: bounds are inclusive, at the millisecond the API shows.
		for _, sel := range []struct {
			typ amtypes.FragmentSelectorType
			ts  func(f amtypes.Fragment) time.Time
		}{
			{amtypes.FragmentSelectorTypeServerTimestamp, func(f amtypes.Fragment) time.Time { return *f.ServerTimestamp }},
			{amtypes.FragmentSelectorTypeProducerTimestamp, func(f amtypes.Fragment) time.Time { return *f.ProducerTimestamp }},
		} {
			all := out.Fragments
			for _, r := range [][2]int{{0, 0}, {3, 3}, {3, 7}, {0, 19}, {12, 19}, {19, 19}, {5, 14}} {
				start, end := sel.ts(all[r[0]]), sel.ts(all[r[1]])
				if end.Before(start) {
					start, end = end, start
				}
				var want []string
				for _, f := range all {
					if ts := sel.ts(f); !ts.Before(start) && !ts.After(end) {
						want = append(want, aws.ToString(f.FragmentNumber))
					}
				}
				got, _ := listAll(t, e.am, kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag"), MaxResults: aws.Int64(4),
					FragmentSelector: &amtypes.FragmentSelector{FragmentSelectorType: sel.typ,
						TimestampRange: &amtypes.TimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(end)}}})
				gotN := fragmentNumbers(got)
				slices.Sort(gotN)
				slices.Sort(want)
				if !slices.Equal(gotN, want) || len(want) == 0 {
					t.Errorf("%s [%v, %v] (fragments %d..%d): %v, want %v", sel.typ, start, end, r[0], r[1], gotN, want)
				}
			}
			// Just after the last fragment, and before the first: nothing.
			last := slices.MaxFunc(all, func(a, b amtypes.Fragment) int { return sel.ts(a).Compare(sel.ts(b)) })
			first := slices.MinFunc(all, func(a, b amtypes.Fragment) int { return sel.ts(a).Compare(sel.ts(b)) })
			for _, tr := range []*amtypes.TimestampRange{
				{StartTimestamp: aws.Time(sel.ts(last).Add(time.Millisecond)), EndTimestamp: aws.Time(sel.ts(last).Add(time.Hour))},
				{StartTimestamp: aws.Time(sel.ts(first).Add(-time.Hour)), EndTimestamp: aws.Time(sel.ts(first).Add(-time.Millisecond))},
			} {
				o := try(e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag"),
					FragmentSelector: &amtypes.FragmentSelector{FragmentSelectorType: sel.typ, TimestampRange: tr}})).ok(t)
				if len(o.Fragments) != 0 || o.NextToken != nil || o.Fragments == nil {
					t.Errorf("%s [%v, %v]: %v, token %v; want an empty list", sel.typ, tr.StartTimestamp, tr.EndTimestamp, fragmentNumbers(o.Fragments), o.NextToken)
				}
			}
		}

		// Errors.
		_, err := e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag"),
			FragmentSelector: &amtypes.FragmentSelector{FragmentSelectorType: amtypes.FragmentSelectorTypeServerTimestamp,
				TimestampRange: &amtypes.TimestampRange{StartTimestamp: aws.Time(to), EndTimestamp: aws.Time(from)}}})
		wantAPIError(t, err, "InvalidArgumentException", 400)
		_, err = e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("nope")})
		var nf *amtypes.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Fatalf("ListFragments on an unknown stream: %v", err)
		}
		wantAPIError(t, err, "ResourceNotFoundException", 404)

		try(e.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("live-only"), DataRetentionInHours: aws.Int32(0)})).ok(t)
		_, err = e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("live-only")})
		wantAPIError(t, err, "NoDataRetentionException", 400)

		for _, tok := range []string{"***", "AAAA", "bm90IGEgdG9rZW4", string(bytes.Repeat([]byte("A"), 4097))} {
			_, err = e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag"), NextToken: aws.String(tok)})
			var ia *amtypes.InvalidArgumentException
			if !errors.As(err, &ia) {
				t.Fatalf("NextToken %.20q: %v, want InvalidArgumentException", tok, err)
			}
			wantAPIError(t, err, "InvalidArgumentException", 400)
		}

		// A token of another stream is refused; on its own stream it works.
		ingestClip(t, e.ts, e.signed, "frag-b", 1)
		b := try(e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag-b"), MaxResults: aws.Int64(2)})).ok(t)
		if b.NextToken == nil {
			t.Fatal("no NextToken on frag-b")
		}
		_, err = e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag"), NextToken: b.NextToken})
		wantAPIError(t, err, "InvalidArgumentException", 400)
		rest := try(e.am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("frag-b"), NextToken: b.NextToken})).ok(t)
		if len(rest.Fragments) != 8 || rest.NextToken != nil {
			t.Fatalf("rest of frag-b: %d fragments, token %v", len(rest.Fragments), rest.NextToken)
		}
		if slices.ContainsFunc(rest.Fragments, func(f amtypes.Fragment) bool {
			return slices.Contains(fragmentNumbers(b.Fragments), aws.ToString(f.FragmentNumber))
		}) {
			t.Fatal("the second page repeats a fragment of the first")
		}
	})
}
