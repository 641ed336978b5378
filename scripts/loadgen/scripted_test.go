package main

import (
	"context"
	"net"
	"testing"
	"time"
)

// scriptedNode listens on loopback and plays the one connection it
// accepts with serve, on a goroutine of its own, within 10 s; it returns
// the client's end, dialed.
func scriptedNode(t *testing.T, serve func(c net.Conn)) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(c)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// roomOfTwo is a stage with one room, id 7, of users 42 and 43, and
// 42's client.
func roomOfTwo() (*loadgen, *stage, *client) {
	lg := &loadgen{o: &options{roomSize: 2}}
	lg.tgt = moimTarget{lg}
	st := newStage(context.Background(), lg, 1, stageSpec{}, []*account{{id: 42}, {id: 43}}, nil)
	c := st.clients[0]
	c.room.id = 7
	return lg, st, c
}
