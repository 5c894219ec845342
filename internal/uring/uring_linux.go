//go:build linux

package uring

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The parts of the io_uring ABI (include/uapi/linux/io_uring.h) used here.
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	opFsync       = 3 // IORING_OP_FSYNC
	fsyncDatasync = 1 // IORING_FSYNC_DATASYNC

	registerEventfd = 4 // IORING_REGISTER_EVENTFD

	sqeSize = 64
	cqeSize = 16
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

// sqOffsets is struct io_sqring_offsets.
type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqOffsets is struct io_cqring_offsets.
type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// Ring is an io_uring instance used for fdatasync. It is safe for
// concurrent use; flushes run one at a time.
type Ring struct {
	mu     sync.Mutex // one submission in flight
	seq    uint64     // user_data of the last submission; guarded by mu
	closed atomic.Bool
	fd     int
	event  *os.File // eventfd signalled on each completion

	sqRing, cqRing, sqes []byte // the shared mappings

	sqHead, sqTail, sqMask *uint32
	sqArray                unsafe.Pointer // uint32 indexes into sqes
	cqHead, cqTail, cqMask *uint32
	cqes                   unsafe.Pointer
}

// New sets up a ring of two entries with an eventfd for completions.
func New() (*Ring, error) {
	var p params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 2, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, unavailable("io_uring_setup", errno)
	}
	r := &Ring{fd: int(fd)}
	if err := r.setup(&p); err != nil {
		r.release()
		return nil, err
	}
	return r, nil
}

// unavailable wraps a set-up failure; refusals by the kernel or a policy
// also wrap ErrUnavailable.
func unavailable(call string, errno unix.Errno) error {
	err := os.NewSyscallError(call, errno)
	switch errno {
	case unix.ENOSYS, unix.EPERM, unix.EACCES, unix.EINVAL:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// setup maps the rings and registers the eventfd.
func (r *Ring) setup(p *params) error {
	var err error
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*cqeSize
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_POPULATE
	if r.sqRing, err = unix.Mmap(r.fd, offSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("mapping the submission ring: %w", err)
	}
	if r.cqRing, err = unix.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
		return fmt.Errorf("mapping the completion ring: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, prot, flags); err != nil {
		return fmt.Errorf("mapping the submission entries: %w", err)
	}
	sq, cq := unsafe.Pointer(&r.sqRing[0]), unsafe.Pointer(&r.cqRing[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = (*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqArray = unsafe.Add(sq, p.sqOff.array)
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = (*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Add(cq, p.cqOff.cqes)

	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("creating the completion eventfd: %w", err)
	}
	// A non-blocking descriptor: os.NewFile reads it through the poller.
	r.event = os.NewFile(uintptr(efd), "io_uring-eventfd")
	v := int32(efd)
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerEventfd,
		uintptr(unsafe.Pointer(&v)), 1, 0, 0); errno != 0 {
		return unavailable("io_uring_register", errno)
	}
	return nil
}

// Fdatasync flushes f's data, and the metadata needed to read it, as
// fdatasync(2) does, and waits for it. The calling goroutine parks while the
// kernel works; the file cannot be closed under it meanwhile.
func (r *Ring) Fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if rc.Control(func(fd uintptr) { opErr = r.fdatasync(int(fd)) }) != nil {
		// Control fails only for a file closed (or closing) meanwhile.
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: os.ErrClosed}
	}
	return opErr
}

func (r *Ring) fdatasync(fd int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return ErrClosed
	}
	r.seq++
	if err := r.submitFsync(fd, r.seq); err != nil {
		return err
	}
	res, err := r.await(r.seq)
	if err != nil {
		return err
	}
	if res < 0 {
		return os.NewSyscallError("fdatasync", unix.Errno(-res))
	}
	return nil
}

// submitFsync queues one IORING_OP_FSYNC entry tagged id and submits it
// without waiting: the kernel hands a flush to a worker of its own.
func (r *Ring) submitFsync(fd int, id uint64) error {
	tail := atomic.LoadUint32(r.sqTail)
	idx := tail & *r.sqMask
	sqe := (*[sqeSize]byte)(r.sqes[idx*sqeSize:])
	*sqe = [sqeSize]byte{}
	sqe[0] = opFsync
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	*(*uint32)(unsafe.Pointer(&sqe[28])) = fsyncDatasync
	*(*uint64)(unsafe.Pointer(&sqe[32])) = id // user_data
	*(*uint32)(unsafe.Add(r.sqArray, idx*4)) = idx
	atomic.StoreUint32(r.sqTail, tail+1) // publishes the entry to the kernel
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 1, 0, 0, 0, 0)
		switch {
		case errno == 0, atomic.LoadUint32(r.sqHead) != tail:
			return nil // consumed: its completion will be posted
		case errno == unix.EINTR:
			continue // not consumed yet: submit again
		}
		// Not consumed: take the entry back so the rings stay in step.
		atomic.StoreUint32(r.sqTail, tail)
		return os.NewSyscallError("io_uring_enter", errno)
	}
}

// await returns the result of the submission tagged id, reading the
// eventfd (through the poller) until its completion entry is posted.
// Completions of earlier submissions whose wait failed are dropped.
func (r *Ring) await(id uint64) (int32, error) {
	var buf [8]byte
	for {
		head := atomic.LoadUint32(r.cqHead)
		if head != atomic.LoadUint32(r.cqTail) {
			cqe := unsafe.Add(r.cqes, (head&*r.cqMask)*cqeSize)
			got := *(*uint64)(cqe)
			res := *(*int32)(unsafe.Add(cqe, 8))
			atomic.StoreUint32(r.cqHead, head+1)
			if got == id {
				return res, nil
			}
			continue
		}
		if _, err := r.event.Read(buf[:]); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return 0, ErrClosed
			}
			return 0, fmt.Errorf("reading the completion eventfd: %w", err)
		}
	}
}

// Close releases the ring. A flush waiting on it returns ErrClosed; the
// kernel finishes it on its own.
func (r *Ring) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	if r.event != nil {
		_ = r.event.Close() // wakes a waiting flush
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.release()
}

// release unmaps the rings and closes the ring's descriptor.
func (r *Ring) release() error {
	for _, m := range [][]byte{r.sqes, r.cqRing, r.sqRing} {
		if m != nil {
			_ = unix.Munmap(m)
		}
	}
	r.sqes, r.cqRing, r.sqRing = nil, nil, nil
	if r.event != nil && !r.closed.Load() {
		_ = r.event.Close()
	}
	return unix.Close(r.fd)
}
