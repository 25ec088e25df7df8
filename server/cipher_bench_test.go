package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// BenchmarkSSHCipher moves data over one SSH channel between x/crypto's
// client and server on the loopback, for each cipher (and MAC) a client
// may negotiate with pigp: both ends' cost, in Go.
func BenchmarkSSHCipher(b *testing.B) {
	for _, c := range []struct{ name, cipher, mac string }{
		{"chacha20-poly1305", ssh.CipherChaCha20Poly1305, ""},
		{"aes128-gcm", ssh.CipherAES128GCM, ""},
		{"aes256-gcm", ssh.CipherAES256GCM, ""},
		{"aes128-ctr+hmac-sha2-256-etm", ssh.CipherAES128CTR, ssh.HMACSHA256ETM},
		{"aes128-ctr+hmac-sha2-256", ssh.CipherAES128CTR, ssh.HMACSHA256},
	} {
		b.Run(c.name, func(b *testing.B) { benchCipher(b, c.cipher, c.mac) })
	}
}

func benchCipher(b *testing.B, cipher, mac string) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	srvCfg := &ssh.ServerConfig{NoClientAuth: true, Config: ssh.Config{Ciphers: Ciphers, MACs: MACs}}
	srvCfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		_, chans, reqs, err := ssh.NewServerConn(nc, srvCfg)
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		for nch := range chans {
			ch, creqs, _ := nch.Accept()
			go ssh.DiscardRequests(creqs)
			go func() { io.Copy(io.Discard, ch); ch.Close() }()
		}
	}()
	cc := ssh.Config{Ciphers: []string{cipher}}
	if mac != "" {
		cc.MACs = []string{mac}
	}
	client, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{Config: cc, User: "x", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		b.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ch.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	ch.CloseWrite()
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	// CPU seconds per GiB, both ends: meaningful on a busy machine, unlike MB/s.
	b.ReportMetric(cpu.Seconds()/(float64(b.N)*float64(len(buf))/(1<<30)), "cpu-s/GiB")
}
