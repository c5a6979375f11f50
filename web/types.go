package web

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Timestamp is an AWS JSON timestamp: epoch seconds as a JSON number, with
// a fraction (we send milliseconds).
type Timestamp struct{ time.Time }

// MarshalJSON writes epoch seconds with millisecond precision.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return appendEpoch(nil, t.UnixNano()), nil
}

// appendEpoch appends unix nanoseconds as epoch seconds with three decimals.
func appendEpoch(dst []byte, ns int64) []byte {
	ms := ns / 1e6
	if ns < 0 && ns%1e6 != 0 {
		ms--
	}
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	dst = strconv.AppendInt(dst, sec, 10)
	dst = append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return dst
}

// UnmarshalJSON reads epoch seconds (a JSON number; integer, decimal or
// exponent form). Strings and out-of-range values are rejected.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	ns, ok := parseEpoch(s)
	if !ok {
		return invalidArg("timestamp %.40q is not epoch seconds", s)
	}
	t.Time = time.Unix(0, ns)
	return nil
}

// parseEpoch parses decimal epoch seconds to unix ns exactly when it can
// (no float rounding of millisecond fractions), else through float64.
func parseEpoch(s string) (int64, bool) {
	if s == "" || s[0] == '"' {
		return 0, false
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if !strings.ContainsAny(s, "eE") {
		sec, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil || sec < 0 || sec > maxEpochSeconds {
			return 0, false
		}
		var ns int64
		if hasFrac {
			if frac == "" || len(frac) > 30 {
				return 0, false
			}
			for i := 0; i < 9; i++ {
				d := byte('0')
				if i < len(frac) {
					d = frac[i]
				}
				if d < '0' || d > '9' {
					return 0, false
				}
				ns = ns*10 + int64(d-'0')
			}
			for i := 9; i < len(frac); i++ {
				if frac[i] < '0' || frac[i] > '9' {
					return 0, false
				}
			}
		}
		return sec*1e9 + ns, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxEpochSeconds {
		return 0, false
	}
	return int64(math.Round(f*1e3)) * 1e6, true
}

// maxEpochSeconds keeps nanoseconds inside int64 (year 2262).
const maxEpochSeconds = math.MaxInt64/1_000_000_000 - 1

var (
	reStreamName = regexp.MustCompile(`^[a-zA-Z0-9_.\-]{1,256}$`)
	reStreamARN  = regexp.MustCompile(`^arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.\-]+/[0-9]+$`)
	reMediaType  = regexp.MustCompile(`^[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*$`)
	reDeviceName = regexp.MustCompile(`^[a-zA-Z0-9_.\-]{1,128}$`)
)
