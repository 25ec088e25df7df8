package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
)

// cli runs a pigp command against e's database and returns its output.
func (e *env) cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string {
		switch k {
		case "PIGP_DATA_DIR":
			return e.app.Config.DataDir
		case "PIGP_DATABASE_URL":
			return e.app.Config.DatabaseURL
		case "USER":
			return "operateur-test"
		}
		return ""
	}}
	code := m.Run(context.Background(), args)
	return code, out.String()
}

// dialFrom opens an SSH connection from a chosen loopback address (Linux
// routes all of 127.0.0.0/8 to lo), so that tests can play several clients.
func (e *env) dialFrom(src, login string, auth ...ssh.AuthMethod) (*ssh.Client, string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", e.addr)
	if err != nil {
		return nil, "", err
	}
	var banner strings.Builder
	cfg := &ssh.ClientConfig{User: login, Auth: auth, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
		BannerCallback: func(m string) error { banner.WriteString(m); return nil }}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c, chans, reqs, err := ssh.NewClientConn(nc, e.addr, cfg)
	if err != nil {
		nc.Close()
		return nil, banner.String(), err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), banner.String(), nil
}

// audit returns the audit rows, checking that the chain is intact.
func (e *env) audit(t *testing.T) []*pigp.AuditEvent {
	t.Helper()
	ctx := context.Background()
	rep, err := e.app.DB.VerifyAudit(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("audit chain: %v %+v", err, rep)
	}
	evs, err := e.app.DB.ListAudit(ctx, pigp.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// countAudit counts rows with the action and outcome matching pred.
func countAudit(evs []*pigp.AuditEvent, pred func(e *pigp.AuditEvent) bool) int {
	n := 0
	for _, e := range evs {
		if pred(e) {
			n++
		}
	}
	return n
}
