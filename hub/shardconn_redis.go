package hub

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// shardConn is a RESP3 connection of the node's own to a single Redis
// that carries both a pub/sub shard's subscriptions and the send script
// calls of that shard's rooms. Redis then answers a send and publishes
// its message in one socket write, the publish first, and the node reads
// both at once: on go-redis's pair of connections (a command connection
// and a PubSub) each send cost two writes in Redis and two reads and
// wake-ups in the node; one connection took 10 % off the node's and
// Redis's CPU per delivery at 1000 × 1000 (docs/BENCHMARKS.md, "Session
// 47"). One goroutine reads it (next), delivering messages and settling
// replies in the order Redis sends them; any goroutine may call do.
type shardConn struct {
	nc net.Conn
	br *bufio.Reader
	mu sync.Mutex
	// buf holds what waits to be written (spare the buffer last written,
	// reused), writing is set while a write is under way, pending are the
	// calls awaiting replies in the order they were written (nil: a ping),
	// broken the error that ended the connection (nil while it works);
	// all under mu.
	buf     []byte
	spare   []byte
	writing bool
	pending []chan shardReply
	broken  error
	// early are the messages read while the connection was being set up
	// (dialShard), which next returns first; scratch is next's to read
	// values into.
	early   []shardEvent
	scratch []string
}

// shardEvent is what next reads: a pub/sub message, or the reply to a
// ping (pong set, its payload in payload).
type shardEvent struct {
	channel, payload string
	pong             bool
}

// shardReply is one call's answer: an array of strings flattened (the
// send script's reply), a single value as one string, or a Redis error.
type shardReply struct {
	strs []string
	err  error
}

// shardError is an error reply from Redis; it satisfies redis.Error, so
// redis.HasErrorPrefix (NOSCRIPT) and the retry logic read it as
// go-redis's own.
type shardError string

func (e shardError) Error() string { return string(e) }

// RedisError marks a reply from Redis rather than a failed connection.
func (shardError) RedisError() {}

var errShardClosed = errors.New("hub: shard connection closed")

