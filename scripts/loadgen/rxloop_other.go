//go:build !linux

package main

// rxLoop is Linux's (rxloop_linux.go); elsewhere every connection has a
// reader goroutine.
type rxLoop struct{}

// read starts c's reader goroutine; the caller has counted it in
// st.readers.
func (st *stage) read(c *client) { go c.readLoop() }

// closeReaders has nothing to stop here.
func (st *stage) closeReaders() {}
