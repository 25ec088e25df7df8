package server_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp/internal/sftptest"
)

const onlySFTP = "pigp : seul le sous-système sftp est disponible\r\n"

// TestSessionRefusals: a session serves the "sftp" subsystem and nothing
// else: exec and shell are refused with a French line on stderr and exit
// status 1, the other requests (pty, env, X11, another subsystem, a
// second subsystem) are refused, so are port forwardings and other
// channel types; sftp still works on the same connection.
func TestSessionRefusals(t *testing.T) {
	ts := startServer(t, nil)
	client := ts.mustDial(t, "127.0.0.1", "alice-xt")
	for _, req := range []struct {
		typ     string
		payload []byte
	}{
		{"exec", ssh.Marshal(struct{ Command string }{"echo ${ShellId}%ComSpec%"})},
		{"shell", nil},
	} {
		ch, reqs, err := client.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := ch.SendRequest(req.typ, true, req.payload); ok || err != nil {
			t.Errorf("%s: accepted %v, %v", req.typ, ok, err)
		}
		stderr, _ := io.ReadAll(ch.Stderr())
		if string(stderr) != onlySFTP {
			t.Errorf("%s: stderr %q, want %q", req.typ, stderr, onlySFTP)
		}
		if code := exitStatus(t, reqs); code != 1 {
			t.Errorf("%s: exit status %d, want 1", req.typ, code)
		}
		ch.Close()
	}
	if err := mustSession(t, client).Run("id"); err == nil {
		t.Error("exec through ssh.Session accepted")
	}
	s := mustSession(t, client)
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
		t.Error("pty-req accepted")
	}
	if err := s.Setenv("LD_PRELOAD", "/tmp/x.so"); err == nil {
		t.Error("env accepted")
	}
	if ok, _ := s.SendRequest("x11-req", true, nil); ok {
		t.Error("x11-req accepted")
	}
	if err := s.RequestSubsystem("scp"); err == nil {
		t.Error("subsystem scp accepted")
	}
	if ok, _ := s.SendRequest("subsystem", true, []byte{0, 0}); ok {
		t.Error("subsystem with a short payload accepted")
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		t.Fatalf("sftp after the refusals: %v", err)
	}
	if err := s.RequestSubsystem("sftp"); err == nil {
		t.Error("a second sftp subsystem on the channel accepted")
	}
	s.Close()

	_, _, err := client.OpenChannel("direct-tcpip", ssh.Marshal(struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}{"127.0.0.1", 22, "127.0.0.1", 1234}))
	var open *ssh.OpenChannelError
	if !errors.As(err, &open) || open.Reason != ssh.Prohibited || open.Message != "seul le sous-système sftp est disponible" {
		t.Errorf("direct-tcpip: %v", err)
	}
	if _, _, err := client.OpenChannel("x11", nil); err == nil {
		t.Error("x11 channel accepted")
	}
	if _, err := client.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("remote forwarding accepted")
	}
	c, err := sftpClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatalf("sftp on the same connection: %v", err)
	}
	c.Close()
}

