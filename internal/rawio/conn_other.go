//go:build !linux

package rawio

import (
	"context"
	"net"
)

// Dial connects to addr as d would; elsewhere than Linux the connection
// is net's own.
func Dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	return d.DialContext(ctx, network, addr)
}
