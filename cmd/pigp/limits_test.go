package main

import (
	"encoding/binary"
	"strings"
	"testing"
)

// TestLimitsExtension checks that the server advertises and answers
// limits@openssh.com, which lets OpenSSH clients send 255 KiB writes.
func TestLimitsExtension(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	_, conn := e.dialSFTP("alice-xt", e.alice)
	s, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, _ := s.StdoutPipe()
	out, _ := s.StdinPipe()
	if err := s.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	r := &rawSFTP{t: t, in: in, out: out}
	r.send(1, u32(3))
	typ, body := r.recv()
	if typ != 2 || !strings.Contains(string(body), "limits@openssh.com") {
		t.Fatalf("VERSION reply %d %q does not advertise limits@openssh.com", typ, body)
	}
	r.send(200, u32(7), str("limits@openssh.com"))
	typ, body = r.recv()
	if typ != 201 || binary.BigEndian.Uint32(body[:4]) != 7 || len(body) != 4+32 {
		t.Fatalf("limits reply type %d body %x", typ, body)
	}
	maxPacket := binary.BigEndian.Uint64(body[4:12])
	read := binary.BigEndian.Uint64(body[12:20])
	write := binary.BigEndian.Uint64(body[20:28])
	if maxPacket != 256*1024 || read != 255*1024 || write != 255*1024 {
		t.Fatalf("limits: packet %d read %d write %d", maxPacket, read, write)
	}
	// The session goes on normally after the limits exchange.
	if code, msg := r.open("/depot/notes.txt", 0x1a); code != 3 || !strings.Contains(msg, "extension") {
		t.Fatalf("open after limits: %d %q", code, msg)
	}
}
