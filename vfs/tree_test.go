package vfs_test

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp/internal/sftptest"
)

// TestListRoot: the root lists exactly depot, retrait and historique, as
// directories (only /depot writable), and sessions start there.
func TestListRoot(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	infos, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fs.FileMode{}
	for _, fi := range infos {
		got[fi.Name()] = fi.Mode()
	}
	want := map[string]fs.FileMode{"depot": fs.ModeDir | 0o755, "retrait": fs.ModeDir | 0o555, "historique": fs.ModeDir | 0o555}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("root lists %v, want %v", got, want)
	}
	if wd, err := c.Getwd(); err != nil || wd != "/" {
		t.Fatalf("start directory %q, %v; want /", wd, err)
	}
}

// TestListDepot: /depot lists the caller's pending deposits, each name once
// with its newest size, read-only; neither staged uploads, processed
// deposits nor another organisation's deposits.
func TestListDepot(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	cb := e.Session(e.CallerB()).Client
	twice, once, processed := callName(siretA, 1), callName(siretA, 2), callName(siretA, 3)
	put(t, c, twice, data(10, 1))
	e.Clock.Add(time.Second)
	put(t, c, twice, data(20, 2)) // another content: a second deposit
	put(t, c, once, data(30, 3))
	put(t, c, processed, data(40, 4))
	e.Exec("UPDATE deposits SET status = 'TRAITE' WHERE external_name = '" + processed + "'")
	f := upload(t, c, callName(siretA, 4)+".filepart", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, data(50, 5))
	defer f.Close()
	put(t, cb, callName(siretB, 1), data(60, 6))

	infos, err := c.ReadDir("/depot")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, fi := range infos {
		if _, dup := got[fi.Name()]; dup {
			t.Errorf("%s listed twice", fi.Name())
		}
		got[fi.Name()] = fi.Size()
		if fi.Mode() != 0o444 {
			t.Errorf("%s: mode %v, want -r--r--r--", fi.Name(), fi.Mode())
		}
	}
	if want := map[string]int64{twice: 20, once: 30}; !reflect.DeepEqual(got, want) {
		t.Fatalf("/depot lists %v, want %v", got, want)
	}
}

// TestListRetrait: /retrait lists the responses of the caller's SIRETs
// with their size and availability time; another organisation's are
// neither listed, STAT-able, readable nor removable.
func TestListRetrait(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	cb := e.Session(e.CallerB()).Client
	nameA, nameB := "2026_"+siretA+"_20261128103016_REP.xml", "2026_"+siretB+"_20261128103016_REP.xml"
	resp := e.Publish(siretA, nameA, []byte("<ReponseAPA/>"))
	e.Publish(siretB, nameB, []byte("secret of B"))
	infos, err := c.ReadDir("/retrait")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Name() != nameA || infos[0].Size() != 13 || infos[0].Mode() != 0o444 ||
		!infos[0].ModTime().Equal(resp.AvailableAt.Truncate(time.Second)) {
		t.Fatalf("/retrait lists %v; want %s, 13 bytes, -r--r--r--, %v", infos, nameA, resp.AvailableAt)
	}
	if _, err := cb.Stat("/retrait/" + nameA); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("B stats A's response: %v", err)
	}
	if _, err := cb.Open("/retrait/" + nameA); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("B opens A's response: %v", err)
	}
	if err := cb.Remove("/retrait/" + nameA); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("B removes A's response: %v", err)
	}
	if infos, _ := cb.ReadDir("/retrait"); len(infos) != 1 || infos[0].Name() != nameB {
		t.Errorf("B's /retrait lists %v", infos)
	}
}

// TestListHistorique: /historique lists the documentation directory and
// the two CSV listings; a listing's size is what a download then reads,
// for historyTTL within a session; another organisation's rows never
// appear.
func TestListHistorique(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	cb := e.Session(e.CallerB()).Client
	put(t, c, callName(siretA, 1), data(100, 1))
	infos, err := c.ReadDir("/historique")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, fi := range infos {
		sizes[fi.Name()] = fi.Size()
		if isDir := fi.Name() == "documentation"; fi.IsDir() != isDir {
			t.Errorf("%s: mode %v", fi.Name(), fi.Mode())
		}
	}
	if len(sizes) != 3 {
		t.Fatalf("/historique lists %v, want documentation, depots.csv and retraits.csv", sizes)
	}
	// A deposit made meanwhile does not change what the listing said.
	put(t, c, callName(siretA, 2), data(100, 2))
	for name, header := range map[string]string{
		"depots.csv":   "nom_externe;nom_interne;date_depot;taille;identifiant_depot;statut;sha256",
		"retraits.csv": "nom_fichier;type_document;taille;date_telechargement;identifiant;protocole;adresse_ip",
	} {
		b := read(t, c, "/historique/"+name)
		if int64(len(b)) != sizes[name] {
			t.Errorf("%s: listed %d bytes, read %d", name, sizes[name], len(b))
		}
		if !strings.HasPrefix(string(b), "\ufeff"+header+"\r\n") {
			t.Errorf("%s:\n%s", name, b)
		}
	}
	if b := read(t, c, "/historique/depots.csv"); strings.Count(string(b), ";RECU;") != 1 {
		t.Errorf("depots.csv within historyTTL:\n%s", b)
	}
	e.Clock.Add(11 * time.Second)
	if b := read(t, c, "/historique/depots.csv"); strings.Count(string(b), ";RECU;") != 2 {
		t.Errorf("depots.csv after historyTTL:\n%s", b)
	}
	if b := read(t, cb, "/historique/depots.csv"); strings.Contains(string(b), siretA) {
		t.Errorf("B's depots.csv shows A's deposits:\n%s", b)
	}
}

