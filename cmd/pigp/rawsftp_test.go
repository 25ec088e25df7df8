package main

import (
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp/internal/sftptest"
)

// newRawSFTP opens an sftp session on client driven packet by packet
// (internal/sftptest.Raw), for what pkg/sftp's client cannot send or does
// not show: the text of status messages (what WinSCP, paramiko and others
// show to users), offsets of 2^63 or more. The INIT exchange is done.
func newRawSFTP(t *testing.T, client *ssh.Client) *sftptest.Raw {
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
	r := sftptest.NewRaw(t, in, out)
	r.Init()
	return r
}
