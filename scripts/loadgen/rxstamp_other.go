//go:build !linux

package main

import (
	"bufio"
	"net"
)

// stampReads keeps conn and br as they are: receive timestamps are read
// on Linux only (rxstamp_linux.go).
func stampReads(conn net.Conn, br *bufio.Reader) (net.Conn, *bufio.Reader) { return conn, br }

// receivedAt is 0: no receive times here.
func receivedAt(net.Conn) int64 { return 0 }
