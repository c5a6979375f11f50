package web

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
)

// epochNS is a unix-nanosecond time sent as epoch seconds with milliseconds.
type epochNS int64

func (t epochNS) MarshalJSON() ([]byte, error) { return appendEpoch(nil, int64(t)), nil }

// timestampRange is the API's TimestampRange.
type timestampRange struct {
	StartTimestamp *Timestamp `json:"StartTimestamp"`
	EndTimestamp   *Timestamp `json:"EndTimestamp"`
}

type listFragmentsIn struct {
	streamRef
	MaxResults       *int    `json:"MaxResults"`
	NextToken        *string `json:"NextToken"`
	FragmentSelector *struct {
		FragmentSelectorType string          `json:"FragmentSelectorType"`
		TimestampRange       *timestampRange `json:"TimestampRange"`
	} `json:"FragmentSelector"`
}

// FragmentJSON is the API's Fragment.
type FragmentJSON struct {
	FragmentNumber               string  `json:"FragmentNumber"`
	FragmentSizeInBytes          int64   `json:"FragmentSizeInBytes"`
	ProducerTimestamp            epochNS `json:"ProducerTimestamp"`
	ServerTimestamp              epochNS `json:"ServerTimestamp"`
	FragmentLengthInMilliseconds int64   `json:"FragmentLengthInMilliseconds"`
}

func fragmentJSON(f *fragments.Fragment) FragmentJSON {
	return FragmentJSON{
		FragmentNumber:               strconv.FormatUint(f.Number, 10),
		FragmentSizeInBytes:          f.Size,
		ProducerTimestamp:            epochNS(f.ProducerNS),
		ServerTimestamp:              epochNS(f.ServerNS),
		FragmentLengthInMilliseconds: f.LengthMS(),
	}
}

type listFragmentsOut struct {
	Fragments []FragmentJSON `json:"Fragments"`
	NextToken *string        `json:"NextToken,omitempty"`
}

func (s *Server) listFragments(ctx context.Context, in *listFragmentsIn) (*listFragmentsOut, error) {
	limit := 100
	if in.MaxResults != nil {
		limit = *in.MaxResults
		if limit < 1 || limit > 1000 {
			return nil, invalidArg("MaxResults must be between 1 and 1000")
		}
	}
	st, err := s.resolve(ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	if !st.Archived() {
		return nil, noDataRetention(st.Name)
	}
	if err := s.admit(infoOf(ctx), limit, 0); err != nil {
		return nil, err
	}
	q := fragments.FragmentQuery{StreamID: st.ID, By: fragments.ByServer, From: 0, To: math.MaxInt64, AfterTS: -1}
	if sel := in.FragmentSelector; sel != nil {
		switch sel.FragmentSelectorType {
		case "SERVER_TIMESTAMP":
		case "PRODUCER_TIMESTAMP":
			q.By = fragments.ByProducer
		default:
			return nil, invalidArg("FragmentSelectorType must be SERVER_TIMESTAMP or PRODUCER_TIMESTAMP")
		}
		tr := sel.TimestampRange
		if tr == nil || tr.StartTimestamp == nil || tr.EndTimestamp == nil {
			return nil, invalidArg("TimestampRange with StartTimestamp and EndTimestamp is required")
		}
		q.From, q.To = tr.StartTimestamp.UnixNano(), tr.EndTimestamp.UnixNano()
		if q.To < q.From {
			return nil, invalidArg("EndTimestamp must not be before StartTimestamp")
		}
		// Fragment timestamps are sent in milliseconds but indexed in ns:
		// the bounds cover whole milliseconds, so a range ending at a
		// fragment's timestamp as listed includes that fragment.
		q.From -= q.From % 1e6
		q.To += 1e6 - 1 - q.To%1e6
	}
	if in.NextToken != nil {
		tq, err := decodeFragmentToken(*in.NextToken)
		if err != nil || tq.StreamID != st.ID {
			return nil, invalidArg("NextToken is not valid for this stream")
		}
		q = tq
	}
	q.Limit = limit + 1
	q.MinServerNS = st.Cutoff(time.Now())
	frags, err := s.store.Index.Fragments(q)
	if err != nil {
		return nil, err
	}
	out := &listFragmentsOut{Fragments: make([]FragmentJSON, 0, min(len(frags), limit))}
	if len(frags) > limit {
		frags = frags[:limit]
		last := &frags[limit-1]
		next := q
		next.AfterTS, next.AfterOrdinal = last.ServerNS, last.Ordinal
		if q.By == fragments.ByProducer {
			next.AfterTS = last.ProducerNS
		}
		t := encodeFragmentToken(next)
		out.NextToken = &t
	}
	for i := range frags {
		out.Fragments = append(out.Fragments, fragmentJSON(&frags[i]))
	}
	return out, nil
}

const fragmentTokenVersion = 1

// encodeFragmentToken makes a ListFragments NextToken: the query and the
// position after the last fragment returned, so the next page continues
// exactly there without server state. It is unpadded base64 in the standard
// alphabet: the API's token pattern is [a-zA-Z0-9+/]+={0,2}.
func encodeFragmentToken(q fragments.FragmentQuery) string {
	b := []byte{fragmentTokenVersion, byte(q.By)}
	for _, v := range []int64{q.StreamID, q.From, q.To, q.AfterTS, q.AfterOrdinal} {
		b = binary.AppendVarint(b, v)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

func decodeFragmentToken(t string) (fragments.FragmentQuery, error) {
	var q fragments.FragmentQuery
	b, err := base64.RawStdEncoding.DecodeString(t)
	if err != nil || len(t) > 4096 || len(b) < 2 || b[0] != fragmentTokenVersion || b[1] > byte(fragments.ByProducer) {
		return q, invalidArg("bad token")
	}
	q.By = fragments.Selector(b[1])
	b = b[2:]
	for _, p := range []*int64{&q.StreamID, &q.From, &q.To, &q.AfterTS, &q.AfterOrdinal} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return q, invalidArg("bad token")
		}
		*p, b = v, b[n:]
	}
	if len(b) != 0 || q.To < q.From {
		return q, invalidArg("bad token")
	}
	return q, nil
}
