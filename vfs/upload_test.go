package vfs_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/sftptest"
	"github.com/pigp/pigp/vfs"
)

// TestDeposit: a direct upload becomes a deposit when its handle is
// closed: content and SHA-256 as sent (out-of-order concurrent writes
// included), recorded with the caller, nothing left in the temporary
// area; it is then STAT-able and listed, read-only.
func TestDeposit(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	name := callName(siretA, 1)
	content := data(1<<20+12345, 7)
	f, err := c.OpenFile("/depot/"+name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(content)); err != nil { // concurrent writes
		t.Fatal(err)
	}
	if ds := e.Deposits(siretA); len(ds) != 0 {
		t.Fatal("deposit recorded before the close")
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(len(content)) { // FSTAT of the open upload
		t.Fatalf("fstat of the open upload: %v, %v", fi, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	ds := e.Deposits(siretA)
	if len(ds) != 1 {
		t.Fatalf("%d deposits, want 1", len(ds))
	}
	d := ds[0]
	if d.ExternalName != name || d.InternalName != name+"."+siretA || d.Size != int64(len(content)) ||
		d.SHA256 != sftptest.SHA256(content) || d.Status != pigp.DepositReceived || d.ClientIP != "192.0.2.10" ||
		d.Protocol != pigp.ProtocolSFTP || !pigp.IsID(d.ID) || d.Login != "agent-a" || !d.DepositedAt.Equal(sftptest.Start) {
		t.Fatalf("deposit = %+v", d)
	}
	if !bytes.Equal(e.Content(d), content) {
		t.Fatal("stored content differs from the upload")
	}
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	fi, err := c.Stat("/depot/" + name)
	if err != nil || fi.Size() != d.Size || fi.Mode() != 0o444 || !fi.ModTime().Equal(sftptest.Start) {
		t.Fatalf("stat deposit: %v, %v", fi, err)
	}
}

// TestOpenExisting: a deposit cannot be opened again to be appended to or
// resumed (that would deposit only the end of a file); EXCL is refused on
// an existing name; TRUNC makes a new deposit; without CREAT a missing
// name is not found.
func TestOpenExisting(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	name := callName(siretA, 1)
	put(t, c, name, data(100, 1))
	r := e.RawSession(e.CallerA()).Raw
	for _, tc := range []struct {
		flags uint32
		code  uint32
		msg   string
	}{
		{flagWrite | flagCreat | flagExcl, fxFailure, "Le fichier " + name + " existe déjà"},
		{flagWrite | flagAppend, fxFailure, "Reprise impossible : " + name + " est déjà déposé ; un dépôt ne peut pas être complété, envoyez le fichier entier"},
		{flagWrite | flagCreat | flagAppend, fxFailure, "…Reprise impossible"},
		{flagWrite, fxFailure, "…Reprise impossible"},
		{flagRead | flagWrite, fxFailure, "…Reprise impossible"},
	} {
		_, code, msg := r.Open("/depot/"+name, tc.flags)
		wantStatus(t, "open of a deposit", code, msg, tc.code, tc.msg)
	}
	_, code, msg := r.Open("/depot/"+callName(siretA, 2), flagWrite)
	wantStatus(t, "open without CREAT of a missing name", code, msg, fxNoFile, msgNotFound)
	_, code, msg = r.Open("/depot/"+callName(siretA, 3), flagWrite|flagAppend)
	wantStatus(t, "append to a missing name", code, msg, fxNoFile, msgNotFound)
	if len(e.Deposits(siretA)) != 1 {
		t.Fatal("a refused open made a deposit")
	}
	// TRUNC: a new upload of the name, a second deposit.
	e.Clock.Add(time.Second)
	put(t, c, name, data(200, 2))
	if ds := e.Deposits(siretA); len(ds) != 2 || ds[0].Size != 200 {
		t.Fatalf("deposits after TRUNC: %+v", ds)
	}
	// EXCL of a new name is an ordinary upload.
	f := upload(t, c, callName(siretA, 4), os.O_WRONLY|os.O_CREATE|os.O_EXCL, data(10, 3))
	if err := f.Close(); err != nil || len(e.Deposits(siretA)) != 3 {
		t.Fatalf("EXCL upload: %v", err)
	}
}

// TestUploadCutOff: a direct upload whose connection drops leaves no
// deposit and no file.
func TestUploadCutOff(t *testing.T) {
	e := sftptest.New(t)
	s := e.Session(e.CallerA())
	upload(t, s.Client, callName(siretA, 1), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, data(256<<10, 1))
	if len(e.TempFiles()) != 1 {
		t.Fatalf("temporary files %v during the upload", e.TempFiles())
	}
	s.Drop()
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("temporary upload left after the drop: %v", tmp)
	}
	if n := len(e.Deposits(siretA)); n != 0 {
		t.Fatalf("%d deposits for a cut-off upload", n)
	}
	if !strings.Contains(e.Logs(), "upload interrupted, discarded") {
		t.Errorf("the interruption is not logged:\n%s", e.Logs())
	}
	if _, err := e.Session(e.CallerA()).Client.Stat("/depot/" + callName(siretA, 1)); err == nil {
		t.Error("the cut-off upload is STAT-able")
	}
}

// TestUploadTooLarge: beyond MaxUploadSize a write is refused with the
// French message, the close too; nothing is kept.
func TestUploadTooLarge(t *testing.T) {
	e := sftptest.New(t)
	e.Svc.MaxUploadSize = 64 << 10
	c := e.Session(e.CallerA()).Client
	f, err := c.OpenFile("/depot/"+callName(siretA, 1), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(data(128<<10, 1))
	cerr := f.Close()
	for what, err := range map[string]error{"write": werr, "close": cerr} {
		if err == nil {
			t.Fatalf("%s of an oversize upload accepted", what)
		}
		if code, msg := sftptest.Status(t, err); code != fxFailure || !strings.Contains(msg, "dépasse la taille maximale autorisée") {
			t.Errorf("%s: %d %q", what, code, msg)
		}
	}
	if n := len(e.Deposits(siretA)); n != 0 {
		t.Fatalf("oversize upload recorded %d deposits", n)
	}
	if tmp := e.TempFiles(); len(tmp) != 0 {
		t.Fatalf("oversize upload left %v", tmp)
	}
}

// TestSetstatUpload: FSETSTAT(size) truncates an open upload (scp 9
// writes, then sets the size); times and modes are accepted.
func TestSetstatUpload(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	name := callName(siretA, 1)
	content := data(1000, 1)
	f := upload(t, c, name, os.O_WRONLY|os.O_CREATE, append(content, "trailing bytes cut by FSETSTAT(size)"...))
	if err := f.Truncate(int64(len(content))); err != nil {
		t.Fatalf("FSETSTAT(size): %v", err)
	}
	if err := f.Chmod(0o644); err != nil {
		t.Fatalf("FSETSTAT(mode): %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if ds := e.Deposits(siretA); len(ds) != 1 || ds[0].SHA256 != sftptest.SHA256(content) {
		t.Fatalf("deposit after FSETSTAT(size): %+v", ds)
	}
}

// TestSetstatDeposit: on a deposit, times and modes are accepted and the
// time set is what STAT shows for DepositGrace; a size other than its own
// is refused (a deposit is never modified); directories accept anything
// without effect; the read-only places refuse.
func TestSetstatDeposit(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	name := callName(siretA, 1)
	put(t, c, name, data(100, 1))
	mtime := time.Date(2026, 11, 20, 8, 30, 0, 0, time.UTC)
	if err := c.Chtimes("/depot/"+name, mtime, mtime); err != nil {
		t.Fatalf("setstat times: %v", err)
	}
	if err := c.Chmod("/depot/"+name, 0o600); err != nil {
		t.Fatalf("setstat mode: %v", err)
	}
	if err := c.Truncate("/depot/"+name, 100); err != nil {
		t.Fatalf("setstat of the same size: %v", err)
	}
	if fi, err := c.Stat("/depot/" + name); err != nil || !fi.ModTime().Equal(mtime) || fi.Size() != 100 {
		t.Fatalf("stat after setstat: %v, %v; want mtime %v", fi, err, mtime)
	}
	e.Clock.Add(vfs.DepositGrace + time.Minute)
	if fi, err := c.Stat("/depot/" + name); err != nil || !fi.ModTime().Equal(sftptest.Start) {
		t.Fatalf("stat after DepositGrace: %v, %v; want the deposit time", fi, err)
	}
	r := e.RawSession(e.CallerA()).Raw
	code, msg := r.SetstatSize("/depot/"+name, 10)
	wantStatus(t, "setstat size of a deposit", code, msg, fxDenied, "Modification refusée : un dépôt reçu ne peut pas être modifié")
	code, msg = r.SetstatSize("/depot/"+callName(siretA, 2), 10)
	wantStatus(t, "setstat of a missing name", code, msg, fxNoFile, msgNotFound)
	code, msg = r.SetstatSize("/historique/depots.csv", 0)
	wantStatus(t, "setstat in /historique", code, msg, fxDenied, msgReadOnly)
	code, msg = r.SetstatSize("/retrait/x.xml", 0)
	wantStatus(t, "setstat in /retrait", code, msg, fxDenied, msgReadOnly)
	for _, dir := range []string{"/", "/depot", "/retrait", "/historique"} {
		if err := c.Chtimes(dir, mtime, mtime); err != nil {
			t.Errorf("setstat %s: %v", dir, err)
		}
	}
	if ds := e.Deposits(siretA); len(ds) != 1 || ds[0].Size != 100 {
		t.Fatalf("deposit after setstat: %+v", ds)
	}
}

// TestRemoveDeposit: removing a deposited name (WinSCP does before its
// rename) is answered OK and the deposit stands; a name never deposited
// is not found; a directory is not removed.
func TestRemoveDeposit(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	name := callName(siretA, 1)
	put(t, c, name, data(100, 1))
	if err := c.Remove("/depot/" + name); err != nil {
		t.Fatalf("remove of a deposited name: %v", err)
	}
	if ds := e.Deposits(siretA); len(ds) != 1 || ds[0].Status != pigp.DepositReceived {
		t.Fatalf("deposits after the remove: %+v", ds)
	}
	if fi, err := c.Stat("/depot/" + name); err != nil || fi.Size() != 100 {
		t.Fatalf("stat after the remove: %v, %v", fi, err)
	}
	r := e.RawSession(e.CallerA()).Raw
	code, msg := r.Remove("/depot/" + callName(siretA, 2))
	wantStatus(t, "remove of a missing name", code, msg, fxNoFile, msgNotFound)
	code, msg = r.Remove("/depot")
	wantStatus(t, "remove of /depot", code, msg, fxDenied, msgDenied)
	code, msg = r.Remove("/historique/depots.csv")
	wantStatus(t, "remove in /historique", code, msg, fxDenied, msgReadOnly)
}

// TestRenameDeposit: a deposit is never renamed.
func TestRenameDeposit(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	name := callName(siretA, 1)
	put(t, c, name, data(100, 1))
	r := e.RawSession(e.CallerA()).Raw
	code, msg := r.Rename("/depot/"+name, "/depot/"+callName(siretA, 2))
	wantStatus(t, "rename of a deposit", code, msg, fxDenied, "Renommage refusé : un dépôt reçu ne peut pas être renommé")
	code, msg = r.Rename("/depot/"+callName(siretA, 3), "/depot/"+callName(siretA, 4))
	wantStatus(t, "rename of a missing name", code, msg, fxNoFile, msgNotFound)
	if ds := e.Deposits(siretA); len(ds) != 1 || ds[0].ExternalName != name {
		t.Fatalf("deposits after the renames: %+v", ds)
	}
}

// TestStatGrace: a deposit stays STAT-able under its name for
// DepositGrace whatever its status (clients check their upload), and as
// long as it is pending; a processed one is not listed.
func TestStatGrace(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	processed, pending := callName(siretA, 1), callName(siretA, 2)
	put(t, c, processed, data(100, 1))
	put(t, c, pending, data(200, 2))
	e.Exec("UPDATE deposits SET status = 'TRAITE' WHERE external_name = '" + processed + "'")
	if fi, err := c.Stat("/depot/" + processed); err != nil || fi.Size() != 100 {
		t.Fatalf("stat of a processed deposit within DepositGrace: %v, %v", fi, err)
	}
	if infos, _ := c.ReadDir("/depot"); len(infos) != 1 || infos[0].Name() != pending {
		t.Fatalf("/depot lists %v, want the pending deposit only", infos)
	}
	e.Clock.Add(vfs.DepositGrace + time.Second)
	_, err := c.Stat("/depot/" + processed)
	notExist(t, "stat of a processed deposit after DepositGrace", err)
	if fi, err := c.Stat("/depot/" + pending); err != nil || fi.Size() != 200 {
		t.Fatalf("stat of a pending deposit after DepositGrace: %v, %v", fi, err)
	}
}

// TestDuplicateUploadStat: a retry answered with a first deposit made
// hours ago (already processed) stays STAT-able with its size; no second
// deposit is made.
func TestDuplicateUploadStat(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	name, content := callName(siretA, 1), data(5000, 1)
	put(t, c, name, content)
	e.Exec("UPDATE deposits SET status = 'TRAITE', deposited_at = '" +
		sftptest.Start.Add(-3*time.Hour).Format("2006-01-02 15:04:05") + "'")
	if _, err := c.Stat("/depot/" + name); err == nil {
		t.Fatal("an old processed deposit is STAT-able: the test proves nothing")
	}
	put(t, c, name, content)
	if fi, err := c.Stat("/depot/" + name); err != nil || fi.Size() != int64(len(content)) {
		t.Fatalf("stat after the retry: %v, %v", fi, err)
	}
	if n := len(e.Deposits(siretA)); n != 1 {
		t.Fatalf("%d deposits, want 1", n)
	}
	// From another session of the account too, for DepositGrace.
	c2 := e.Session(e.CallerA()).Client
	if _, err := c2.Stat("/depot/" + name); err != nil {
		t.Fatalf("stat from another session: %v", err)
	}
	e.Clock.Add(vfs.DepositGrace + time.Second)
	_, err := e.Session(e.CallerA()).Client.Stat("/depot/" + name)
	notExist(t, "stat of the retry after DepositGrace", err)
}

// TestUploadsPerAccount: beyond the account's uploads in progress, an
// open is refused in French; a closed upload gives its place back.
func TestUploadsPerAccount(t *testing.T) {
	e := sftptest.New(t)
	e.Svc.Limits.UploadsPerAccount = 2
	c := e.Session(e.CallerA()).Client
	f1 := upload(t, c, callName(siretA, 1), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, nil)
	f2 := upload(t, c, callName(siretA, 2)+".filepart", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, nil)
	r := e.RawSession(e.CallerA()).Raw
	_, code, msg := r.Open("/depot/"+callName(siretA, 3), flagPut)
	wantStatus(t, "third upload", code, msg, fxFailure, "…ce compte a déjà 2 envois en cours (au plus 2 à la fois)")
	f1.Write([]byte("x"))
	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	if h, code, msg := r.Open("/depot/"+callName(siretA, 3), flagPut); code != fxOK {
		t.Errorf("upload after a close: %d %q", code, msg)
	} else {
		r.Close(h)
	}
	f2.Close()
	// Another account is not counted with this one.
	if err := sftptest.Put(e.Session(e.CallerB()).Client, callName(siretB, 1), []byte("x")); err != nil {
		t.Errorf("B's upload: %v", err)
	}
}
