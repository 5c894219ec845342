package main

import (
	"math"
	"runtime"
	"runtime/debug"
)

// applyMemorySettings sets the garbage collector's target and the soft
// memory limit from --gc-percent and --memory-limit, when given, and returns
// the values in effect and a function restoring the previous ones (serve
// runs more than once in a test process).
func applyMemorySettings(cfg Config) (gcPercent int, memoryLimit int64, restore func()) {
	prevGC := debug.SetGCPercent(-1)
	debug.SetGCPercent(prevGC)
	prevLimit := debug.SetMemoryLimit(-1) // a negative input only reads it
	if cfg.GCPercent != 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	gcPercent = debug.SetGCPercent(-1)
	debug.SetGCPercent(gcPercent)
	memoryLimit = debug.SetMemoryLimit(-1)
	if memoryLimit == math.MaxInt64 {
		memoryLimit = 0 // none
	}
	return gcPercent, memoryLimit, func() {
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	}
}

// applyMaxProcs sets GOMAXPROCS from --max-procs, when given, and returns
// the value in effect and a function restoring the previous one.
func applyMaxProcs(cfg Config) (procs int, restore func()) {
	prev := runtime.GOMAXPROCS(0)
	if cfg.MaxProcs > 0 {
		runtime.GOMAXPROCS(cfg.MaxProcs)
	}
	return runtime.GOMAXPROCS(0), func() {
		if cfg.MaxProcs > 0 {
			runtime.GOMAXPROCS(prev)
		}
	}
}
