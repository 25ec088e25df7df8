package server

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

func proxyTestListener(t *testing.T, timeout time.Duration) net.Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pp := &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, HeaderTimeout: timeout}
	ln := pp.listen(inner, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dialFrom connects to ln from the local address src (127.0.0.x).
func dialFrom(t *testing.T, ln net.Listener, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// accept returns the next connection the listener delivers (fails after a
// generous deadline).
func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		got <- c
	}()
	select {
	case c, ok := <-got:
		if !ok {
			t.Fatal("accept failed")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no connection delivered")
		return nil
	}
}

func TestProxyProtocolTrustedHeaders(t *testing.T) {
	ln := proxyTestListener(t, 10*time.Second)
	for _, version := range []byte{1, 2} {
		c := dialFrom(t, ln, "127.0.0.1")
		src := &net.TCPAddr{IP: net.ParseIP("192.0.2.77"), Port: 51000 + int(version)}
		h := proxyproto.HeaderProxyFromAddrs(version, src, ln.Addr())
		if _, err := h.WriteTo(c); err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "SSH-2.0-client\r\n")
		sc := accept(t, ln)
		if got := sc.RemoteAddr().String(); got != src.String() {
			t.Fatalf("v%d: remote address %s, want the client's %s", version, got, src)
		}
		buf := make([]byte, 16)
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "SSH-2.0-client\r\n" {
			t.Fatalf("v%d: data after the header: %q, %v", version, buf, err)
		}
	}
}

func TestProxyProtocolTrustedWithoutHeaderRefused(t *testing.T) {
	ln := proxyTestListener(t, 10*time.Second)
	// A trusted balancer's connection without a header is closed...
	c := dialFrom(t, ln, "127.0.0.1")
	io.WriteString(c, "SSH-2.0-client\r\n")
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection without a header: read %d bytes, want it closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection without a header left open")
	}
	// ...and never delivered: the next one, with a header, is.
	c2 := dialFrom(t, ln, "127.0.0.1")
	proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("192.0.2.78"), Port: 1}, ln.Addr()).WriteTo(c2)
	if sc := accept(t, ln); sc.RemoteAddr().String() != "192.0.2.78:1" {
		t.Fatalf("delivered %s, want the proxied connection", sc.RemoteAddr())
	}
}

func TestProxyProtocolHeaderTimeout(t *testing.T) {
	ln := proxyTestListener(t, 300*time.Millisecond)
	c := dialFrom(t, ln, "127.0.0.1") // says nothing
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("silent balancer connection: read data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("silent balancer connection not closed after the header timeout")
	}
}

func TestProxyProtocolSlowHeaderBlocksNobody(t *testing.T) {
	ln := proxyTestListener(t, time.Hour)
	dialFrom(t, ln, "127.0.0.1") // a balancer connection that never sends its header
	c := dialFrom(t, ln, "127.0.0.2")
	sc := accept(t, ln)
	if got := remoteIP(sc.RemoteAddr()); got != "127.0.0.2" {
		t.Fatalf("delivered %s, want 127.0.0.2", got)
	}
	io.WriteString(c, "SSH-2.0-x\r\n")
}

func TestProxyProtocolUntrusted(t *testing.T) {
	ln := proxyTestListener(t, 10*time.Second)
	// Plain data from an untrusted address passes unchanged, even when it
	// begins like a header.
	for _, data := range []string{"SSH-2.0-OpenSSH_9.2\r\n", "PROBLEM\r\n", "\r\n\r\nnot a header"} {
		c := dialFrom(t, ln, "127.0.0.3")
		sc := accept(t, ln)
		if got := remoteIP(sc.RemoteAddr()); got != "127.0.0.3" {
			t.Fatalf("remote %s, want 127.0.0.3", got)
		}
		// Sent in two writes to split the first bytes.
		io.WriteString(c, data[:3])
		time.Sleep(10 * time.Millisecond)
		io.WriteString(c, data[3:])
		buf := make([]byte, len(data))
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != data {
			t.Fatalf("untrusted data %q read as %q, %v", data, buf, err)
		}
	}
	// A PROXY header (v1 or v2) from an untrusted address is refused.
	for _, version := range []byte{1, 2} {
		c := dialFrom(t, ln, "127.0.0.4")
		sc := accept(t, ln)
		proxyproto.HeaderProxyFromAddrs(version, &net.TCPAddr{IP: net.ParseIP("203.0.113.5"), Port: 2}, ln.Addr()).WriteTo(c)
		io.WriteString(c, "SSH-2.0-x\r\n")
		if _, err := io.ReadAll(sc); !errors.Is(err, errUntrustedHeader) {
			t.Fatalf("v%d header from an untrusted address: %v, want refused", version, err)
		}
		if got := remoteIP(sc.RemoteAddr()); got != "127.0.0.4" {
			t.Fatalf("refused connection's address %s, want its own", got)
		}
	}
}
