package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// loopChannel serves the same client bytes over and over and records (or
// discards) what is written, like an SSH channel in a long transfer.
type loopChannel struct {
	in     []byte
	off    int
	writes [][]byte // recorded writes (nil: discard)
	record bool
}

func (l *loopChannel) Read(p []byte) (int, error) {
	if l.off == len(l.in) {
		l.off = 0
	}
	n := copy(p, l.in[l.off:])
	l.off += n
	return n, nil
}

func (l *loopChannel) Write(p []byte) (int, error) {
	if l.record {
		l.writes = append(l.writes, append([]byte(nil), p...))
	}
	return len(p), nil
}

func (l *loopChannel) Close() error { return nil }

// writePacket returns an SSH_FXP_WRITE of n data bytes.
func writePacket(id uint32, n int) []byte {
	b := []byte{0, 0, 0, 0, 6}
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, 4)
	b = append(b, "h001"...)
	b = binary.BigEndian.AppendUint64(b, uint64(id)*uint64(n))
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, bytes.Repeat([]byte{byte(id)}, n)...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// recvLikeSFTP reads one packet the way pkg/sftp's recvPacket does: the
// length, then the rest into the caller's page.
func recvLikeSFTP(r io.Reader, page []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, page[:4]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(page)
	if _, err := io.ReadFull(r, page[:n]); err != nil {
		return nil, err
	}
	return page[:n], nil
}

// TestSFTPConnPackets: packets reach pkg/sftp whole and in order, a
// limits request between them is answered and not passed on, and a reply
// written as header then data leaves as whole packets, the first SSH
// write carrying the header with the data's first bytes.
func TestSFTPConnPackets(t *testing.T) {
	var in []byte
	in = append(in, writePacket(1, 255<<10)...)
	lim := []byte{0, 0, 0, 0, fxpExtended, 0, 0, 0, 9}
	lim = binary.BigEndian.AppendUint32(lim, uint32(len(limitsExtension)))
	lim = append(lim, limitsExtension...)
	binary.BigEndian.PutUint32(lim, uint32(len(lim)-4))
	in = append(in, lim...)
	in = append(in, writePacket(2, 10)...)
	ch := &loopChannel{in: in, record: true}
	c := newSFTPConn(ch, nil)
	c.version = true
	page := make([]byte, 300<<10)
	for _, want := range [][]byte{writePacket(1, 255<<10), writePacket(2, 10)} {
		got, err := recvLikeSFTP(c, page)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[4:]) {
			t.Fatalf("packet of %d bytes, want %d (type %d)", len(got), len(want)-4, want[4])
		}
	}
	if len(ch.writes) != 1 || ch.writes[0][4] != fxpExtendedReply || binary.BigEndian.Uint32(ch.writes[0][5:]) != 9 {
		t.Fatalf("limits reply: %x", ch.writes)
	}
	// Two requests handed on, none answered yet; the limits request,
	// answered here, holds no place.
	if n := len(c.inFlight); n != 2 {
		t.Fatalf("%d requests in flight, want 2", n)
	}

	ch.writes = nil
	data := bytes.Repeat([]byte{7}, 255<<10)
	hdr := binary.BigEndian.AppendUint32([]byte{0, 0, 0, 0, 103, 0, 0, 0, 5}, uint32(len(data)))
	binary.BigEndian.PutUint32(hdr, uint32(len(hdr)-4+len(data)))
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if len(ch.writes) != 2 || len(ch.writes[0]) != coalesce {
		t.Fatalf("%d writes, first of %d bytes; want 2, the first of %d", len(ch.writes), len(ch.writes[0]), coalesce)
	}
	if got := append(ch.writes[0], ch.writes[1]...); !bytes.Equal(got, append(hdr, data...)) {
		t.Fatal("the reply's bytes changed on the way")
	}
	if n := len(c.inFlight); n != 1 {
		t.Fatalf("%d requests in flight after one reply, want 1", n)
	}
}

// TestSFTPConnInFlight: pkg/sftp gets at most maxInFlight requests that
// it has not answered; each reply lets one more through.
func TestSFTPConnInFlight(t *testing.T) {
	var in []byte
	for i := range maxInFlight + 2 {
		in = append(in, writePacket(uint32(i), 100)...)
	}
	c := newSFTPConn(&loopChannel{in: in}, nil)
	c.version = true
	page := make([]byte, 1<<10)
	for range maxInFlight {
		if _, err := recvLikeSFTP(c, page); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan error)
	go func() {
		_, err := recvLikeSFTP(c, page)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("request %d handed on before any reply (%v)", maxInFlight+1, err)
	default:
	}
	reply := binary.BigEndian.AppendUint32([]byte{0, 0, 0, 0, 101}, 0)
	reply = binary.BigEndian.AppendUint32(reply, 0)
	binary.BigEndian.PutUint32(reply, uint32(len(reply)-4))
	if _, err := c.Write(reply); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSFTPConnRead: 255 KiB writes (what OpenSSH sends after
// limits@openssh.com) read through sftpConn the way pkg/sftp reads them,
// with the shared request budget and the read gate of a session.
// Steady state: no allocation per packet.
func BenchmarkSFTPConnRead(b *testing.B) {
	pkt := writePacket(1, 255<<10)
	c := newSFTPConn(&loopChannel{in: pkt}, NewRequestBudget(64, func() {}))
	c.gate = newReadGate(nil, readAhead) // told of every channel read, as in a session
	c.gate.attach()
	page := make([]byte, 300<<10)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := recvLikeSFTP(c, page); err != nil {
			b.Fatal(err)
		}
		c.release() // as the request's reply would
	}
}

// BenchmarkSFTPConnWrite: 255 KiB DATA replies written as pkg/sftp writes
// them (header, then data). Steady state: no allocation per packet.
func BenchmarkSFTPConnWrite(b *testing.B) {
	c := newSFTPConn(&loopChannel{}, NewRequestBudget(64, func() {}))
	c.version = true
	c.acquire() // a request
	data := make([]byte, 255<<10)
	hdr := binary.BigEndian.AppendUint32([]byte{0, 0, 0, 0, 103, 0, 0, 0, 5}, uint32(len(data)))
	binary.BigEndian.PutUint32(hdr, uint32(len(hdr)-4+len(data)))
	b.SetBytes(int64(len(hdr) + len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(hdr); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
		c.acquire() // the next request
	}
}
