package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// shardLink is one pub/sub shard's connection as the receive loop reads
// it: go-redis's PubSub on a Redis Cluster (pubsubLink), the node's own
// RESP3 connection on a single Redis (ownLink), which also carries the
// shard's sends. After a failure the next read reconnects and
// resubscribes; after close it fails with redis.ErrClosed.
type shardLink interface {
	// subscribe subscribes (on) or unsubscribes chs.
	subscribe(ctx context.Context, chs []string, on bool) error
	// ping writes a PING whose payload next reports as a pong.
	ping(ctx context.Context, payload string) error
	// next reads the next message or pong.
	next(ctx context.Context) (shardEvent, error)
	close() error
}

// pubsubLink is a shard's go-redis PubSub.
type pubsubLink struct {
	ps      *redis.PubSub
	sharded bool
}

func (l *pubsubLink) subscribe(ctx context.Context, chs []string, on bool) error {
	switch {
	case on && l.sharded:
		return l.ps.SSubscribe(ctx, chs...)
	case on:
		return l.ps.Subscribe(ctx, chs...)
	case l.sharded:
		return l.ps.SUnsubscribe(ctx, chs...)
	default:
		return l.ps.Unsubscribe(ctx, chs...)
	}
}

func (l *pubsubLink) ping(ctx context.Context, payload string) error {
	return l.ps.Ping(ctx, payload)
}

func (l *pubsubLink) next(ctx context.Context) (shardEvent, error) {
	for {
		v, err := l.ps.Receive(ctx)
		if err != nil {
			return shardEvent{}, err
		}
		switch v := v.(type) {
		case *redis.Message:
			return shardEvent{channel: v.Channel, payload: v.Payload}, nil
		case *redis.Pong:
			return shardEvent{payload: v.Payload, pong: true}, nil
		}
	}
}

func (l *pubsubLink) close() error { return l.ps.Close() }

// ownLink is a shard's shardConn on a single Redis, dialled again with
// its channels after a failure, on the next read.
type ownLink struct {
	opts *redis.Options
	mu   sync.Mutex
	// conn is the connection, nil while it must be dialled again; chans
	// what it carries; closed set by close. All under mu.
	conn   *shardConn
	chans  map[string]struct{}
	closed bool
	// cur is conn for sends, read without mu: a redial holds mu for as
	// long as it takes, and a send then takes go-redis's pipeline instead
	// of waiting.
	cur atomic.Pointer[shardConn]
}

// dialOwnLink opens a link carrying chs, confirmed by Redis.
func dialOwnLink(ctx context.Context, opts *redis.Options, chs []string) (*ownLink, error) {
	l := &ownLink{opts: opts, chans: make(map[string]struct{}, len(chs))}
	for _, ch := range chs {
		l.chans[ch] = struct{}{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.dial(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// dial connects and subscribes the link's channels; call it under mu.
func (l *ownLink) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	chs := make([]string, 0, len(l.chans))
	for ch := range l.chans {
		chs = append(chs, ch)
	}
	c, err := dialShard(ctx, l.opts, chs)
	if err != nil {
		return err
	}
	l.conn = c
	l.cur.Store(c)
	return nil
}

// live is the connection while it works, for a send; nil otherwise.
func (l *ownLink) live() *shardConn {
	c := l.cur.Load()
	if c == nil || c.failed() {
		return nil
	}
	return c
}

func (l *ownLink) subscribe(_ context.Context, chs []string, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range chs {
		if on {
			l.chans[ch] = struct{}{}
		} else {
			delete(l.chans, ch)
		}
	}
	if l.closed {
		return redis.ErrClosed
	}
	if l.conn == nil {
		return nil // the next dial subscribes them
	}
	return l.conn.subscribe(chs, on)
}

// ping dials first if the connection is down: the receive loop pings
// again after a failure, before it reads.
func (l *ownLink) ping(ctx context.Context, payload string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return redis.ErrClosed
	}
	if l.conn == nil {
		if err := l.dial(ctx); err != nil {
			return err
		}
	}
	return l.conn.ping(payload)
}

func (l *ownLink) next(ctx context.Context) (shardEvent, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return shardEvent{}, redis.ErrClosed
	}
	if l.conn == nil {
		if err := l.dial(ctx); err != nil {
			l.mu.Unlock()
			return shardEvent{}, err
		}
	}
	c := l.conn
	l.mu.Unlock()
	ev, err := c.next()
	if err != nil {
		l.mu.Lock()
		if l.conn == c {
			l.conn = nil
			l.cur.Store(nil)
		}
		if l.closed {
			err = redis.ErrClosed
		}
		l.mu.Unlock()
	}
	return ev, err
}

func (l *ownLink) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.cur.Store(nil)
	if l.conn == nil {
		return nil
	}
	return l.conn.close()
}
