package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/ssh"
)

// rawSFTP speaks just enough SFTP v3 to read the status message the server
// sends: pkg/sftp's client turns status codes into os errors and drops the
// text, yet the text is what WinSCP, paramiko and others show to users.
type rawSFTP struct {
	t   *testing.T
	in  io.Reader
	out io.WriteCloser
	id  uint32
}

func newRawSFTP(t *testing.T, client *ssh.Client) *rawSFTP {
	t.Helper()
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	in, _ := s.StdoutPipe()
	out, _ := s.StdinPipe()
	if err := s.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	r := &rawSFTP{t: t, in: in, out: out}
	r.send(1, u32(3)) // SSH_FXP_INIT, version 3
	if typ, _ := r.recv(); typ != 2 {
		t.Fatalf("expected SSH_FXP_VERSION, got %d", typ)
	}
	return r
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func str(s string) []byte { return append(u32(uint32(len(s))), s...) }

func (r *rawSFTP) send(typ byte, body ...[]byte) {
	var payload []byte
	payload = append(payload, typ)
	for _, b := range body {
		payload = append(payload, b...)
	}
	if _, err := r.out.Write(append(u32(uint32(len(payload))), payload...)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawSFTP) recv() (byte, []byte) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.in, hdr[:]); err != nil {
		r.t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(r.in, buf); err != nil {
		r.t.Fatal(err)
	}
	return buf[0], buf[1:]
}

// status reads a reply and returns its status code and message; a handle
// reply gives code 0 and "handle".
func (r *rawSFTP) status() (uint32, string) {
	typ, b := r.recv()
	switch typ {
	case 102: // SSH_FXP_HANDLE
		return 0, "handle"
	case 101: // SSH_FXP_STATUS: id, code, message, language
		code := binary.BigEndian.Uint32(b[4:8])
		n := binary.BigEndian.Uint32(b[8:12])
		return code, string(b[12 : 12+n])
	}
	r.t.Fatalf("unexpected reply type %d", typ)
	return 0, ""
}

// open sends SSH_FXP_OPEN with the given pflags (WRITE|CREAT|TRUNC = 0x1a).
func (r *rawSFTP) open(path string, pflags uint32) (uint32, string) {
	r.id++
	r.send(3, u32(r.id), str(path), u32(pflags), u32(0))
	return r.status()
}

// remove sends SSH_FXP_REMOVE.
func (r *rawSFTP) remove(path string) (uint32, string) {
	r.id++
	r.send(13, u32(r.id), str(path))
	return r.status()
}

func (r *rawSFTP) String() string { return fmt.Sprintf("rawSFTP(id=%d)", r.id) }