// TestDocumentation: /historique/documentation serves the documents
// read-only.
func TestDocumentation(t *testing.T) {
	e := sftptest.New(t)
	s := e.Session(e.CallerA())
	infos, err := s.Client.ReadDir("/historique/documentation")
	if err != nil || len(infos) != 1 || infos[0].Name() != "DemandeAPA.xsd" || infos[0].Size() != 13 {
		t.Fatalf("documentation lists %v, %v", infos, err)
	}
	if b := read(t, s.Client, "/historique/documentation/DemandeAPA.xsd"); string(b) != "<xs:schema/>\n" {
		t.Fatalf("read %q", b)
	}
	_, err = s.Client.Open("/historique/documentation/absent.xsd")
	notExist(t, "open absent document", err)
	r := e.RawSession(e.CallerA()).Raw
	_, code, msg := r.Open("/historique/documentation/DemandeAPA.xsd", flagPut)
	wantStatus(t, "write a document", code, msg, fxDenied, msgReadOnly)
	code, msg = r.Remove("/historique/documentation/DemandeAPA.xsd")
	wantStatus(t, "remove a document", code, msg, fxDenied, msgReadOnly)
}

// TestStat: directories and ".." resolve inside the tree; what is not in
// it does not exist.
func TestStat(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	for _, p := range []string{"/", "/depot", "/depot/..", "/retrait/../historique", "/../..", "/historique/documentation"} {
		if fi, err := c.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("stat %s: %v, %v", p, fi, err)
		}
	}
	for _, p := range []string{"/etc", "/etc/passwd", "/depot/sub/x.xml", "/historique/x.csv", "/retrait/x.xml",
		"/depot/" + callName(siretA, 1), "/historique/documentation/x/y"} {
		_, err := c.Stat(p)
		notExist(t, "stat "+p, err)
		_, err = c.Lstat(p)
		notExist(t, "lstat "+p, err)
	}
}

