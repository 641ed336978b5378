package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// shardReader reads c's messages into a channel until the connection ends.
func shardReader(t *testing.T, c *shardConn) <-chan [2]string {
	t.Helper()
	out := make(chan [2]string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			ev, err := c.next()
			if err != nil {
				return
			}
			if !ev.pong {
				out <- [2]string{ev.channel, ev.payload}
			}
		}
	}()
	t.Cleanup(func() {
		_ = c.close()
		<-done
	})
	return out
}

func dialTestShard(t *testing.T, rdb *redis.Client, chs ...string) *shardConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialShard(ctx, rdb.Options(), chs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// subscribedShard dials a shard connection subscribed to a channel of
// its own and reads its messages until the test ends.
func subscribedShard(t *testing.T, rdb *redis.Client) (*shardConn, <-chan [2]string, string) {
	t.Helper()
	channel := fmt.Sprintf("test:shardconn:%d", time.Now().UnixNano())
	c := dialTestShard(t, rdb, channel)
	return c, shardReader(t, c), channel
}

// A script's publish to the connection's own channel is read before the
// script's reply: by the time the call returns, the message was handed
// to the reader, so a node delivers a send before it acks it.
func TestShardConnPublishComesBeforeTheReply(t *testing.T) {
	rdb := testRedis(t)
	c, msgs, channel := subscribedShard(t, rdb)
	ctx := context.Background()
	const script = `redis.call('PUBLISH', KEYS[1], ARGV[1]); return {'ok', ARGV[1]}`
	for i := range 50 {
		body := fmt.Sprint("m", i)
		res, err := c.do(ctx, "EVAL", script, 1, channel, body)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 2 || res[0] != "ok" || res[1] != body {
			t.Fatalf("reply %q, want [ok %s]", res, body)
		}
		select {
		case m := <-msgs:
			if m != [2]string{channel, body} {
				t.Fatalf("message %q, want %q on %s", m, body, channel)
			}
		default:
			t.Fatalf("send %d: the reply came before its publish was read", i)
		}
	}
}

// Calls from many goroutines each get their own reply, and messages
// published by another client reach the subscriber in between.
func TestShardConnRepliesInOrderUnderConcurrency(t *testing.T) {
	rdb := testRedis(t)
	c, msgs, channel := subscribedShard(t, rdb)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				want := fmt.Sprintf("%d/%d", g, i)
				res, err := c.do(ctx, "ECHO", want)
				if err != nil || len(res) != 1 || res[0] != want {
					errs <- fmt.Errorf("ECHO %s: %q, %v", want, res, err)
					return
				}
			}
		})
	}
	for i := range 100 {
		if err := rdb.Publish(ctx, channel, fmt.Sprint(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 100 {
		select {
		case m := <-msgs:
			if m[1] != fmt.Sprint(i) {
				t.Fatalf("message %d: %q", i, m[1])
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d never came", i)
		}
	}
}

// A Redis error is a reply (the connection goes on) that go-redis's
// helpers recognize, as the send path's NOSCRIPT handling needs.
func TestShardConnRedisErrorIsAReply(t *testing.T) {
	rdb := testRedis(t)
	c := dialTestShard(t, rdb)
	shardReader(t, c)
	ctx := context.Background()
	_, err := c.do(ctx, "EVALSHA", "0000000000000000000000000000000000000000", 0)
	if !redis.HasErrorPrefix(err, "NOSCRIPT") {
		t.Fatalf("EVALSHA of an unknown script: %v, want NOSCRIPT", err)
	}
	if res, err := c.do(ctx, "ECHO", "still here"); err != nil || res[0] != "still here" {
		t.Fatalf("after the error: %q, %v", res, err)
	}
}

// When Redis drops the connection, the reader, a call waiting for its
// reply and every later call fail instead of hanging.
func TestShardConnFailsWhenRedisDropsIt(t *testing.T) {
	rdb := testRedis(t)
	c := dialTestShard(t, rdb)
	msgs := shardReader(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := c.do(ctx, "CLIENT", "ID")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		// Blocks in Redis until the connection is killed.
		_, err := c.do(ctx, "BLPOP", fmt.Sprintf("test:shardconn:empty:%d", time.Now().UnixNano()), 8)
		waiting <- err
	}()
	waitFor(t, "the BLPOP to block", func() bool {
		l, _ := rdb.Do(ctx, "CLIENT", "LIST", "ID", id[0]).Text()
		return strings.Contains(l, "cmd=blpop")
	})
	if err := rdb.Do(ctx, "CLIENT", "KILL", "ID", id[0]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the call in flight: %v, want the connection's failure", err)
	}
	if _, open := <-msgs; open {
		t.Fatal("the reader read a message from a killed connection")
	}
	if _, err := c.do(ctx, "PING"); err == nil {
		t.Fatal("a call on the dead connection succeeded")
	}
}