// TestSFTPSession: the subsystem goes through the packet shim (VERSION
// advertises limits@openssh.com, whose request the shim answers), and the
// session ends with exit status 0 (OpenSSH's scp fails without one);
// the metrics and SessionEnded follow it, with the session named.
func TestSFTPSession(t *testing.T) {
	ts := startServer(t, nil)
	client := ts.mustDial(t, "127.0.0.1", "alice-xt")
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"})); !ok || err != nil {
		t.Fatalf("subsystem sftp: %v, %v", ok, err)
	}
	r := sftptest.NewRaw(t, ch, ch)
	if v := r.Init(); !strings.Contains(string(v), "limits@openssh.com") {
		t.Fatalf("VERSION %q does not advertise limits@openssh.com", v)
	}
	typ, body := r.Request(sftptest.FxpExtended, sftptest.Str("limits@openssh.com"))
	if typ != sftptest.FxpExtendedReply || len(body) != 4+32 ||
		binary.BigEndian.Uint64(body[4:]) != 256<<10 || binary.BigEndian.Uint64(body[12:]) != 255<<10 ||
		binary.BigEndian.Uint64(body[20:]) != 255<<10 || binary.BigEndian.Uint64(body[28:]) != 0 {
		t.Fatalf("limits reply: type %d body %x", typ, body)
	}
	if typ, _ := r.Request(sftptest.FxpRealpath, sftptest.Str(".")); typ != sftptest.FxpName {
		t.Fatalf("realpath after limits: type %d", typ)
	}
	ch.CloseWrite() // the client ends the subsystem
	if code := exitStatus(t, reqs); code != 0 {
		t.Fatalf("end of the sftp session: exit status %d, want 0", code)
	}
	client.Close()
	eventually(t, "session ended", func() bool {
		ts.seen.mu.Lock()
		defer ts.seen.mu.Unlock()
		return len(ts.seen.endedCallers) == 1
	})
	ts.seen.mu.Lock()
	defer ts.seen.mu.Unlock()
	if ts.seen.started != 1 || ts.seen.ended != 1 {
		t.Errorf("metrics: %d started, %d ended", ts.seen.started, ts.seen.ended)
	}
	if c := ts.seen.endedCallers[0]; c.Login != "alice-xt" || !strings.HasPrefix(c.Session, "ssh-") || c.RemoteIP != "127.0.0.1" {
		t.Errorf("SessionEnded(%+v)", c)
	}
}

// TestOversizePacket: a packet beyond the largest accepted ends the
// session; the connection's other sessions go on.
func TestOversizePacket(t *testing.T) {
	ts := startServer(t, nil)
	client := ts.mustDial(t, "127.0.0.1", "alice-xt")
	_, reqs, r := sftpChannel(t, client)
	r.SendRaw(append(sftptest.U32(256<<10+1025), sftptest.FxpWrite))
	if typ, _, err := r.TryRecv(); err == nil {
		t.Fatalf("the session goes on after an oversize packet (reply type %d)", typ)
	}
	exitStatus(t, reqs)
	c, err := sftpClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatalf("another session of the connection: %v", err)
	}
	if !strings.Contains(ts.logs.String(), "sftp packet of 263169 bytes refused") {
		t.Errorf("the refusal is not logged:\n%s", ts.logs.String())
	}
}

// TestOddPackets: a packet of a type SFTP v3 does not define, or whose
// fields are cut short, ends its session (pkg/sftp closes the channel at
// once, without an exit status), never the process or the connection's
// other sessions; an unknown extended
// request is answered "unsupported" and the session goes on.
func TestOddPackets(t *testing.T) {
	ts := startServer(t, nil)
	client := ts.mustDial(t, "127.0.0.1", "alice-xt")
	for _, pkt := range [][]byte{
		{0}, {99}, {150}, {255},
		append([]byte{sftptest.FxpOpen}, sftptest.U32(1)...),                                // no path
		append(append([]byte{sftptest.FxpWrite}, sftptest.U32(2)...), sftptest.Str("h")...), // no offset
	} {
		_, _, r := sftpChannel(t, client)
		r.SendRaw(append(sftptest.U32(uint32(len(pkt))), pkt...))
		if typ, _, err := r.TryRecv(); err == nil {
			t.Errorf("packet %x: the session goes on (reply type %d)", pkt, typ)
		}
	}
	_, _, r := sftpChannel(t, client)
	code, _ := r.Do(sftptest.FxpExtended, sftptest.Str("nothing@example.com"))
	if code != sftptest.FxOpUnsupported {
		t.Errorf("unknown extended request: status %d, want SSH_FX_OP_UNSUPPORTED", code)
	}
	if typ, _ := r.Request(sftptest.FxpRealpath, sftptest.Str("/")); typ != sftptest.FxpName {
		t.Fatalf("realpath after the unknown extension: type %d", typ)
	}
}

func ipOf(i int) string { return fmt.Sprintf("127.0.0.%d", i) }

func mustSession(t *testing.T, c *ssh.Client) *ssh.Session {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
