// Package rawio makes the system calls of nonblocking sockets, and file
// writes into the page cache, as raw system calls, without the Go
// runtime's bookkeeping for calls that may block.
//
// A call made through package syscall tells the scheduler it is entering
// the kernel, and when every processor was idle that wakes the runtime's
// monitor thread, which then looks every 20 µs until they are idle again:
// at 1,000 messages a second, a wake-up per burst of work and fifty
// context switches per millisecond of it. A nonblocking read, write or
// epoll wait never sleeps in the kernel, nor does a file write that the
// page cache takes, so they need none of that; under virtualization that
// makes context switches dear, skipping it took a sixth off a node's CPU
// per delivery on Redis and a tenth on the single-node engine
// (docs/BENCHMARKS.md, "Session 39" and "Session 40"). Calls that wait
// for a device (fsync) go on through package syscall.
package rawio
