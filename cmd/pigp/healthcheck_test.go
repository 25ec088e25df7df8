package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp/config"
)

func TestLoopback(t *testing.T) {
	for in, want := range map[string]string{
		":8080": "127.0.0.1:8080", "0.0.0.0:2222": "127.0.0.1:2222", "[::]:8443": "127.0.0.1:8443",
		"10.1.2.3:8080": "10.1.2.3:8080", "[::1]:9090": "[::1]:9090", "localhost:8080": "localhost:8080",
	} {
		if got, err := loopback(in); err != nil || got != want {
			t.Errorf("loopback(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := loopback("8080"); err == nil {
		t.Error("loopback accepted an address without a port")
	}
}

// healthcheck runs `pigp healthcheck` with the given environment.
func healthcheck(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	m := &Main{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	code := m.Run(context.Background(), append([]string{"healthcheck", "--timeout", "10s"}, args...))
	return code, out.String(), errOut.String()
}

// TestServePortalOff runs `pigp serve` with http_listen off, which used to
// fail ("listen on off"): SFTP serves, the health check checks the banner
// only, and says why it cannot check the portal.
func TestServePortalOff(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"PIGP_DATA_DIR": dir, "PIGP_SFTP_LISTEN": "127.0.0.1:0", "PIGP_HTTP_LISTEN": "off",
		"PIGP_LOG_FORMAT": "json", "PIGP_SHUTDOWN_TIMEOUT": "5s"}
	logs := &lockedBuffer{}
	m := &Main{Stdout: logs, Stderr: logs, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"serve"}) }()
	var addr string
	for deadline := time.Now().Add(time.Minute); addr == ""; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-done:
			t.Fatalf("serve with http_listen off exited %d:\n%s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs.String())
		}
		addr = listenAddrs(logs.String())["sftp"]
	}
	if strings.Contains(logs.String(), "portal listening") {
		t.Fatal("the portal started although http_listen is off")
	}
	check := map[string]string{"PIGP_SFTP_LISTEN": addr, "PIGP_HTTP_LISTEN": "off"}
	if code, _, errOut := healthcheck(t, check); code != 1 || !strings.Contains(errOut, "portal is disabled") {
		t.Fatalf("healthcheck without --sftp and without portal: %d %q", code, errOut)
	}
	if code, out, errOut := healthcheck(t, check, "--sftp"); code != 0 || !strings.Contains(out, "SSH-2.0-pigp") {
		t.Fatalf("healthcheck --sftp: %d %q %q", code, out, errOut)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d after the signal:\n%s", code, logs.String())
	}
	if code, _, errOut := healthcheck(t, check, "--sftp"); code != 1 || !strings.Contains(errOut, "sftp not ready on "+addr) {
		t.Fatalf("healthcheck --sftp after stop: %d %q", code, errOut)
	}
}

// TestHealthcheckNotReady: with the portal up but the database gone,
// /readyz answers 503 and the health check fails with that reason.
func TestHealthcheckNotReady(t *testing.T) {
	e, base := startWebEnv(t, "sqlite")
	check := map[string]string{"PIGP_DATA_DIR": e.app.Config.DataDir, "PIGP_HTTP_LISTEN": strings.TrimPrefix(base, "http://"),
		"PIGP_SFTP_LISTEN": e.addr}
	if code, out, errOut := healthcheck(t, check, "--sftp"); code != 0 || !strings.Contains(out, "/readyz ready") {
		t.Fatalf("healthcheck: %d %q %q", code, out, errOut)
	}
	if code, out, _ := healthcheck(t, map[string]string{"PIGP_HTTP_LISTEN": "off"}, "--url", base+"/readyz"); code != 0 {
		t.Fatalf("healthcheck --url: %d %q", code, out)
	}
	e.app.DB.Close()
	code, _, errOut := healthcheck(t, check)
	if code != 1 || !strings.Contains(errOut, "503") || !strings.Contains(errOut, "database unavailable") {
		t.Fatalf("healthcheck with the database closed: %d %q", code, errOut)
	}
}

// TestHealthcheckBehindProxyProtocol: when the loopback is a trusted
// balancer (proxy_protocol.trusted), the node waits for a PROXY header on
// every loopback connection; `pigp healthcheck --sftp` sends a PROXY v2
// LOCAL header and gets the banner.
func TestHealthcheckBehindProxyProtocol(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) {
		c.ProxyProtocol.Trusted = []string{"127.0.0.1/32"}
		c.ProxyProtocol.HeaderTimeout = config.Duration(3 * time.Second)
	})
	check := map[string]string{"PIGP_SFTP_LISTEN": e.addr, "PIGP_HTTP_LISTEN": "off", "PIGP_PROXY_PROTOCOL_TRUSTED": "127.0.0.1/32"}
	if code, out, errOut := healthcheck(t, check, "--sftp"); code != 0 || !strings.Contains(out, "SSH-2.0-pigp") {
		t.Fatalf("healthcheck --sftp behind the PROXY protocol: %d %q %q", code, out, errOut)
	}
	// Without the setting, the check sends no header and the node, which
	// requires one from the loopback, closes the connection.
	delete(check, "PIGP_PROXY_PROTOCOL_TRUSTED")
	if code, _, errOut := healthcheck(t, check, "--sftp"); code != 1 || !strings.Contains(errOut, "sftp not ready") {
		t.Fatalf("healthcheck --sftp without the header: %d %q", code, errOut)
	}
}
