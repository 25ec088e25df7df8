package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyProtocol accepts the PROXY protocol (v1 and v2, as HAProxy's
// send-proxy and send-proxy-v2 write it) from trusted balancers, so that
// the real client address is used everywhere: connection limits per
// address, bans, the login throttle, the audit trail, the histories and
// the logs.
//
//   - A connection from a Trusted address must start with a valid header
//     within HeaderTimeout, or it is closed: behind a balancer, a
//     connection without one would carry the balancer's address and let
//     one attacker's failures ban every client.
//   - A connection from any other address is served as it is, and closed
//     as soon as it turns out to start with a PROXY header: nobody else
//     may choose the address pigp records.
//
// Headers are read in a goroutine per connection, never in the accept
// loop, so a slow balancer connection delays no other client. The SSH
// server speaks first; untrusted connections are only inspected when the
// client's first bytes arrive, so clients that wait for the server's
// version line are not delayed.
type ProxyProtocol struct {
	// Trusted lists the balancers' addresses.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for a trusted connection's header (5 s).
	HeaderTimeout time.Duration
}

// maxPendingHeaders bounds the trusted connections whose header is being
// read at once; beyond, the accept loop waits.
const maxPendingHeaders = 1024

func (p *ProxyProtocol) trusted(a net.Addr) (string, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String(), false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, t := range p.Trusted {
		if t.Contains(ip) {
			return ip.String(), true
		}
	}
	return ip.String(), false
}

// listen wraps ln.
func (p *ProxyProtocol) listen(ln net.Listener, log *slog.Logger) net.Listener {
	timeout := p.HeaderTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	l := &proxyListener{Listener: ln, pp: p, timeout: timeout, log: log, conns: make(chan net.Conn),
		errs: make(chan error), done: make(chan struct{}), pending: make(chan struct{}, maxPendingHeaders)}
	go l.loop()
	return l
}

type proxyListener struct {
	net.Listener
	pp      *ProxyProtocol
	timeout time.Duration
	log     *slog.Logger
	conns   chan net.Conn
	errs    chan error
	done    chan struct{}
	once    sync.Once
	pending chan struct{}
}

func (l *proxyListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *proxyListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// deliver hands c to Accept, or closes it when the listener is closed.
func (l *proxyListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *proxyListener) loop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		peer, ok := l.pp.trusted(c.RemoteAddr())
		if !ok {
			l.deliver(&noHeaderConn{Conn: c, peer: peer, log: l.log})
			continue
		}
		select {
		case l.pending <- struct{}{}:
		case <-l.done:
			c.Close()
			return
		}
		go func() {
			defer func() { <-l.pending }()
			pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(l.timeout))
			// A zero-length read processes the header and reads nothing more.
			if _, err := pc.Read(nil); err != nil {
				l.log.Warn("connection refused: no valid PROXY header from a trusted balancer", "balancer", peer, "error", err)
				c.Close()
				return
			}
			l.log.Debug("proxied connection", "ip", remoteIP(pc.RemoteAddr()), "balancer", peer)
			l.deliver(pc)
		}()
	}
}

// The two PROXY protocol signatures.
var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// errUntrustedHeader ends a connection from an untrusted address that
// starts with a PROXY header.
var errUntrustedHeader = errors.New("PROXY protocol header from an untrusted address")

// noHeaderConn is a connection from an untrusted address: its first bytes
// must not be a PROXY header.
type noHeaderConn struct {
	net.Conn
	peer    string
	log     *slog.Logger
	checked bool
	head    []byte // bytes read while deciding, not yet returned
	err     error
}

func (c *noHeaderConn) Read(b []byte) (int, error) {
	if !c.checked {
		c.check()
	}
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}

// check reads until the first bytes are known not to be either signature.
func (c *noHeaderConn) check() {
	c.checked = true
	buf := make([]byte, 0, len(sigV2))
	for {
		switch {
		case bytes.HasPrefix(buf, sigV1) || bytes.Equal(buf, sigV2):
			c.log.Warn("connection refused: PROXY protocol header from an address not in proxy_protocol.trusted", "ip", c.peer)
			c.err, c.head = errUntrustedHeader, nil
			return
		case !bytes.HasPrefix(sigV1, buf[:min(len(buf), len(sigV1))]) && !bytes.HasPrefix(sigV2, buf):
			c.head = buf
			return
		}
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			c.head, c.err = buf, err
			return
		}
	}
}
