package limits

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuNsPerOp reports the process's CPU time per op: on a shared machine it
// is steadier than wall time, which counts the time others had the core.
func cpuNsPerOp(b *testing.B, since time.Duration, ops int) {
	b.ReportMetric(float64(cpuTime()-since)/float64(ops), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raised is the default config with every credit and TPS figure so high
// that nothing is refused: the benchmarks time the limiter's work, not
// refusals.
func raised() Config {
	c := Default()
	c.FragmentMetadataCredits, c.FragmentMediaCredits = 1e9, 1e9
	for op := range NumOps {
		if c.TPS[op] > 0 {
			c.TPS[op] = 1e9
		}
	}
	return c
}

// BenchmarkAdmit is one HLS media fragment request's limits (session TPS
// and one media credit on its stream), on the real clock: 1000 sessions on
// one stream, as in the hlsload benchmark. "off" is the lab switch.
func BenchmarkAdmit(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{{"on", raised()}, {"off", Config{Off: true}}} {
		b.Run(bc.name, func(b *testing.B) {
			l := New(bc.cfg, time.Now)
			i, cpu := 0, cpuTime()
			for b.Loop() {
				if err := l.Admit(Request{Op: GetMP4MediaFragment, Stream: 1, Session: sid(i % 1000), Media: 1}); err != nil {
					b.Fatal(err)
				}
				i++
			}
			cpuNsPerOp(b, cpu, i)
		})
	}
}

// BenchmarkAdmitParallel is BenchmarkAdmit from every P at once: all on
// one stream (its media bucket is shared), or each goroutine on its own.
func BenchmarkAdmitParallel(b *testing.B) {
	for _, bc := range []struct {
		name    string
		streams bool
	}{{"one-stream", false}, {"stream-each", true}} {
		b.Run(bc.name, func(b *testing.B) {
			l := New(raised(), time.Now)
			var g, ops atomic.Int64
			cpu := cpuTime()
			defer func() { cpuNsPerOp(b, cpu, int(ops.Load())) }()
			b.RunParallel(func(pb *testing.PB) {
				id := g.Add(1)
				stream := int64(1)
				if bc.streams {
					stream = id
				}
				i := 0
				for pb.Next() {
					if err := l.Admit(Request{Op: GetMP4MediaFragment, Stream: stream, Session: sid(int(id)*1000 + i%1000), Media: 1}); err != nil {
						b.Fatal(err)
					}
					i++
				}
				ops.Add(int64(i))
			})
		})
	}
}

// BenchmarkAdmitPlaylist is a media playlist: session TPS and 5 metadata
// credits.
func BenchmarkAdmitPlaylist(b *testing.B) {
	l := New(raised(), time.Now)
	i, cpu := 0, cpuTime()
	for b.Loop() {
		if err := l.Admit(Request{Op: GetHLSMediaPlaylist, Stream: 1, Session: sid(i % 1000), Metadata: 5}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	cpuNsPerOp(b, cpu, i)
}
