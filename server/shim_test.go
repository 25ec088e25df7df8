package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// recorder is a channel that records each Write and serves reads from in.
type recorder struct {
	in     io.Reader
	writes [][]byte
	closed bool
}

func (r *recorder) Read(p []byte) (int, error) { return r.in.Read(p) }
func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, append([]byte(nil), p...))
	return len(p), nil
}
func (r *recorder) Close() error { r.closed = true; return nil }

// packet returns an SFTP packet of type typ with body.
func packet(typ byte, body ...[]byte) []byte {
	b := []byte{0, 0, 0, 0, typ}
	for _, x := range body {
		b = append(b, x...)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func sftpString(s string) []byte { return append(u32(uint32(len(s))), s...) }

// TestShimWritesWholePackets: whatever pieces pkg/sftp writes a reply in
// (a header, then the data), each packet reaches the channel in one
// write; several packets in one write go out one by one.
func TestShimWritesWholePackets(t *testing.T) {
	ch := &recorder{in: strings.NewReader("")}
	c := newSFTPConn(ch, nil)
	c.version = true // the VERSION reply went out
	status := packet(101, u32(7), u32(0), sftpString("OK"), sftpString(""))
	data := packet(103, u32(8), sftpString(strings.Repeat("x", 1000)))
	for _, pieces := range [][][]byte{
		{status},                              // whole
		{status[:9], status[9:]},              // header, then the rest
		{status[:2], status[2:4], status[4:]}, // even the length split
	} {
		ch.writes = nil
		for _, p := range pieces {
			if n, err := c.Write(p); err != nil || n != len(p) {
				t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
			}
		}
		if len(ch.writes) != 1 || !bytes.Equal(ch.writes[0], status) {
			t.Fatalf("%d pieces went out as %d writes %x, want one of %x", len(pieces), len(ch.writes), ch.writes, status)
		}
	}
	ch.writes = nil
	two := append(append([]byte(nil), status...), data...)
	c.Write(two[:len(status)+3])
	c.Write(two[len(status)+3:])
	if len(ch.writes) != 2 || !bytes.Equal(ch.writes[0], status) || !bytes.Equal(ch.writes[1], data) {
		t.Fatalf("two packets went out as %d writes", len(ch.writes))
	}
	if len(c.pending) != 0 {
		t.Fatalf("%d bytes left pending", len(c.pending))
	}
}

// TestShimVersionAdvertisesLimits: the VERSION reply, however it is
// written, goes out with limits@openssh.com appended to pkg/sftp's
// extensions, and only once.
func TestShimVersionAdvertisesLimits(t *testing.T) {
	ch := &recorder{in: strings.NewReader("")}
	c := newSFTPConn(ch, nil)
	version := packet(fxpVersion, u32(3), sftpString("posix-rename@openssh.com"), sftpString("1"))
	c.Write(version[:5])
	c.Write(version[5:])
	want := packet(fxpVersion, u32(3), sftpString("posix-rename@openssh.com"), sftpString("1"),
		sftpString(limitsExtension), sftpString("1"))
	if len(ch.writes) != 1 || !bytes.Equal(ch.writes[0], want) {
		t.Fatalf("VERSION went out as %q, want %q", ch.writes, want)
	}
	// A later packet of type 2 (it cannot be VERSION) is left alone.
	ch.writes = nil
	other := packet(fxpVersion, u32(1))
	c.Write(other)
	if len(ch.writes) != 1 || !bytes.Equal(ch.writes[0], other) {
		t.Fatalf("later packet went out as %q", ch.writes)
	}
}

// TestShimAnswersLimits: a limits@openssh.com request is answered by the
// shim (id, 256 KiB packets, 255 KiB reads and writes, no handle limit)
// and never reaches pkg/sftp; the packets around it do, byte for byte.
func TestShimAnswersLimits(t *testing.T) {
	before := packet(3, u32(1), sftpString("/depot/x.xml"), u32(0x1a), u32(0))
	limits := packet(fxpExtended, u32(42), sftpString(limitsExtension))
	after := packet(17, u32(2), sftpString("/"))
	ch := &recorder{in: bytes.NewReader(append(append(append([]byte(nil), before...), limits...), after...))}
	c := newSFTPConn(ch, nil)
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte(nil), before...), after...); !bytes.Equal(got, want) {
		t.Fatalf("pkg/sftp read %x, want %x", got, want)
	}
	want := packet(fxpExtendedReply, u32(42), binary.BigEndian.AppendUint64(nil, 256*1024),
		binary.BigEndian.AppendUint64(nil, 255*1024), binary.BigEndian.AppendUint64(nil, 255*1024),
		binary.BigEndian.AppendUint64(nil, 0))
	if len(ch.writes) != 1 || !bytes.Equal(ch.writes[0], want) {
		t.Fatalf("limits reply %x, want %x", ch.writes, want)
	}
}

// TestShimOtherExtended: extended requests that are not exactly
// limits@openssh.com go to pkg/sftp untouched.
func TestShimOtherExtended(t *testing.T) {
	for _, pkt := range [][]byte{
		packet(fxpExtended, u32(1), sftpString("statvfs@openssh.com"), sftpString("/")),
		packet(fxpExtended, u32(1), sftpString("limits@openssh.co")),
		packet(fxpExtended, u32(1), u32(uint32(len(limitsExtension))), []byte("limits@")), // name cut short
		packet(fxpExtended, u32(1)),
		packet(fxpExtended),
	} {
		ch := &recorder{in: bytes.NewReader(pkt)}
		got, err := io.ReadAll(newSFTPConn(ch, nil))
		if err != nil || !bytes.Equal(got, pkt) || len(ch.writes) != 0 {
			t.Errorf("packet %x: pkg/sftp read %x, %v; shim wrote %x", pkt, got, err, ch.writes)
		}
	}
}

// TestShimPacketSizes: a packet of length 0 or beyond maxPacket ends the
// session; one of maxPacket is read whole, even a byte at a time.
func TestShimPacketSizes(t *testing.T) {
	for _, n := range []uint32{0, maxPacket + 1, 1 << 31, 1<<32 - 1} {
		ch := &recorder{in: bytes.NewReader(append(u32(n), make([]byte, 64)...))}
		_, err := io.ReadAll(newSFTPConn(ch, nil))
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("packet of %d bytes: %v, want a refusal", n, err)
		}
	}
	big := packet(6, make([]byte, maxPacket-1))
	ch := &recorder{in: bytes.NewReader(big)}
	c := newSFTPConn(ch, nil)
	var got []byte
	buf := make([]byte, 1)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("read %d bytes of a %d-byte packet", len(got), len(big))
	}
	// A packet cut short ends the session.
	ch = &recorder{in: bytes.NewReader(big[:1000])}
	if _, err := io.ReadAll(newSFTPConn(ch, nil)); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated packet: %v", err)
	}
}

// TestShimNoInterleaving: the limits reply is never written in the middle
// of a packet of pkg/sftp.
func TestShimNoInterleaving(t *testing.T) {
	limits := packet(fxpExtended, u32(1), sftpString(limitsExtension))
	ch := &recorder{in: bytes.NewReader(limits)}
	c := newSFTPConn(ch, nil)
	c.version = true
	c.Write(packet(101, u32(7), u32(0))[:6]) // half a reply
	if _, err := c.Read(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "interleaved") {
		t.Fatalf("limits reply with a partial packet pending: %v", err)
	}
	if len(ch.writes) != 0 {
		t.Fatalf("wrote %x in the middle of a packet", ch.writes)
	}
	c.Close()
	if !ch.closed {
		t.Fatal("Close did not close the channel")
	}
}
