//go:build !linux

package rawio

import "errors"

// Ring writes one buffer to many sockets in one system call; only on
// Linux (io_uring), elsewhere NewRing fails and callers write socket by
// socket.
type Ring struct{}

// RingSize is the most sockets one Send writes to.
const RingSize = 64

// NewRing fails: no io_uring here.
func NewRing() (*Ring, error) { return nil, errors.ErrUnsupported }

// Send is never reached without a Ring.
func (r *Ring) Send([]int32, [][]byte) ([]int32, error) { return nil, errors.ErrUnsupported }

// Close does nothing.
func (r *Ring) Close() error { return nil }