// TestRealPath: every path resolves inside the virtual tree, never to a
// path of the disk.
func TestRealPath(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	for p, want := range map[string]string{
		".": "/", "..": "/", "../..": "/", "/depot/../retrait/.": "/retrait", "/../../etc": "/etc",
		"/depot/../../..": "/", "depot": "/depot", "/depot/sub/x": "/depot/sub/x", "//depot//x.xml": "/depot/x.xml",
	} {
		if got, err := c.RealPath(p); err != nil || got != want {
			t.Errorf("realpath(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
}

// TestTraversal: reads outside the caller's files fail, writes outside
// /depot are refused with the message of the place.
func TestTraversal(t *testing.T) {
	e := sftptest.New(t)
	e.Publish(siretB, "2026_"+siretB+"_20261128103016_REP.xml", []byte("secret of B"))
	c := e.Session(e.CallerA()).Client
	for _, p := range []string{"/etc/passwd", "/../../etc/passwd", "/depot/../../etc/passwd", "//etc/passwd",
		"/retrait/../../../etc/passwd", "/retrait/2026_" + siretB + "_20261128103016_REP.xml", "/depot/..",
		"/historique/../retrait/../../etc/hostname", "/depot/sub/" + callName(siretA, 5)} {
		if f, err := c.Open(p); err == nil {
			f.Close()
			t.Errorf("read %s succeeded", p)
		}
	}
	r := e.RawSession(e.CallerA()).Raw
	for p, want := range map[string]string{
		"/x.xml": msgWriteDepot, "/depot/../" + callName(siretA, 8): msgWriteDepot,
		"/depot/sub/" + callName(siretA, 9): msgWriteDepot, "/etc/" + callName(siretA, 10): msgWriteDepot,
		"/depot": msgWriteDepot, "/": msgWriteDepot,
		"/retrait/" + callName(siretA, 6): msgReadOnly, "/historique/" + callName(siretA, 7): msgReadOnly,
		"/historique/depots.csv": msgReadOnly,
	} {
		_, code, msg := r.Open(p, flagPut)
		wantStatus(t, "write "+p, code, msg, fxDenied, want)
	}
	if ds := e.Deposits(siretA); len(ds) != 0 || len(e.TempFiles()) != 0 {
		t.Fatalf("refused writes left %d deposits, temporary files %v", len(ds), e.TempFiles())
	}
}

// TestRefusedCommands: no directory, link or move is ever made; each
// refusal says so.
func TestRefusedCommands(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	put(t, c, callName(siretA, 1), data(10, 1))
	r := e.RawSession(e.CallerA()).Raw
	str, u32 := sftptest.Str, sftptest.U32
	for _, tc := range []struct {
		what string
		typ  byte
		args [][]byte
	}{
		{"mkdir /depot/sub", sftptest.FxpMkdir, [][]byte{str("/depot/sub"), u32(0)}},
		{"mkdir /newdir", sftptest.FxpMkdir, [][]byte{str("/newdir"), u32(0)}},
		{"mkdir /depot/a/b", sftptest.FxpMkdir, [][]byte{str("/depot/a/b"), u32(0)}},
		{"rmdir /depot", sftptest.FxpRmdir, [][]byte{str("/depot")}},
		{"symlink", sftptest.FxpSymlink, [][]byte{str("/depot/link"), str("/etc/passwd")}},
		{"rename out of /historique", sftptest.FxpRename, [][]byte{str("/historique/depots.csv"), str("/depot/x")}},
		{"rename into /retrait", sftptest.FxpRename, [][]byte{str("/depot/" + callName(siretA, 1)), str("/retrait/x.xml")}},
		{"remove /depot", sftptest.FxpRemove, [][]byte{str("/depot")}},
		{"hard link", sftptest.FxpExtended, [][]byte{str("hardlink@openssh.com"), str("/historique/depots.csv"), str("/depot/" + callName(siretA, 2))}},
		{"posix-rename out of /retrait", sftptest.FxpExtended, [][]byte{str("posix-rename@openssh.com"), str("/retrait/x"), str("/depot/y")}},
	} {
		code, msg := r.Do(tc.typ, tc.args...)
		wantStatus(t, tc.what, code, msg, fxDenied, msgDenied)
	}
	if err := c.Mkdir("/depot/sub"); !errors.Is(err, os.ErrPermission) {
		t.Errorf("mkdir with pkg/sftp: %v", err)
	}
	if fi, err := c.Stat("/depot/sub"); err == nil {
		t.Errorf("/depot/sub exists: %v", fi)
	}
}

// TestNotDirectoryNotLink: listing a file and reading a link say what they
// are not.
func TestNotDirectoryNotLink(t *testing.T) {
	e := sftptest.New(t)
	r := e.RawSession(e.CallerA()).Raw
	_, code, msg := r.Opendir("/historique/depots.csv")
	wantStatus(t, "opendir a file", code, msg, fxFailure, msgNotDir)
	typ, b := r.Request(sftptest.FxpReadlink, sftptest.Str("/historique/depots.csv"))
	if typ != sftptest.FxpStatus || binary.BigEndian.Uint32(b[4:8]) != fxFailure || !strings.Contains(string(b), msgNotLink) {
		t.Errorf("readlink: type %d %q", typ, b)
	}
	_, code, msg = r.Opendir("/nulle/part")
	wantStatus(t, "opendir outside the tree", code, msg, fxNoFile, msgNotFound)
}

// TestLongNames: listings show the caller as owner and group (WinSCP
// treats files owned by someone else differently).
func TestLongNames(t *testing.T) {
	e := sftptest.New(t)
	e.Publish(siretA, "reponse.xml", []byte("<ReponseAPA/>"))
	r := e.RawSession(e.CallerA()).Raw
	h, code, msg := r.Opendir("/retrait")
	if code != fxOK {
		t.Fatalf("opendir: %d %q", code, msg)
	}
	typ, b := r.Request(sftptest.FxpReaddir, sftptest.Str(h))
	if typ != sftptest.FxpName || !strings.Contains(string(b), "reponse.xml") || !strings.Contains(string(b), " agent-a  agent-a ") &&
		!strings.Contains(string(b), " agent-a agent-a ") {
		t.Fatalf("readdir: type %d %q", typ, b)
	}
}

// TestStatVFS: statvfs@openssh.com answers the free space of the store
// that receives the deposits; outside the tree, not found.
func TestStatVFS(t *testing.T) {
	e := sftptest.New(t)
	c := e.Session(e.CallerA()).Client
	st, err := c.StatVFS("/depot")
	if err != nil || st.FreeSpace() == 0 || st.Namemax != 255 {
		t.Fatalf("statvfs: %+v, %v", st, err)
	}
	if _, err := c.StatVFS("/depot/a/b"); err == nil {
		t.Error("statvfs outside the tree answered")
	}
}
