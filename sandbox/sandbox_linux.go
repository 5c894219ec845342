//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// Access rights granted. Nothing includes Execute.
const (
	readRights = llsys.AccessFSReadFile | llsys.AccessFSReadDir
	// writeRights is everything a state directory needs: bbolt, certmagic's
	// file storage (lock files, write-then-rename in one directory).
	writeRights = readRights | llsys.AccessFSWriteFile | llsys.AccessFSTruncate |
		llsys.AccessFSMakeReg | llsys.AccessFSMakeDir | llsys.AccessFSRemoveFile | llsys.AccessFSRemoveDir
	// appendRights lets a rotated log file be re-created and written.
	appendRights = llsys.AccessFSWriteFile | llsys.AccessFSMakeReg | llsys.AccessFSTruncate
)

// Apply confines the process with Landlock, best effort: it uses what the
// kernel supports and reports ModeUnsupported, without error, when the
// kernel has no Landlock. An error means Landlock is there but could not be
// applied (a path missing, the ruleset refused); the process is then
// unconfined.
func Apply(o Options) (Result, error) {
	p, err := o.resolve()
	if err != nil {
		return Result{}, err
	}
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		reason := "kernel has no Landlock (needs Linux 5.13+ with landlock in the lsm= list)"
		if err != nil {
			reason += ": " + err.Error()
		}
		return Result{Mode: ModeUnsupported, Reason: reason}, nil
	}

	var rules []landlock.Rule
	var read, write []string
	add := func(rights landlock.AccessFSSet, optional bool, paths []string, into *[]string) {
		for _, path := range paths {
			r := landlock.PathAccess(rights, path)
			if optional {
				r = r.IgnoreIfMissing()
			}
			rules = append(rules, r)
			*into = append(*into, path)
		}
	}
	add(readRights, false, p.readDirs, &read)
	add(readRights, true, systemReadDirs(), &read)
	add(llsys.AccessFSReadFile, true, systemReadFiles(), &read)
	add(writeRights, false, p.writeDirs, &write)
	add(appendRights, false, p.appendDirs, &write)

	if err := noKernelWorkerThreads(); err != nil {
		return Result{}, err
	}
	if err := landlock.V11.BestEffort().RestrictPaths(rules...); err != nil {
		return Result{}, fmt.Errorf("restricting file access with Landlock ABI %d: %w", abi, err)
	}
	return Result{Mode: ModeLandlock, ABI: abi, Reason: fmt.Sprintf("kernel supports Landlock ABI %d", abi),
		Read: read, Write: write}, nil
}

// noKernelWorkerThreads fails when the process has io_uring worker
// threads. Landlock binds only the calling thread, so go-landlock applies
// it to every thread through libpsx, which signals each thread listed in
// /proc/self/task and waits for it to answer; an io_uring worker (named
// iou-wrk-*) never answers a signal, and the wait would spin forever.
// Apply must therefore run before the process's first io_uring operation.
func noKernelWorkerThreads() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil // no /proc: libpsx cannot list threads either
	}
	for _, t := range tasks {
		comm, err := os.ReadFile("/proc/self/task/" + t.Name() + "/comm")
		if err == nil && strings.HasPrefix(string(comm), "iou-") {
			return fmt.Errorf("%w: thread %s is %s", ErrKernelWorkers, t.Name(), strings.TrimSpace(string(comm)))
		}
	}
	return nil
}
