package sftptest

import (
	"encoding/binary"
	"io"
	"testing"
)

// SFTP v3 packet types (draft-ietf-secsh-filexfer-02).
const (
	FxpInit          = 1
	FxpVersion       = 2
	FxpOpen          = 3
	FxpClose         = 4
	FxpRead          = 5
	FxpWrite         = 6
	FxpLstat         = 7
	FxpFstat         = 8
	FxpSetstat       = 9
	FxpFsetstat      = 10
	FxpOpendir       = 11
	FxpReaddir       = 12
	FxpRemove        = 13
	FxpMkdir         = 14
	FxpRmdir         = 15
	FxpRealpath      = 16
	FxpStat          = 17
	FxpRename        = 18
	FxpReadlink      = 19
	FxpSymlink       = 20
	FxpStatus        = 101
	FxpHandle        = 102
	FxpData          = 103
	FxpName          = 104
	FxpAttrs         = 105
	FxpExtended      = 200
	FxpExtendedReply = 201
)

// SFTP status codes.
const (
	FxOK               = 0
	FxEOF              = 1
	FxNoSuchFile       = 2
	FxPermissionDenied = 3
	FxFailure          = 4
	FxBadMessage       = 5
	FxOpUnsupported    = 8
)

// Open flags (pflags) of SSH_FXP_OPEN.
const (
	FlagRead   = 0x01
	FlagWrite  = 0x02
	FlagAppend = 0x04
	FlagCreat  = 0x08
	FlagTrunc  = 0x10
	FlagExcl   = 0x20
)

// Attribute flags of SSH_FXP_SETSTAT and SSH_FXP_FSETSTAT.
const (
	AttrSize      = 0x01
	AttrPerms     = 0x04
	AttrACModTime = 0x08
)

// Raw speaks SFTP v3 packet by packet, for what pkg/sftp's client cannot
// send or does not show: the text of status messages (the French
// refusals WinSCP, paramiko and others display), offsets and sizes of
// 2^63 or more, odd packet types. Every failure to read or write a packet
// fails the test.
type Raw struct {
	tb  testing.TB
	in  io.Reader
	out io.Writer
	id  uint32
}

// NewRaw returns a raw SFTP client reading the server's packets from in
// and writing its own to out. It sends nothing: call Init first unless
// the test is about what comes before it.
func NewRaw(tb testing.TB, in io.Reader, out io.Writer) *Raw {
	return &Raw{tb: tb, in: in, out: out}
}

// U32 encodes v as an SFTP uint32.
func U32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// U64 encodes v as an SFTP uint64.
func U64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// Str encodes s as an SFTP string.
func Str(s string) []byte { return append(U32(uint32(len(s))), s...) }

// NextID returns a new request id.
func (r *Raw) NextID() uint32 {
	r.id++
	return r.id
}

// Init sends SSH_FXP_INIT (version 3) and returns the body of the
// server's SSH_FXP_VERSION: the version, then the extension pairs.
func (r *Raw) Init() []byte {
	r.tb.Helper()
	r.Send(FxpInit, U32(3))
	typ, body := r.Recv()
	if typ != FxpVersion {
		r.tb.Fatalf("reply to SSH_FXP_INIT: type %d, want SSH_FXP_VERSION", typ)
	}
	return body
}

// Send writes one packet of type typ whose body is the concatenation of
// body.
func (r *Raw) Send(typ byte, body ...[]byte) {
	r.tb.Helper()
	payload := []byte{typ}
	for _, b := range body {
		payload = append(payload, b...)
	}
	r.SendRaw(append(U32(uint32(len(payload))), payload...))
}

// SendRaw writes b as is: a packet whose length prefix may lie.
func (r *Raw) SendRaw(b []byte) {
	r.tb.Helper()
	if _, err := r.out.Write(b); err != nil {
		r.tb.Fatalf("send packet: %v", err)
	}
}

// Recv reads one packet and returns its type and body.
func (r *Raw) Recv() (byte, []byte) {
	r.tb.Helper()
	typ, body, err := r.TryRecv()
	if err != nil {
		r.tb.Fatalf("receive packet: %v", err)
	}
	return typ, body
}

