package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/pigp/pigp/config"
)

type healthcheckCommand struct{}

// Run checks that the local node is ready: its portal's /readyz answers
// 200 (the database answers) and, with --sftp, its SSH listener sends an
// SSH identification line. It is the container image's HEALTHCHECK: it
// needs nothing but the binary and reads the same configuration as
// `pigp serve` (file and environment), opening no database itself.
func (healthcheckCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("healthcheck")
	var cf configFlags
	cf.register(fs, false)
	rawURL := fs.String("url", "", "readiness URL (default: /readyz on http_listen, over the loopback)")
	checkSFTP := fs.Bool("sftp", false, "also check the SSH banner on sftp_listen")
	timeout := fs.Duration("timeout", 5*time.Second, "time allowed for each check")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: pigp healthcheck [--sftp] [--url URL] [--timeout 5s] [--config FILE]")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	u := *rawURL
	if u == "" && c.HTTPListen != "" {
		scheme := "http"
		if c.TLSCert != "" {
			scheme = "https"
		}
		addr, err := loopback(c.HTTPListen)
		if err != nil {
			return fmt.Errorf("http_listen: %w", err)
		}
		u = scheme + "://" + addr + "/readyz"
	}
	if u == "" && !*checkSFTP {
		return errors.New("not checked: the portal is disabled (http_listen off); use --sftp or --url")
	}
	var done []string
	if u != "" {
		if err := checkReady(ctx, u, *timeout); err != nil {
			return fmt.Errorf("not ready: %w", err)
		}
		done = append(done, u+" ready")
	}
	if *checkSFTP {
		addr, err := loopback(c.SFTPListen)
		if err != nil {
			return fmt.Errorf("sftp_listen: %w", err)
		}
		trusted, err := config.ParsePrefixes(c.ProxyProtocol.Trusted)
		if err != nil {
			return fmt.Errorf("proxy_protocol.trusted: %w", err)
		}
		banner, err := checkBanner(ctx, addr, trusted, *timeout)
		if err != nil {
			return fmt.Errorf("sftp not ready on %s: %w", addr, err)
		}
		done = append(done, "sftp "+addr+" "+banner)
	}
	fmt.Fprintln(m.Stdout, "ok: "+strings.Join(done, "; "))
	return nil
}

// loopback returns the address at which this machine reaches a listener
// bound to listen: an unspecified host (":8080", "0.0.0.0:8080",
// "[::]:8080") is reached on 127.0.0.1.
func loopback(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// checkReady GETs u and wants a 200.
func checkReady(ctx context.Context, u string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		Transport: &http.Transport{
			// The check reaches the node over the loopback, where its
			// certificate's name cannot match; it sends nothing secret
			// and only reads the status.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			Proxy:           nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// checkBanner connects to addr and wants an SSH identification line
// (lines of text may come first, RFC 4253 §4.2: pigp's refusals). When
// the check's own address is one of proxy_protocol.trusted (a balancer on
// the same machine), the node waits for a PROXY header before it says
// anything: the check sends a PROXY v2 LOCAL header, the one balancers
// send for their own health checks (the node keeps the connection's
// addresses).
func checkBanner(ctx context.Context, addr string, trusted []netip.Prefix, timeout time.Duration) (string, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if local, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		ip := local.AddrPort().Addr().Unmap()
		for _, p := range trusted {
			if p.Contains(ip) {
				h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
				if _, err := h.WriteTo(conn); err != nil {
					return "", fmt.Errorf("send PROXY header: %w", err)
				}
				break
			}
		}
	}
	r := bufio.NewReaderSize(conn, 512)
	var first string
	for i := 0; i < 10; i++ {
		line, err := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "SSH-2.0-") {
			return line, nil
		}
		if first == "" {
			first = line
		}
		if err != nil {
			break
		}
	}
	if first != "" {
		return "", fmt.Errorf("no SSH banner, the server said %q", first)
	}
	return "", errors.New("no SSH banner")
}
