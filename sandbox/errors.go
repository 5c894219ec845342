package sandbox

import "errors"

// ErrRelativePath is wrapped by Apply's error for a path that is not
// absolute after cleaning (Apply makes relative paths absolute first; this
// only happens when the working directory is unknown).
var ErrRelativePath = errors.New("sandbox: path is not absolute")

// ErrKernelWorkers is wrapped by Apply's error when the process already has
// io_uring worker threads, which cannot take part in applying Landlock to
// every thread: call Apply before the first io_uring operation.
var ErrKernelWorkers = errors.New("sandbox: io_uring worker threads present; apply the sandbox before the first io_uring operation")
