package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"
)

// healthcheckFlag makes the binary probe a running node's /healthz and
// exit 0 (healthy) or 1, so a container image with no shell or curl
// (distroless) still has a HEALTHCHECK. It reads the same settings as the
// node, so the probe follows MOIM_ADDR.
const healthcheckFlag = "-healthcheck"

// runHealthcheck is run for `moim -healthcheck [flags]`.
func runHealthcheck(args []string, getenv func(string) string, stderr io.Writer) int {
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == healthcheckFlag })
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "moim healthcheck:", err)
		return 1
	}
	if err := probe(probeURL(cfg.Addr), 3*time.Second); err != nil {
		fmt.Fprintln(stderr, "moim healthcheck:", err)
		return 1
	}
	return 0
}

// probeURL is /healthz on the node's own port, over loopback when the
// node listens on every interface.
func probeURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "", "8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}

func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
