package rawio

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring writes one buffer to many sockets in one system call, through an
// io_uring of its own: a broadcast to a room's members is a send per
// member, and on a host whose every system call flushes the TLB (PTI
// without PCID, as on the project's VM) one io_uring_enter for all of
// them costs a fraction of a write(2) each (docs/BENCHMARKS.md, "Session
// 41"). The sends carry MSG_DONTWAIT, so the kernel makes each one at
// once, as write(2) on a nonblocking socket would, and answers EAGAIN
// instead of waiting for room: every send is done when the call returns.
//
// A Ring is not safe for concurrent use.
type Ring struct {
	fd     int
	mem    []byte // the submission and completion rings, mapped together
	sqeMem []byte
	sqTail *uint32
	sqMask uint32
	sqes   []ringSQE
	cqHead *uint32
	cqTail *uint32
	cqMask uint32
	cqes   []ringCQE
	res    []int32
	broken error
}

// RingSize is the most sockets one Send writes to.
const RingSize = 64

// The kernel's structures (include/uapi/linux/io_uring.h).
type (
	ringSQOffsets struct {
		head, tail, mask, entries, flags, dropped, array, resv1 uint32
		userAddr                                                uint64
	}
	ringCQOffsets struct {
		head, tail, mask, entries, overflow, cqes, flags, resv1 uint32
		userAddr                                                uint64
	}
	ringParams struct {
		sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
		resv                                                                   [3]uint32
		sqOff                                                                  ringSQOffsets
		cqOff                                                                  ringCQOffsets
	}
	ringSQE struct {
		opcode, flags         uint8
		ioprio                uint16
		fd                    int32
		off, addr             uint64
		len, msgFlags         uint32
		userData              uint64
		bufIndex, personality uint16
		spliceFDIn            int32
		addr3, pad            uint64
	}
	ringCQE struct {
		userData uint64
		res      int32
		flags    uint32
	}
)

// The sizes the kernel expects; a build with another layout fails here.
var (
	_ [64]byte  = [unsafe.Sizeof(ringSQE{})]byte{}
	_ [16]byte  = [unsafe.Sizeof(ringCQE{})]byte{}
	_ [120]byte = [unsafe.Sizeof(ringParams{})]byte{}
)

const (
	opSend         = 26         // IORING_OP_SEND
	featSingleMmap = 1 << 0     // IORING_FEAT_SINGLE_MMAP
	enterGetEvents = 1 << 0     // IORING_ENTER_GETEVENTS
	offSQEs        = 0x10000000 // IORING_OFF_SQES
	sendFlags      = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
)

// NewRing sets up a ring; it fails where io_uring is missing or not
// allowed (an older kernel, a seccomp profile, kernel.io_uring_disabled),
// and callers then write socket by socket.
func NewRing() (*Ring, error) {
	var p ringParams
	fd, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, RingSize, uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("rawio: io_uring_setup: %w", e)
	}
	r := &Ring{fd: int(fd)}
	if err := r.mapRings(&p); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(p *ringParams) error {
	if p.features&featSingleMmap == 0 {
		return errors.New("rawio: io_uring without IORING_FEAT_SINGLE_MMAP")
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(ringCQE{})))
	var err error
	if r.mem, err = unix.Mmap(r.fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("rawio: map the io_uring rings: %w", err)
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(ringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("rawio: map the io_uring entries: %w", err)
	}
	base := unsafe.Pointer(&r.mem[0])
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.mask))
	r.sqes = unsafe.Slice((*ringSQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	// Entry i of the submission ring is always sqes[i].
	array := unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.mask))
	r.cqes = unsafe.Slice((*ringCQE)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	return nil
}

// Send writes bufs[i] to fds[i] for each of fds (at most RingSize) and
// returns, for each, what write(2) would have: the bytes the socket
// took, or -errno (EAGAIN when it took none). The slice is the Ring's,
// valid until the next Send. An error means the ring failed as a whole
// and is unusable: what reached each socket is not known.
func (r *Ring) Send(fds []int32, bufs [][]byte) ([]int32, error) {
	if r.broken != nil {
		return nil, r.broken
	}
	if len(fds) > RingSize || len(bufs) != len(fds) {
		return nil, fmt.Errorf("rawio: %d sockets and %d buffers for one send, at most %d", len(fds), len(bufs), RingSize)
	}
	r.res = r.res[:0]
	for range fds {
		r.res = append(r.res, 0)
	}
	tail := atomic.LoadUint32(r.sqTail)
	n := uint32(0)
	for i, fd := range fds {
		b := bufs[i]
		if len(b) == 0 {
			continue
		}
		r.sqes[(tail+n)&r.sqMask] = ringSQE{opcode: opSend, fd: fd,
			addr: uint64(uintptr(unsafe.Pointer(&b[0]))), len: uint32(len(b)), msgFlags: sendFlags, userData: uint64(i)}
		n++
	}
	if n == 0 {
		return r.res, nil
	}
	atomic.StoreUint32(r.sqTail, tail+n)
	submit, got := n, uint32(0)
	for got < n {
		done, _, e := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(n-got), enterGetEvents, 0, 0)
		if e != 0 && e != unix.EINTR {
			// Entries left unsubmitted would go out with a later call,
			// to descriptors that may name other sockets by then.
			r.broken = fmt.Errorf("rawio: io_uring_enter: %w", e)
			runtime.KeepAlive(bufs)
			return nil, r.broken
		}
		if e == 0 {
			submit -= min(uint32(done), submit)
		}
		head, ctail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
		for ; head != ctail; head++ {
			c := &r.cqes[head&r.cqMask]
			r.res[c.userData] = c.res
			got++
		}
		atomic.StoreUint32(r.cqHead, head)
	}
	runtime.KeepAlive(bufs)
	return r.res, nil
}

// Close releases the ring.
func (r *Ring) Close() error {
	var errs []error
	for _, m := range [][]byte{r.sqeMem, r.mem} {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
		}
	}
	r.sqeMem, r.mem = nil, nil
	if r.fd >= 0 {
		errs = append(errs, unix.Close(r.fd))
		r.fd = -1
	}
	r.broken = errors.New("rawio: ring closed")
	return errors.Join(errs...)
}