// TryRecv reads one packet, or returns the error that ended the stream.
func (r *Raw) TryRecv() (byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.in, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > 1<<20 {
		r.tb.Fatalf("server packet of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.in, buf); err != nil {
		return 0, nil, err
	}
	return buf[0], buf[1:], nil
}

// Status reads a reply that must be SSH_FXP_STATUS and returns its code
// and message.
func (r *Raw) Status() (uint32, string) {
	r.tb.Helper()
	typ, b := r.Recv()
	if typ != FxpStatus {
		r.tb.Fatalf("reply type %d, want SSH_FXP_STATUS", typ)
	}
	return parseStatus(r.tb, b)
}

func parseStatus(tb testing.TB, b []byte) (uint32, string) {
	tb.Helper()
	if len(b) < 12 {
		tb.Fatalf("short SSH_FXP_STATUS %x", b)
	}
	code := binary.BigEndian.Uint32(b[4:8])
	n := binary.BigEndian.Uint32(b[8:12])
	if uint32(len(b)-12) < n {
		tb.Fatalf("SSH_FXP_STATUS message of %d bytes in %d", n, len(b)-12)
	}
	return code, string(b[12 : 12+n])
}

// HandleOrStatus reads a reply that is SSH_FXP_HANDLE (the handle, code
// FxOK) or SSH_FXP_STATUS (no handle, its code and message).
func (r *Raw) HandleOrStatus() (string, uint32, string) {
	r.tb.Helper()
	typ, b := r.Recv()
	switch typ {
	case FxpHandle:
		n := binary.BigEndian.Uint32(b[4:8])
		return string(b[8 : 8+n]), FxOK, ""
	case FxpStatus:
		code, msg := parseStatus(r.tb, b)
		return "", code, msg
	}
	r.tb.Fatalf("reply type %d, want SSH_FXP_HANDLE or SSH_FXP_STATUS", typ)
	return "", 0, ""
}

// Open sends SSH_FXP_OPEN with pflags and no attributes.
func (r *Raw) Open(path string, pflags uint32) (handle string, code uint32, msg string) {
	r.tb.Helper()
	r.Send(FxpOpen, U32(r.NextID()), Str(path), U32(pflags), U32(0))
	return r.HandleOrStatus()
}

// Opendir sends SSH_FXP_OPENDIR.
func (r *Raw) Opendir(path string) (handle string, code uint32, msg string) {
	r.tb.Helper()
	r.Send(FxpOpendir, U32(r.NextID()), Str(path))
	return r.HandleOrStatus()
}

// Close sends SSH_FXP_CLOSE.
func (r *Raw) Close(handle string) (uint32, string) {
	r.tb.Helper()
	r.Send(FxpClose, U32(r.NextID()), Str(handle))
	return r.Status()
}

// Write sends SSH_FXP_WRITE.
func (r *Raw) Write(handle string, off uint64, data []byte) (uint32, string) {
	r.tb.Helper()
	r.Send(FxpWrite, U32(r.NextID()), Str(handle), U64(off), Str(string(data)))
	return r.Status()
}

// Read sends SSH_FXP_READ and returns the data, or the status.
func (r *Raw) Read(handle string, off uint64, n uint32) ([]byte, uint32, string) {
	r.tb.Helper()
	r.Send(FxpRead, U32(r.NextID()), Str(handle), U64(off), U32(n))
	typ, b := r.Recv()
	switch typ {
	case FxpData:
		l := binary.BigEndian.Uint32(b[4:8])
		return b[8 : 8+l], FxOK, ""
	case FxpStatus:
		code, msg := parseStatus(r.tb, b)
		return nil, code, msg
	}
	r.tb.Fatalf("reply type %d, want SSH_FXP_DATA or SSH_FXP_STATUS", typ)
	return nil, 0, ""
}

// FsetstatSize sends SSH_FXP_FSETSTAT with only a size.
func (r *Raw) FsetstatSize(handle string, size uint64) (uint32, string) {
	r.tb.Helper()
	r.Send(FxpFsetstat, U32(r.NextID()), Str(handle), U32(AttrSize), U64(size))
	return r.Status()
}

// SetstatSize sends SSH_FXP_SETSTAT (by path) with only a size.
func (r *Raw) SetstatSize(path string, size uint64) (uint32, string) {
	r.tb.Helper()
	r.Send(FxpSetstat, U32(r.NextID()), Str(path), U32(AttrSize), U64(size))
	return r.Status()
}

// Remove sends SSH_FXP_REMOVE.
func (r *Raw) Remove(path string) (uint32, string) {
	r.tb.Helper()
	r.Send(FxpRemove, U32(r.NextID()), Str(path))
	return r.Status()
}

// Rename sends SSH_FXP_RENAME.
func (r *Raw) Rename(from, to string) (uint32, string) {
	r.tb.Helper()
	r.Send(FxpRename, U32(r.NextID()), Str(from), Str(to))
	return r.Status()
}

// Request sends a request of type typ (a new id, then args) and returns
// the reply's type and body.
func (r *Raw) Request(typ byte, args ...[]byte) (byte, []byte) {
	r.tb.Helper()
	r.Send(typ, append([][]byte{U32(r.NextID())}, args...)...)
	return r.Recv()
}

// Do sends a request of type typ whose reply must be SSH_FXP_STATUS, and
// returns its code and message.
func (r *Raw) Do(typ byte, args ...[]byte) (uint32, string) {
	r.tb.Helper()
	r.Send(typ, append([][]byte{U32(r.NextID())}, args...)...)
	return r.Status()
}
