package vfs_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/pigp/pigp/internal/sftptest"
	"github.com/pigp/pigp/vfs"
)

func TestStagingTarget(t *testing.T) {
	const name = "2026_22940028800010_20261128101500.xml"
	for _, tc := range []struct {
		in, final string
		ok        bool
	}{
		{name + ".filepart", name, true},         // WinSCP
		{name + ".1a2b3c4d.partial", name, true}, // rclone ≥ 1.63
		{".in." + name, name, true},              // lftp xfer:use-temp-file
		{name, "", false},
		{name + ".partial", "", false},          // no rclone hash
		{name + ".1A2B3C4D.partial", "", false}, // rclone writes lower-case hex
		{name + ".1a2b3c.partial", "", false},
		{".filepart", "", false},
		{".in.", "", false},
		{"in." + name, "", false},
	} {
		final, ok := vfs.StagingTarget(tc.in)
		if final != tc.final || ok != tc.ok {
			t.Errorf("StagingTarget(%q) = %q, %v; want %q, %v", tc.in, final, ok, tc.final, tc.ok)
		}
	}
}

const osPut = os.O_WRONLY | os.O_CREATE | os.O_TRUNC

// TestStagingRename: under each client's staging name, an upload is not a
// deposit: not listed, STAT-able with its size, until its rename (or
// posix-rename) to the final name makes it one, content as sent.
func TestStagingRename(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	for i, tc := range []struct {
		client string
		part   func(final string) string
		posix  bool
	}{
		{"WinSCP", func(n string) string { return n + ".filepart" }, false},
		{"rclone", func(n string) string { return n + ".0a1b2c3d.partial" }, true},
		{"lftp", func(n string) string { return ".in." + n }, false},
	} {
		t.Run(tc.client, func(t *testing.T) {
			final := callName(siretA, i)
			part := tc.part(final)
			content := data(200<<10+i, byte(i))
			before := len(e.Deposits(siretA))
			f := upload(t, c, part, osPut, content)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if len(e.Deposits(siretA)) != before {
				t.Fatal("the staging file became a deposit before its rename")
			}
			if fi, err := c.Stat("/depot/" + part); err != nil || fi.Size() != int64(len(content)) {
				t.Fatalf("stat of the staging file: %v, %v", fi, err)
			}
			if infos, _ := c.ReadDir("/depot"); len(infos) != before {
				t.Fatalf("/depot lists %v with the staging file", infos)
			}
			rename := c.Rename
			if tc.posix {
				rename = c.PosixRename
			}
			if err := rename("/depot/"+part, "/depot/"+final); err != nil {
				t.Fatalf("rename: %v", err)
			}
			if n := len(e.Deposits(siretA)); n != before+1 {
				t.Fatalf("after the rename: %d deposits, want %d", n, before+1)
			}
			if d := deposit(t, e, final); d.SHA256 != sftptest.SHA256(content) || d.ClientIP != "192.0.2.10" {
				t.Fatalf("after the rename: %+v", d)
			}
			_, err := c.Stat("/depot/" + part)
			notExist(t, "stat of the renamed staging file", err)
			if fi, err := c.Stat("/depot/" + final); err != nil || fi.Size() != int64(len(content)) {
				t.Fatalf("stat of the deposit: %v, %v", fi, err)
			}
			// WinSCP sets the time after the rename.
			if err := c.Chtimes("/depot/"+final, time.Now(), time.Now()); err != nil {
				t.Fatalf("setstat after the rename: %v", err)
			}
		})
	}
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

// TestStagingRenameRefused: a staging file renamed to another name than
// the one it stands for, or whose name the account may no longer deposit
// at the rename, is refused and dropped; a staging file still being
// written is busy; one that does not exist is not found.
func TestStagingRenameRefused(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	r := e.RawSession(e.CallerA()).Raw

	final := callName(siretA, 1)
	part := final + ".filepart"
	upload(t, c, part, osPut, data(100, 1)).Close()
	code, msg := r.Rename("/depot/"+part, "/depot/"+callName(siretA, 2))
	wantStatus(t, "rename to another name", code, msg, fxDenied,
		"Renommage refusé : le fichier temporaire "+part+" ne peut être renommé qu'en "+final)
	_, err := c.Stat("/depot/" + part)
	notExist(t, "stat after a refused rename", err)
	code, msg = r.Rename("/depot/"+part, "/depot/"+final)
	wantStatus(t, "rename of a dropped staging file", code, msg, fxNoFile, msgNotFound)

	// The name is checked again at the rename that makes it final: the
	// account no longer acts for the SIRET (an operator changed it).
	upload(t, c, part, osPut, data(100, 1)).Close()
	moved := e.CallerA()
	moved.SIRETs = []string{siretB}
	code, msg = e.RawSession(moved).Raw.Rename("/depot/"+part, "/depot/"+final)
	wantStatus(t, "rename after losing the SIRET", code, msg, fxDenied, "…n'est pas habilité pour le SIRET "+siretA)
	_, err = c.Stat("/depot/" + part)
	notExist(t, "stat after a rename refused by name", err)

	// Busy: its handle is open.
	f := upload(t, c, part, osPut, data(100, 1))
	code, msg = r.Rename("/depot/"+part, "/depot/"+final)
	wantStatus(t, "rename of an open staging file", code, msg, fxFailure, "Le fichier temporaire "+part+" est en cours d'envoi")
	f.Close()
	if err := c.Rename("/depot/"+part, "/depot/"+final); err != nil {
		t.Fatalf("rename once closed: %v", err)
	}
	// Out of /depot: refused.
	upload(t, c, part, osPut, data(10, 1)).Close()
	code, msg = r.Rename("/depot/"+part, "/retrait/"+final)
	wantStatus(t, "rename into /retrait", code, msg, fxDenied, msgDenied)

	if n := len(e.Deposits(siretA)); n != 1 {
		t.Fatalf("%d deposits, want the one renamed once closed", n)
	}
}

// TestStagingResume: without TRUNC, an existing staged upload is resumed
// where the client says (WinSCP with CREAT, FileZilla without, and
// APPEND): it ends as one deposit of the whole content. With TRUNC it
// starts again; EXCL refuses it; without CREAT a missing one is not found.
func TestStagingResume(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	content := data(300<<10, 3)
	for i, flags := range []int{os.O_WRONLY | os.O_CREATE, os.O_WRONLY, os.O_WRONLY | os.O_CREATE | os.O_APPEND} {
		final := callName(siretA, i)
		part := final + ".filepart"
		upload(t, c, part, osPut, content[:100<<10]).Close()
		fi, err := c.Stat("/depot/" + part)
		if err != nil || fi.Size() != 100<<10 {
			t.Fatalf("flags %#x: stat before the resume: %v, %v", flags, fi, err)
		}
		f, err := c.OpenFile("/depot/"+part, flags)
		if err != nil {
			t.Fatalf("flags %#x: resume: %v", flags, err)
		}
		if _, err := f.WriteAt(content[fi.Size():], fi.Size()); err != nil {
			t.Fatalf("flags %#x: write: %v", flags, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Rename("/depot/"+part, "/depot/"+final); err != nil {
			t.Fatal(err)
		}
		if d := deposit(t, e, final); d.SHA256 != sftptest.SHA256(content) {
			t.Fatalf("flags %#x: deposit %+v, want the whole content", flags, d)
		}
	}
	// TRUNC starts again.
	final := callName(siretA, 10)
	part := final + ".filepart"
	upload(t, c, part, osPut, data(1000, 1)).Close()
	upload(t, c, part, osPut, []byte("<DemandeAPA/>")).Close()
	if err := c.Rename("/depot/"+part, "/depot/"+final); err != nil {
		t.Fatal(err)
	}
	if d := deposit(t, e, final); d.Size != 13 {
		t.Fatalf("deposit after TRUNC: %+v", d)
	}
	r := e.RawSession(e.CallerA()).Raw
	upload(t, c, part, osPut, data(10, 1)).Close()
	_, code, msg := r.Open("/depot/"+part, flagWrite|flagCreat|flagExcl)
	wantStatus(t, "EXCL of a staged upload", code, msg, fxFailure, "Le fichier "+part+" existe déjà")
	_, code, msg = r.Open("/depot/"+callName(siretA, 11)+".filepart", flagWrite)
	wantStatus(t, "resume of a missing staging file", code, msg, fxNoFile, msgNotFound)
	if tmp := e.TempFiles(); len(tmp) != 1 {
		t.Fatalf("temporary files %v, want the one staged upload", tmp)
	}
}

// TestStagingResumeAfterDrop: a staged upload whose connection drops is
// kept for the account's next session, cut back to what was written
// contiguously from the start; it is resumed from there.
func TestStagingResumeAfterDrop(t *testing.T) {
	e := sftptest.New(t)
	final := callName(siretA, 1)
	part := final + ".filepart"
	content := data(300, 1)
	s := e.RawSession(e.CallerA())
	h, code, msg := s.Raw.Open("/depot/"+part, flagPut)
	if code != fxOK {
		t.Fatalf("open: %d %q", code, msg)
	}
	for _, off := range []int{0, 100, 200} { // [0, 300) contiguous
		if code, msg := s.Raw.Write(h, uint64(off), content[off:off+100]); code != fxOK {
			t.Fatalf("write: %d %q", code, msg)
		}
	}
	if code, msg := s.Raw.Write(h, 1000, data(50, 9)); code != fxOK { // a hole, then more
		t.Fatalf("write: %d %q", code, msg)
	}
	s.Drop()
	c := e.Session(e.CallerA()).Client
	fi, err := c.Stat("/depot/" + part)
	if err != nil || fi.Size() != 300 {
		t.Fatalf("stat after the drop: %v, %v; want the 300 contiguous bytes", fi, err)
	}
	more := data(700, 2)
	f, err := c.OpenFile("/depot/"+part, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(more, 300)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("/depot/"+part, "/depot/"+final); err != nil {
		t.Fatal(err)
	}
	if ds := e.Deposits(siretA); len(ds) != 1 || ds[0].SHA256 != sftptest.SHA256(append(content, more...)) {
		t.Fatalf("deposit after the resume: %+v", ds)
	}
	if len(e.TempFiles()) != 0 {
		t.Fatalf("temporary files %v", e.TempFiles())
	}
}

// TestStagingOverwrittenDropped: a staged upload whose contiguous prefix is
// unknown (bytes written over) when its connection drops cannot be
// resumed safely: it is discarded.
func TestStagingOverwrittenDropped(t *testing.T) {
	e := sftptest.New(t)
	part := callName(siretA, 1) + ".filepart"
	s := e.RawSession(e.CallerA())
	h, _, _ := s.Raw.Open("/depot/"+part, flagPut)
	s.Raw.Write(h, 0, data(100, 1))
	s.Raw.Write(h, 50, data(100, 2)) // over bytes already hashed
	s.Drop()
	_, err := e.Session(e.CallerA()).Client.Stat("/depot/" + part)
	notExist(t, "stat of an overwritten staged upload after the drop", err)
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("temporary files %v", tmp)
	}
}

// TestStagingTakeover: another connection of the account that opens a
// staged upload still held (a dropped connection not noticed yet) takes
// it over: the old handle's writes are refused in French, its close
// changes nothing, and the new one completes the deposit. With TRUNC the
// new connection starts again.
func TestStagingTakeover(t *testing.T) {
	e := sftptest.New(t)
	for i, trunc := range []bool{false, true} {
		final := callName(siretA, i)
		part := final + ".filepart"
		old := e.RawSession(e.CallerA()).Raw
		h, code, msg := old.Open("/depot/"+part, flagPut)
		if code != fxOK {
			t.Fatalf("open: %d %q", code, msg)
		}
		old.Write(h, 0, data(100, 1))
		c := e.Session(e.CallerA()).Client
		flags := os.O_WRONLY | os.O_CREATE
		if trunc {
			flags |= os.O_TRUNC
		}
		f, err := c.OpenFile("/depot/"+part, flags)
		if err != nil {
			t.Fatalf("takeover: %v", err)
		}
		code, msg = old.Write(h, 100, data(100, 2))
		wantStatus(t, "write of the old handle", code, msg, fxFailure, msgTakenOver)
		if code, msg := old.Close(h); code != fxOK {
			t.Errorf("close of the old handle: %d %q", code, msg)
		}
		content := data(100, 1)
		if trunc {
			content = nil
		}
		rest := data(500, 3)
		f.WriteAt(rest, int64(len(content)))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Rename("/depot/"+part, "/depot/"+final); err != nil {
			t.Fatal(err)
		}
		if d := deposit(t, e, final); d.SHA256 != sftptest.SHA256(append(content, rest...)) {
			t.Fatalf("trunc %v: deposit %+v", trunc, d)
		}
	}
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("temporary files %v", tmp)
	}
}

// TestStagingPerAccount: a staged upload belongs to its account: another
// account neither sees nor takes it.
func TestStagingPerAccount(t *testing.T) {
	e := sftptest.New(t)
	part := callName(siretA, 1) + ".filepart"
	upload(t, e.Session(e.CallerA()).Client, part, osPut, data(100, 1)).Close()
	cb := e.Session(e.CallerB()).Client
	_, err := cb.Stat("/depot/" + part)
	notExist(t, "B's stat of A's staged upload", err)
	if err := cb.Remove("/depot/" + part); err == nil {
		t.Error("B removed A's staged upload")
	}
	if fi, err := e.Session(e.CallerA()).Client.Stat("/depot/" + part); err != nil || fi.Size() != 100 {
		t.Fatalf("A's staged upload: %v, %v", fi, err)
	}
}

// TestStagingRemove: a staged upload can be removed (WinSCP cancels so),
// even while written: the writer is told it was taken over.
func TestStagingRemove(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	part := callName(siretA, 1) + ".filepart"
	upload(t, c, part, osPut, data(100, 1)).Close()
	if err := c.Remove("/depot/" + part); err != nil {
		t.Fatalf("remove: %v", err)
	}
	_, err := c.Stat("/depot/" + part)
	notExist(t, "stat after remove", err)
	err = c.Remove("/depot/" + part)
	notExist(t, "second remove", err)

	r := e.RawSession(e.CallerA()).Raw
	h, _, _ := r.Open("/depot/"+part, flagPut)
	r.Write(h, 0, data(100, 1))
	if err := c.Remove("/depot/" + part); err != nil {
		t.Fatalf("remove while written: %v", err)
	}
	code, msg := r.Write(h, 100, data(100, 2))
	wantStatus(t, "write after the remove", code, msg, fxFailure, msgTakenOver)
	r.Close(h)
	if tmp := e.TempFiles(); len(tmp) != 0 || len(e.Deposits(siretA)) != 0 {
		t.Fatalf("temporary files %v, deposits %d", tmp, len(e.Deposits(siretA)))
	}
}

// TestStagingTTL: a staged upload survives its session for StagingTTL
// after its last write, then is dropped when a session of the process
// starts or ends.
func TestStagingTTL(t *testing.T) {
	e := sftptest.New(t)
	part := callName(siretA, 1) + ".filepart"
	s := e.Session(e.CallerA())
	upload(t, s.Client, part, osPut, data(100, 1)).Close()
	s.Close()
	e.Clock.Add(vfs.StagingTTL - time.Minute)
	if _, err := e.Session(e.CallerA()).Client.Stat("/depot/" + part); err != nil {
		t.Fatalf("staged upload within StagingTTL: %v", err)
	}
	e.Clock.Add(2 * time.Minute)
	_, err := e.Session(e.CallerA()).Client.Stat("/depot/" + part)
	notExist(t, "staged upload after StagingTTL", err)
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("temporary files %v after StagingTTL", tmp)
	}
}

// TestStagingSetstat: SETSTAT(size) truncates a staged upload, by path or
// handle; times are accepted.
func TestStagingSetstat(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	final := callName(siretA, 1)
	part := final + ".filepart"
	content := data(1000, 1)
	upload(t, c, part, osPut, append(content, "extra"...)).Close()
	if err := c.Truncate("/depot/"+part, int64(len(content))); err != nil {
		t.Fatalf("setstat size: %v", err)
	}
	if err := c.Chtimes("/depot/"+part, time.Now(), time.Now()); err != nil {
		t.Fatalf("setstat times: %v", err)
	}
	if err := c.Rename("/depot/"+part, "/depot/"+final); err != nil {
		t.Fatal(err)
	}
	if ds := e.Deposits(siretA); len(ds) != 1 || !bytes.Equal(e.Content(ds[0]), content) {
		t.Fatalf("deposit after the truncation: %+v", ds)
	}
}
