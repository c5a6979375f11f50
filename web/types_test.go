package web

import "testing"

func TestParseEpoch(t *testing.T) {
	for _, c := range []struct {
		in string
		ns int64
		ok bool
	}{
		{"1795289339.636", 1795289339636000000, true},
		{"1795289339", 1795289339000000000, true},
		{"0.000000001", 1, true},
		{"1.5e9", 1500000000000000000, true},
		{"1795289339.6361234567", 1795289339636123456, true},
		{"-1", 0, false},
		{"", 0, false},
		{"\"1\"", 0, false},
		{"1.", 0, false},
		{"1.x", 0, false},
		{"99999999999", 0, false},
		{"NaN", 0, false},
	} {
		ns, ok := parseEpoch(c.in)
		if ok != c.ok || (ok && ns != c.ns) {
			t.Errorf("parseEpoch(%q) = %d, %v; want %d, %v", c.in, ns, ok, c.ns, c.ok)
		}
	}
	if got := string(appendEpoch(nil, 1795289339636999999)); got != "1795289339.636" {
		t.Errorf("appendEpoch = %s", got)
	}
}

// FuzzParseEpoch: x-amzn-producer-start-timestamp and JSON timestamps never
// panic, never go negative, and round-trip at millisecond precision.
func FuzzParseEpoch(f *testing.F) {
	for _, s := range []string{"1795289339.636", "0", "1e9", "1.2.3", "9223372036.854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, ok := parseEpoch(s)
		if !ok {
			return
		}
		if ns < 0 {
			t.Fatalf("parseEpoch(%q) = %d", s, ns)
		}
		back, ok := parseEpoch(string(appendEpoch(nil, ns)))
		if !ok || back != ns/1e6*1e6 {
			t.Fatalf("round trip of %q: %d -> %s -> %d", s, ns, appendEpoch(nil, ns), back)
		}
	})
}
