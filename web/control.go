package web

import (
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/kvsgate/kvsgate/fragments"
)

// streamRef is the StreamName / StreamARN pair most operations take.
type streamRef struct {
	StreamName string `json:"StreamName"`
	StreamARN  string `json:"StreamARN"`
}

// lookup finds the stream a request names by name or ARN (either; both
// must agree), and notes it in the request's requestInfo.
func (s *Server) lookup(ctx context.Context, ref streamRef) (*fragments.Stream, error) {
	if ref.StreamName == "" && ref.StreamARN == "" {
		return nil, invalidArg("either StreamName or StreamARN must be specified")
	}
	if ref.StreamName != "" && !reStreamName.MatchString(ref.StreamName) {
		return nil, invalidArg("StreamName %.300q does not match [a-zA-Z0-9_.-]{1,256}", ref.StreamName)
	}
	if ref.StreamARN != "" && (len(ref.StreamARN) > 1024 || !reStreamARN.MatchString(ref.StreamARN)) {
		return nil, invalidArg("StreamARN %.1100q is not a Kinesis video stream ARN", ref.StreamARN)
	}
	st, err := s.store.Stream(ref.StreamName, ref.StreamARN)
	if errors.Is(err, fragments.ErrNotFound) {
		n := ref.StreamName
		if n == "" {
			n = ref.StreamARN
		}
		return nil, notFound("The requested stream %s was not found", n)
	}
	if err == nil {
		infoOf(ctx).noteStream(st)
	}
	return st, err
}

// StreamInfo is the API's description of a stream.
type StreamInfo struct {
	DeviceName           string    `json:"DeviceName,omitempty"`
	StreamName           string    `json:"StreamName"`
	StreamARN            string    `json:"StreamARN"`
	MediaType            string    `json:"MediaType,omitempty"`
	KmsKeyID             string    `json:"KmsKeyId,omitempty"`
	Version              string    `json:"Version"`
	Status               string    `json:"Status"`
	CreationTime         Timestamp `json:"CreationTime"`
	DataRetentionInHours int       `json:"DataRetentionInHours"`
}

func streamInfo(st *fragments.Stream) StreamInfo {
	return StreamInfo{
		DeviceName: st.DeviceName, StreamName: st.Name, StreamARN: st.ARN, MediaType: st.MediaType,
		KmsKeyID: st.KmsKeyID, Version: st.Version, Status: st.Status,
		CreationTime: Timestamp{st.CreationTime}, DataRetentionInHours: st.RetentionHours,
	}
}

type empty struct{}

const maxTags = 50

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return apiErr(400, "TagsPerResourceExceededLimitException", "more than %d tags", maxTags)
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > 128 || utf8.RuneCountInString(v) > 256 {
			return invalidArg("tag keys are 1-128 characters and values at most 256")
		}
	}
	return nil
}

type createStreamIn struct {
	DeviceName           string            `json:"DeviceName"`
	StreamName           string            `json:"StreamName"`
	MediaType            string            `json:"MediaType"`
	KmsKeyID             string            `json:"KmsKeyId"`
	DataRetentionInHours *int              `json:"DataRetentionInHours"`
	Tags                 map[string]string `json:"Tags"`
}

type createStreamOut struct {
	StreamARN string `json:"StreamARN"`
}

