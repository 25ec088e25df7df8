package web

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// client is what the portal knows of the browser behind a request: its
// address and whether it reached the portal over HTTPS. Behind a trusted
// reverse proxy both come from the proxy's headers; otherwise from the
// connection itself.
type client struct {
	ip     string
	secure bool
}

type clientKey struct{}

// trusted reports whether addr is one of the configured proxies.
func (s *Server) trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range s.Config.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// withClient resolves the request's client once, for every handler, the
// logs and the audit trail.
func (s *Server) withClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.resolveClient(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	})
}

// resolveClient applies the trusted proxies. Only a request whose peer is
// a trusted proxy has its headers read: X-Forwarded-For (or, without it,
// Forwarded's for=), walked from the right, skipping trusted proxies; the
// first address that is not one is the client (addresses further left
// were written by the client itself and prove nothing). X-Forwarded-Proto
// (or Forwarded's proto=) says whether the browser used HTTPS. A header
// that cannot be read leaves the proxy's own address: never a guess.
func (s *Server) resolveClient(r *http.Request) client {
	peer := peerIP(r)
	c := client{ip: peer, secure: r.TLS != nil}
	addr, err := netip.ParseAddr(peer)
	if err != nil || len(s.Config.TrustedProxies) == 0 || !s.trusted(addr) {
		return c
	}
	var hops []string
	var proto string
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, v := range xff {
			for _, h := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
		proto = lastValue(r.Header.Values("X-Forwarded-Proto"))
	} else if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		hops, proto = parseForwarded(fwd)
	} else {
		proto = lastValue(r.Header.Values("X-Forwarded-Proto"))
	}
	switch strings.ToLower(proto) {
	case "https":
		c.secure = true
	case "http":
		c.secure = false
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := hopAddr(hops[i])
		if !ok {
			break // unreadable: keep the last trusted address
		}
		c.ip = a.String()
		if !s.trusted(a) {
			break
		}
	}
	return c
}

// lastValue returns the right-most of the comma-separated values (the one
// the nearest proxy wrote).
func lastValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// parseForwarded returns the for= of each element of RFC 7239 Forwarded
// headers, in order, and the last proto=.
func parseForwarded(values []string) (hops []string, proto string) {
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok {
					continue
				}
				val = strings.Trim(strings.TrimSpace(val), `"`)
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "for":
					hops = append(hops, val)
				case "proto":
					proto = val
				}
			}
		}
	}
	return hops, proto
}

// hopAddr reads one address of a forwarding header: "192.0.2.1",
// "192.0.2.1:4711", "2001:db8::1", "[2001:db8::1]:4711". Obfuscated
// identifiers ("unknown", "_hidden") are not addresses.
func hopAddr(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// peerIP returns the address of the connection's peer.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func clientOf(r *http.Request) (client, bool) {
	c, ok := r.Context().Value(clientKey{}).(client)
	return c, ok
}

// clientIP returns the browser's address: the connection's peer, or the
// address a trusted proxy forwarded.
func clientIP(r *http.Request) string {
	if c, ok := clientOf(r); ok {
		return c.ip
	}
	return peerIP(r)
}

// requestSecure reports whether the browser reached the portal over HTTPS:
// the portal's own TLS, or a trusted proxy's X-Forwarded-Proto: https.
func requestSecure(r *http.Request) bool {
	if c, ok := clientOf(r); ok {
		return c.secure
	}
	return r.TLS != nil
}
