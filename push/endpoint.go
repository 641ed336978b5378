package push

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// maxEndpoint bounds a subscription's endpoint URL; browsers' push
// services hand out a few hundred bytes.
const maxEndpoint = 2048

// errEndpoint is an endpoint this server will not post to.
var errEndpoint = errors.New("push: endpoint refused")

// sharedAddress is 100.64.0.0/10 (carrier-grade NAT), private in all but name.
var sharedAddress = netip.MustParsePrefix("100.64.0.0/10")

// public reports whether ip is an address on the internet, where push
// services live: never loopback, private, link-local, multicast or
// unspecified, so a subscription cannot make the server post into its own
// network (SSRF).
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && !ip.IsLoopback() && !ip.IsPrivate() && !ip.IsLinkLocalUnicast() &&
		!ip.IsLinkLocalMulticast() && !ip.IsInterfaceLocalMulticast() && !ip.IsMulticast() &&
		!ip.IsUnspecified() && !sharedAddress.Contains(ip)
}

// allowed reports whether the sender may connect to ip: a public address,
// or loopback when loopback is allowed (tests with a local push service).
func allowed(ip netip.Addr, loopback bool) bool {
	return public(ip) || loopback && ip.Unmap().IsLoopback()
}

// CheckEndpoint refuses endpoints the server must not post to: anything
// but https, or plain http to a loopback address when loopback is allowed
// (tests only); an address literal that is not public; user info.
// Names are checked again at every connection, against what they resolve
// to then (the dialer's guard).
func CheckEndpoint(raw string, loopback bool) error {
	if len(raw) > maxEndpoint {
		return fmt.Errorf("%w: longer than %d bytes", errEndpoint, maxEndpoint)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%w: not an absolute URL without credentials", errEndpoint)
	}
	host := u.Hostname()
	ip, perr := netip.ParseAddr(host)
	isIP := perr == nil
	local := strings.EqualFold(host, "localhost") || isIP && ip.Unmap().IsLoopback()
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback && local:
	default:
		return fmt.Errorf("%w: must be https", errEndpoint)
	}
	if local && !loopback || isIP && !allowed(ip, loopback) {
		return fmt.Errorf("%w: not a public address", errEndpoint)
	}
	return nil
}

// newClient is the HTTP client deliveries use: no proxy from the
// environment, no redirects, and a dialer that refuses every address
// allowed would refuse, whatever a name resolved to.
func newClient(timeout time.Duration, loopback bool) *http.Client {
	d := &net.Dialer{
		Timeout: timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !allowed(ap.Addr(), loopback) {
				return fmt.Errorf("%w: %s is not a public address", errEndpoint, address)
			}
			return nil
		},
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			TLSHandshakeTimeout: timeout,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