func (s *Server) createStream(ctx context.Context, in *createStreamIn) (*createStreamOut, error) {
	if !reStreamName.MatchString(in.StreamName) {
		return nil, invalidArg("StreamName must match [a-zA-Z0-9_.-]{1,256}")
	}
	if in.DeviceName != "" && !reDeviceName.MatchString(in.DeviceName) {
		return nil, invalidArg("DeviceName must match [a-zA-Z0-9_.-]{1,128}")
	}
	if in.MediaType != "" && (len(in.MediaType) > 128 || !reMediaType.MatchString(in.MediaType)) {
		return nil, invalidArg("MediaType %.140q is not a media type", in.MediaType)
	}
	if len(in.KmsKeyID) > 2048 {
		return nil, invalidArg("KmsKeyId longer than 2048 characters")
	}
	retention := 0
	if in.DataRetentionInHours != nil {
		retention = *in.DataRetentionInHours
	}
	if retention < 0 || retention > maxRetentionHours {
		return nil, invalidArg("DataRetentionInHours must be between 0 and %d", maxRetentionHours)
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	if err := s.admit(infoOf(ctx), 0, 0); err != nil { // account level
		return nil, err
	}
	st, err := s.store.CreateStream(fragments.NewStream{
		Name: in.StreamName, DeviceName: in.DeviceName, MediaType: in.MediaType, KmsKeyID: in.KmsKeyID,
		RetentionHours: retention, Tags: in.Tags,
	})
	if err != nil {
		return nil, err
	}
	infoOf(ctx).noteStream(st)
	return &createStreamOut{StreamARN: st.ARN}, nil
}

// maxRetentionHours is KVS's limit: ten years.
const maxRetentionHours = 87600

type describeStreamOut struct {
	StreamInfo StreamInfo `json:"StreamInfo"`
}

func (s *Server) describeStream(ctx context.Context, in *streamRef) (*describeStreamOut, error) {
	st, err := s.resolve(ctx, *in)
	if err != nil {
		return nil, err
	}
	return &describeStreamOut{StreamInfo: streamInfo(st)}, nil
}

type listStreamsIn struct {
	MaxResults          *int    `json:"MaxResults"`
	NextToken           *string `json:"NextToken"`
	StreamNameCondition *struct {
		ComparisonOperator string `json:"ComparisonOperator"`
		ComparisonValue    string `json:"ComparisonValue"`
	} `json:"StreamNameCondition"`
}

type listStreamsOut struct {
	StreamInfoList []StreamInfo `json:"StreamInfoList"`
	NextToken      *string      `json:"NextToken,omitempty"`
}

func (s *Server) listStreams(ctx context.Context, in *listStreamsIn) (*listStreamsOut, error) {
	if err := s.admit(infoOf(ctx), 0, 0); err != nil { // account level
		return nil, err
	}
	limit := 10000
	if in.MaxResults != nil {
		limit = *in.MaxResults
		if limit < 1 || limit > 10000 {
			return nil, invalidArg("MaxResults must be between 1 and 10000")
		}
	}
	prefix := ""
	if c := in.StreamNameCondition; c != nil {
		if c.ComparisonOperator != "" && c.ComparisonOperator != "BEGINS_WITH" {
			return nil, invalidArg("ComparisonOperator must be BEGINS_WITH")
		}
		if n := len(c.ComparisonValue); n < 1 || n > 256 || !reStreamName.MatchString(c.ComparisonValue) {
			return nil, invalidArg("ComparisonValue must match [a-zA-Z0-9_.-]{1,256}")
		}
		prefix = c.ComparisonValue
	}
	after := ""
	if in.NextToken != nil {
		b, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		if err != nil || len(*in.NextToken) > 512 || !reStreamName.Match(b) {
			return nil, invalidArg("NextToken is not valid")
		}
		after = string(b)
	}
	streams, err := s.store.Index.Streams(prefix, after, limit+1)
	if err != nil {
		return nil, err
	}
	out := &listStreamsOut{StreamInfoList: []StreamInfo{}}
	if len(streams) > limit {
		streams = streams[:limit]
		t := base64.RawURLEncoding.EncodeToString([]byte(streams[limit-1].Name))
		out.NextToken = &t
	}
	for _, st := range streams {
		out.StreamInfoList = append(out.StreamInfoList, streamInfo(st))
	}
	return out, nil
}

type deleteStreamIn struct {
	StreamARN      string `json:"StreamARN"`
	CurrentVersion string `json:"CurrentVersion"`
}

func (s *Server) deleteStream(ctx context.Context, in *deleteStreamIn) (*empty, error) {
	if in.StreamARN == "" {
		return nil, invalidArg("StreamARN is required")
	}
	if len(in.CurrentVersion) > 64 {
		return nil, invalidArg("CurrentVersion is 1 to 64 characters")
	}
	st, err := s.resolve(ctx, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	err = s.store.DeleteStream(st, in.CurrentVersion)
	s.streamsByID.Delete(st.ID) // its sessions end now, not a sessionStreamTTL later
	return &empty{}, err
}

type updateStreamIn struct {
	streamRef
	CurrentVersion string  `json:"CurrentVersion"`
	DeviceName     *string `json:"DeviceName"`
	MediaType      *string `json:"MediaType"`
}

func (s *Server) updateStream(ctx context.Context, in *updateStreamIn) (*empty, error) {
	if in.CurrentVersion == "" || len(in.CurrentVersion) > 64 {
		return nil, invalidArg("CurrentVersion is required (1 to 64 characters)")
	}
	if in.DeviceName != nil && !reDeviceName.MatchString(*in.DeviceName) {
		return nil, invalidArg("DeviceName must match [a-zA-Z0-9_.-]{1,128}")
	}
	if in.MediaType != nil && (len(*in.MediaType) > 128 || !reMediaType.MatchString(*in.MediaType)) {
		return nil, invalidArg("MediaType is not a media type")
	}
	st, err := s.resolve(ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	_, err = s.store.UpdateStream(st, in.CurrentVersion, func(n *fragments.Stream) {
		if in.DeviceName != nil {
			n.DeviceName = *in.DeviceName
		}
		if in.MediaType != nil {
			n.MediaType = *in.MediaType
		}
	})
	return &empty{}, err
}

type updateDataRetentionIn struct {
	streamRef
	CurrentVersion             string `json:"CurrentVersion"`
	Operation                  string `json:"Operation"`
	DataRetentionChangeInHours *int   `json:"DataRetentionChangeInHours"`
}

func (s *Server) updateDataRetention(ctx context.Context, in *updateDataRetentionIn) (*empty, error) {
	if in.CurrentVersion == "" || len(in.CurrentVersion) > 64 {
		return nil, invalidArg("CurrentVersion is required (1 to 64 characters)")
	}
	if in.DataRetentionChangeInHours == nil || *in.DataRetentionChangeInHours < 1 {
		return nil, invalidArg("DataRetentionChangeInHours must be at least 1")
	}
	change := *in.DataRetentionChangeInHours
	if in.Operation != "INCREASE_DATA_RETENTION" && in.Operation != "DECREASE_DATA_RETENTION" {
		return nil, invalidArg("Operation must be INCREASE_DATA_RETENTION or DECREASE_DATA_RETENTION")
	}
	st, err := s.resolve(ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	next := st.RetentionHours + change
	if in.Operation == "DECREASE_DATA_RETENTION" {
		next = st.RetentionHours - change
	}
	if next < 0 || next > maxRetentionHours {
		return nil, invalidArg("the retention period would be %d hours; it must be between 0 and %d", next, maxRetentionHours)
	}
	_, err = s.store.UpdateStream(st, in.CurrentVersion, func(n *fragments.Stream) { n.RetentionHours = next })
	s.streamsByID.Delete(st.ID) // its sessions apply the new retention now
	return &empty{}, err
}

type getDataEndpointIn struct {
	streamRef
	APIName string `json:"APIName"`
}

type getDataEndpointOut struct {
	DataEndpoint string `json:"DataEndpoint"`
}

var dataAPIs = []string{"PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
	"GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES"}

func (s *Server) getDataEndpoint(ctx context.Context, in *getDataEndpointIn) (*getDataEndpointOut, error) {
	if !slices.Contains(dataAPIs, in.APIName) {
		return nil, invalidArg("APIName must be one of %v", dataAPIs)
	}
	if _, err := s.resolve(ctx, in.streamRef); err != nil {
		return nil, err
	}
	return &getDataEndpointOut{DataEndpoint: s.DataEndpoint()}, nil
}

type tagStreamIn struct {
	streamRef
	Tags map[string]string `json:"Tags"`
}

func (s *Server) tagStream(ctx context.Context, in *tagStreamIn) (*empty, error) {
	if len(in.Tags) == 0 {
		return nil, invalidArg("Tags is required")
	}
	st, err := s.resolve(ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	merged := maps.Clone(st.Tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, in.Tags)
	if err := checkTags(merged); err != nil {
		return nil, err
	}
	_, err = s.store.UpdateStream(st, "", func(n *fragments.Stream) { n.Tags = merged })
	return &empty{}, err
}

type untagStreamIn struct {
	streamRef
	TagKeyList []string `json:"TagKeyList"`
}

func (s *Server) untagStream(ctx context.Context, in *untagStreamIn) (*empty, error) {
	if len(in.TagKeyList) < 1 || len(in.TagKeyList) > maxTags {
		return nil, invalidArg("TagKeyList holds 1 to %d keys", maxTags)
	}
	st, err := s.resolve(ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	_, err = s.store.UpdateStream(st, "", func(n *fragments.Stream) {
		for _, k := range in.TagKeyList {
			delete(n.Tags, k)
		}
	})
	return &empty{}, err
}

type listTagsIn struct {
	streamRef
	NextToken string `json:"NextToken"`
}

type listTagsOut struct {
	NextToken *string           `json:"NextToken,omitempty"`
	Tags      map[string]string `json:"Tags"`
}

// listTagsForStream returns every tag at once (at most 50 exist), so there
// is never a NextToken.
func (s *Server) listTagsForStream(ctx context.Context, in *listTagsIn) (*listTagsOut, error) {
	if len(in.NextToken) > 512 {
		return nil, invalidArg("NextToken is not valid")
	}
	st, err := s.resolve(ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	tags := st.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return &listTagsOut{Tags: tags}, nil
}

// The resource-tagging operations (TagResource & co.) take a ResourceARN;
// for streams they are the stream tagging operations.

type resourceTagsIn struct {
	ResourceARN string `json:"ResourceARN"`
	Tags        []struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	} `json:"Tags"`
	TagKeyList []string `json:"TagKeyList"`
	NextToken  string   `json:"NextToken"`
}

func (in *resourceTagsIn) ref() (streamRef, error) {
	if in.ResourceARN == "" {
		return streamRef{}, invalidArg("ResourceARN is required")
	}
	return streamRef{StreamARN: in.ResourceARN}, nil
}

func (s *Server) tagResource(ctx context.Context, in *resourceTagsIn) (*empty, error) {
	ref, err := in.ref()
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for _, t := range in.Tags {
		tags[t.Key] = t.Value
	}
	return s.tagStream(ctx, &tagStreamIn{streamRef: ref, Tags: tags})
}

func (s *Server) untagResource(ctx context.Context, in *resourceTagsIn) (*empty, error) {
	ref, err := in.ref()
	if err != nil {
		return nil, err
	}
	return s.untagStream(ctx, &untagStreamIn{streamRef: ref, TagKeyList: in.TagKeyList})
}

func (s *Server) listTagsForResource(ctx context.Context, in *resourceTagsIn) (*listTagsOut, error) {
	ref, err := in.ref()
	if err != nil {
		return nil, err
	}
	return s.listTagsForStream(ctx, &listTagsIn{streamRef: ref, NextToken: in.NextToken})
}
