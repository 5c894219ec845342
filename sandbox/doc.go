// Package sandbox confines the running imedge process to the files it needs
// once it has started, with Linux's Landlock LSM
// (github.com/landlock-lsm/go-landlock).
//
// After [Apply], the process (every thread, and any child it would start)
// can read only the files and directories it was given plus what the Go
// runtime and resolver need (/etc/resolv.conf, /etc/hosts, the system CA
// roots, time zones, and the system library directories glibc's resolver
// may load modules from), and write only in the directories it was given.
// It cannot execute any file. Landlock cannot be lifted: call Apply once every
// listener and file that must stay open is open.
//
// Landlock is used in best-effort mode: a kernel with an older Landlock ABI
// gets the subset it supports, and a kernel without Landlock runs
// unconfined, which Apply reports in its [Result] rather than failing. On
// other operating systems Apply does nothing and says so.
//
// Apply must also come before the process's first io_uring operation: the
// kernel's io_uring worker threads cannot take part in applying Landlock to
// every thread, and Apply fails with [ErrKernelWorkers] when it finds one
// (the outbox journal's ring is set up at open but used only from the first
// callback on).
//
// The package decides nothing about imedge's configuration: cmd/imedge
// lists the paths.
package sandbox