// dialShard connects with the dialer, address, credentials, database and
// client name of a go-redis Client's opts, switches the connection to
// RESP3 and subscribes chs, returning once Redis confirmed them: what
// they carry from then on is next's to read.
func dialShard(ctx context.Context, opts *redis.Options, chs []string) (*shardConn, error) {
	nc, err := opts.Dialer(ctx, opts.Network, opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("hub: dial %s: %w", opts.Addr, err)
	}
	c := &shardConn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	hello := []any{"HELLO", "3"}
	if opts.Password != "" {
		user := opts.Username
		if user == "" {
			user = "default"
		}
		hello = append(hello, "AUTH", user, opts.Password)
	}
	if opts.ClientName != "" {
		hello = append(hello, "SETNAME", opts.ClientName)
	}
	calls := [][]any{hello}
	if opts.DB != 0 {
		calls = append(calls, []any{"SELECT", opts.DB})
	}
	if len(chs) > 0 {
		calls = append(calls, subscribeArgs(chs, true))
	}
	calls = append(calls, []any{"PING"})
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline)
	}
	fail := func(err error) (*shardConn, error) {
		_ = nc.Close()
		return nil, fmt.Errorf("hub: set up a shard connection to %s: %w", opts.Addr, err)
	}
	for _, call := range calls {
		c.buf = appendCommand(c.buf, call)
	}
	if _, err := nc.Write(c.buf); err != nil {
		return fail(err)
	}
	c.buf = c.buf[:0]
	want := len(calls) // replies; the PING's is the last
	if len(chs) > 0 {
		want-- // SUBSCRIBE is answered with pushes only
	}
	for want > 0 {
		var v shardValue
		if err := c.read(&v); err != nil {
			return fail(err)
		}
		switch {
		case v.err != nil:
			return fail(v.err)
		case v.push:
			if ev, ok := messageEvent(v); ok {
				c.early = append(c.early, ev)
			}
		default:
			want--
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// subscribeArgs is the command that subscribes (on) or unsubscribes chs.
func subscribeArgs(chs []string, on bool) []any {
	cmd := "SUBSCRIBE"
	if !on {
		cmd = "UNSUBSCRIBE"
	}
	args := make([]any, 0, 1+len(chs))
	args = append(args, cmd)
	for _, ch := range chs {
		args = append(args, ch)
	}
	return args
}

// messageEvent is the pub/sub message a push carries, if it is one.
func messageEvent(v shardValue) (shardEvent, bool) {
	if len(v.strs) == 3 && v.strs[0] == "message" {
		return shardEvent{channel: v.strs[1], payload: v.strs[2]}, true
	}
	return shardEvent{}, false
}

// do sends one command and waits for its reply. A caller that gives up
// (ctx) leaves the reply to be read and dropped.
func (c *shardConn) do(ctx context.Context, args ...any) ([]string, error) {
	ch := make(chan shardReply, 1)
	if err := c.write(args, ch, true); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.strs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ping sends a PING whose reply next returns as a pong.
func (c *shardConn) ping(payload string) error {
	return c.write([]any{"PING", payload}, nil, true)
}

// subscribe sends the command that subscribes (on) or unsubscribes chs;
// Redis answers it with pushes only.
func (c *shardConn) subscribe(chs []string, on bool) error {
	return c.write(subscribeArgs(chs, on), nil, false)
}

// write appends a command to the connection's buffer and, with answered,
// its reply's place among the pending (ch nil: a pong for next). The
// first writer to find no write under way writes what the buffer holds
// until it is empty, so commands that come while a write is under way
// leave together in the next one: as many Redis reads, and replies, as
// writes, not commands.
func (c *shardConn) write(args []any, ch chan shardReply, answered bool) error {
	c.mu.Lock()
	if c.broken != nil {
		err := c.broken
		c.mu.Unlock()
		return err
	}
	c.buf = appendCommand(c.buf, args)
	if answered {
		c.pending = append(c.pending, ch)
	}
	if c.writing {
		c.mu.Unlock()
		return nil
	}
	c.writing = true
	for len(c.buf) > 0 && c.broken == nil {
		out := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		_, err := c.nc.Write(out)
		c.mu.Lock()
		c.spare = out
		if err != nil {
			c.mu.Unlock()
			c.fail(fmt.Errorf("hub: shard connection: %w", err))
			c.mu.Lock()
		}
	}
	c.writing = false
	err := c.broken
	c.mu.Unlock()
	return err
}

// next reads until the next pub/sub message or pong and returns it,
// settling the replies read on the way. Once the connection fails, every
// call waiting for a reply fails with it, and so does next.
func (c *shardConn) next() (shardEvent, error) {
	if len(c.early) > 0 {
		ev := c.early[0]
		c.early = c.early[1:]
		return ev, nil
	}
	for {
		v := shardValue{strs: c.scratch[:0]}
		err := c.read(&v)
		c.scratch = v.strs[:0]
		if err != nil {
			err = fmt.Errorf("hub: shard connection: %w", err)
			c.fail(err)
			return shardEvent{}, err
		}
		if v.push {
			if ev, ok := messageEvent(v); ok {
				return ev, nil
			}
			continue // subscribe confirmations and the like
		}
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.mu.Unlock()
			err := errors.New("hub: shard connection: a reply nothing asked for")
			c.fail(err)
			return shardEvent{}, err
		}
		ch := c.pending[0]
		c.pending = c.pending[1:]
		c.mu.Unlock()
		if ch == nil {
			var payload string
			if len(v.strs) > 0 {
				payload = v.strs[0]
			}
			return shardEvent{payload: payload, pong: true}, nil
		}
		ch <- shardReply{strs: slices.Clone(v.strs), err: v.err}
	}
}

// failed reports that the connection ended.
func (c *shardConn) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken != nil
}

// close ends the connection; next then returns an error.
func (c *shardConn) close() error {
	c.fail(errShardClosed)
	return c.nc.Close()
}

// fail marks the connection broken (the first error stays) and fails
// every call waiting for a reply.
func (c *shardConn) fail(err error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	waiting := c.pending
	c.pending = nil
	err = c.broken
	c.mu.Unlock()
	for _, ch := range waiting {
		if ch != nil {
			ch <- shardReply{err: err}
		}
	}
}

// appendCommand appends args as a RESP array of bulk strings, numbers
// in decimal as go-redis writes them.
func appendCommand(b []byte, args []any) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	var num [24]byte
	for _, a := range args {
		switch v := a.(type) {
		case string:
			b = appendBulk(b, v)
		case []byte:
			b = appendBulk(b, v)
		case int:
			b = appendBulk(b, strconv.AppendInt(num[:0], int64(v), 10))
		case int64:
			b = appendBulk(b, strconv.AppendInt(num[:0], v, 10))
		default:
			b = appendBulk(b, fmt.Append(num[:0], v))
		}
	}
	return b
}

func appendBulk[T string | []byte](b []byte, s T) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// shardValue is one RESP3 value as read: its scalars in order (a map's
// keys and values alike), whether it was a push, and its error if it was
// one.
type shardValue struct {
	push bool
	strs []string
	err  error
}

// read reads one value into v.
func (c *shardConn) read(v *shardValue) error {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return fmt.Errorf("malformed reply %q", line)
	}
	kind, rest := line[0], line[1:len(line)-2]
	switch kind {
	case '>', '*', '~', '%', '|':
		n, ok := parseLen(rest)
		if !ok {
			return fmt.Errorf("malformed length %q", rest)
		}
		if kind == '>' {
			v.push = true
		}
		if kind == '%' || kind == '|' {
			n *= 2
		}
		for range n {
			if err := c.read(v); err != nil {
				return err
			}
		}
		if kind == '|' { // attributes precede the value they describe
			return c.read(v)
		}
	case '$', '=', '!':
		n, ok := parseLen(rest)
		if !ok {
			return fmt.Errorf("malformed length %q", rest)
		}
		if n < 0 {
			v.strs = append(v.strs, "")
			return nil
		}
		var str string
		if n+2 <= c.br.Size() {
			b, err := c.br.Peek(n + 2)
			if err != nil {
				return err
			}
			str = string(b[:n])
			_, _ = c.br.Discard(n + 2)
		} else {
			b := make([]byte, n+2)
			if _, err := io.ReadFull(c.br, b); err != nil {
				return err
			}
			str = string(b[:n])
		}
		if kind == '!' {
			v.err = shardError(str)
			return nil
		}
		v.strs = append(v.strs, str)
	case '-':
		v.err = shardError(rest)
	case '_':
		v.strs = append(v.strs, "")
	default: // + : , # (
		v.strs = append(v.strs, string(rest))
	}
	return nil
}

// parseLen reads a RESP length: decimal, -1 for a null.
func parseLen(b []byte) (int, bool) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' {
		return -1, true
	}
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, true
}
