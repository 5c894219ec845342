package testkit

import (
	"runtime"
	"testing"
)

// ReportMemory runs build once per benchmark iteration and reports what the
// value it returns keeps alive: the live heap in MiB ("heap-MiB"), per key
// ("heap-B/key", for a value holding keys keys) and, where /proc is
// available, the growth of the resident set ("rss-MiB"; meaningful only for
// the first such measurement of a process). Run with -benchtime=1x.
func ReportMemory(b *testing.B, keys int, build func() any) {
	b.Helper()
	var total, rss float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rss0 := RSSBytes()
		v := build()
		runtime.GC()
		runtime.ReadMemStats(&after)
		rss = RSSBytes() - rss0
		runtime.KeepAlive(v)
		total = float64(after.HeapAlloc) - float64(before.HeapAlloc)
	}
	b.ReportMetric(total/(1<<20), "heap-MiB")
	b.ReportMetric(total/float64(keys), "heap-B/key")
	if rss > 0 {
		b.ReportMetric(rss/(1<<20), "rss-MiB")
	}
}
