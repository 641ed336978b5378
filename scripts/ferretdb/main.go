// Command ferretdb runs FerretDB v1 on SQLite as a process of its own: a
// MongoDB-wire server for the store's tests, the multi-node tests and
// the chaos runs (scripts/chaos) here, where no MongoDB package exists.
// Several nodes share it as they share MongoDB in production, and it
// restarts on its own. The server never embeds it.
//
//	go run ./scripts/ferretdb -addr 127.0.0.1:27017 -dir /tmp/moim-store
//	MOIM_MONGO_URI=mongodb://127.0.0.1:27017/moim …
//
// It prints "ready mongodb://ADDR/" on stdout once it accepts connections
// and stops on SIGINT or SIGTERM. The data lives in -dir and survives a
// restart with the same -dir.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("ferretdb", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:27017", "TCP address to accept MongoDB wire-protocol clients on")
	dir := fs.String("dir", "./ferretdb-data", "directory of the SQLite files (one per database)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	abs, err := filepath.Abs(*dir)
	if err == nil {
		err = os.MkdirAll(abs, 0o755)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: -dir: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		Logger:    log,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	// Run listens in the background; say ready once a client can connect.
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", *addr, time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
			return 1
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "ferretdb: %s not accepting after 15s\n", *addr)
			return 1
		}
	}
	fmt.Printf("ready mongodb://%s/\n", *addr)
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		return 1
	}
	return 0
}
