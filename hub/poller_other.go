//go:build !linux

package hub

import "time"

// poller, off Linux, gives each connection a goroutine that reads and
// handles frames; it keeps the hub working where epoll does not exist.
type poller struct {
	handle func(c *Conn, waited time.Duration)
}

func newPoller(_ int, handle func(c *Conn, waited time.Duration), _ func(c *Conn) bool) (*poller, error) {
	return &poller{handle: handle}, nil
}

func (p *poller) add(c *Conn) error {
	go func() {
		for {
			c.mu.Lock()
			closed := c.closed
			c.mu.Unlock()
			if closed {
				return
			}
			if c.claim() {
				p.handle(c, 0) // its own goroutine: no wait for a worker
			}
		}
	}()
	return nil
}

func (p *poller) remove(*Conn) {}
func (p *poller) close()       {}
