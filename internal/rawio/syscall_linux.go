//go:build linux

package rawio

import (
	"io"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read is read(2) on a nonblocking descriptor.
func Read(fd uintptr, b []byte) (int, error) { return transfer(unix.SYS_READ, fd, b) }

// Write is write(2) on a nonblocking descriptor.
func Write(fd uintptr, b []byte) (int, error) { return transfer(unix.SYS_WRITE, fd, b) }

func transfer(trap, fd uintptr, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := unix.RawSyscall(trap, fd, uintptr(p), uintptr(len(b)))
	return result(n, e)
}

// Writev is writev(2) of bufs on a nonblocking descriptor. iovs is
// scratch space for the iovec array, returned for the next call; empty
// buffers are left out.
func Writev(fd uintptr, bufs [][]byte, iovs []unix.Iovec) (int, []unix.Iovec, error) {
	iovs = iovs[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iovs = append(iovs, v)
		}
	}
	if len(iovs) == 0 {
		return 0, iovs, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iovs[0])), uintptr(len(iovs)))
	clear(iovs) // the buffers are not kept alive by the scratch space
	c, err := result(n, e)
	return c, iovs, err
}

// EpollWait is epoll_wait(2) with a timeout of 0: it returns the ready
// events without waiting.
func EpollWait(epfd uintptr, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return result(n, e)
}

// EpollCtl is epoll_ctl(2), which never sleeps.
func EpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func result(n uintptr, e unix.Errno) (int, error) {
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// WriteAt is pwrite(2) of all of b at off in f, a regular file. A write
// into the page cache does not wait for the disk (fsync does, and goes
// through package syscall), so a raw call suits it: the single-node
// engine's journal write per commit was what still woke the runtime's
// monitor there. Under heavy memory pressure the kernel may throttle the
// writer for a while, and the call keeps its processor meanwhile.
func WriteAt(f *os.File, b []byte, off int64) (int, error) {
	defer runtime.KeepAlive(f) // f's finalizer must not close fd meanwhile
	fd := f.Fd()
	done := 0
	for done < len(b) {
		n, _, e := unix.RawSyscall6(unix.SYS_PWRITE64, fd, uintptr(unsafe.Pointer(&b[done])), uintptr(len(b)-done), uintptr(off+int64(done)), 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			return done, &os.PathError{Op: "write", Path: f.Name(), Err: e}
		case n == 0:
			return done, io.ErrShortWrite
		}
		done += int(n)
	}
	return done, nil
}
