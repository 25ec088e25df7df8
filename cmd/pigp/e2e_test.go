package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
)

// statusOf returns the SFTP status code and message of err.
func statusOf(t *testing.T, err error) (uint32, string) {
	t.Helper()
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not an SFTP status", err, err)
	}
	return se.Code, se.Error()
}

const (
	fxPermissionDenied = 3
	fxFailure          = 4
)

func TestEndToEnd(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			e := startEnv(t, kind, nil)
			t.Run("RootListing", func(t *testing.T) { testRootListing(t, e) })
			t.Run("DepositPkgSFTP", func(t *testing.T) { testDepositPkgSFTP(t, e) })
			t.Run("RefusedNames", func(t *testing.T) { testRefusedNames(t, e) })
			t.Run("FilepartRename", func(t *testing.T) { testFilepartRename(t, e) })
			t.Run("DownloadAndHistory", func(t *testing.T) { testDownloadAndHistory(t, e) })
			t.Run("Traversal", func(t *testing.T) { testTraversal(t, e) })
			t.Run("Isolation", func(t *testing.T) { testIsolation(t, e) })
			t.Run("OpenSSH", func(t *testing.T) { testOpenSSH(t, e) })
		})
	}
}

func testRootListing(t *testing.T, e *env) {
	c, _ := e.dialSFTP("alice-xt", e.alice)
	infos, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range infos {
		if !fi.IsDir() {
			t.Errorf("%s is not a directory", fi.Name())
		}
		names = append(names, fi.Name())
	}
	sort.Strings(names)
	if want := []string{"depot", "historique", "retrait"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("root lists %v, want %v", names, want)
	}
	if wd, err := c.Getwd(); err != nil || wd != "/" {
		t.Fatalf("start directory %q, %v; want /", wd, err)
	}
}

func testDepositPkgSFTP(t *testing.T, e *env) {
	c, _ := e.dialSFTP("alice-xt", e.alice)
	before := len(e.deposits(siretA))
	name := callName(siretA, 1)
	data := randomBytes(3<<20 + 12345) // several MiB: concurrent, out-of-order writes
	f, err := c.OpenFile("/depot/"+name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	ds := e.deposits(siretA)
	if len(ds) != before+1 {
		t.Fatalf("%d deposits, want %d", len(ds), before+1)
	}
	d := ds[0]
	if d.ExternalName != name || d.InternalName != name+"."+siretA || d.Size != int64(len(data)) ||
		d.SHA256 != sha(data) || d.Status != pigp.DepositReceived || d.ClientIP != "127.0.0.1" ||
		d.Protocol != pigp.ProtocolSFTP || !pigp.IsID(d.ID) || d.Login != "alice-xt" {
		t.Fatalf("deposit = %+v", d)
	}
	if got := e.content(d); !bytes.Equal(got, data) {
		t.Fatal("stored content differs from the upload")
	}
	if tmp := e.tmpFiles(); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	// The pending deposit is listed and STAT-able with its size.
	fi, err := c.Stat("/depot/" + name)
	if err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("stat deposit: %v, %v", fi, err)
	}
	// setstat on an upload succeeds without effect.
	if err := c.Chtimes("/depot/"+name, time.Now(), time.Now()); err != nil {
		t.Fatalf("setstat times: %v", err)
	}
	if err := c.Chmod("/depot/"+name, 0o600); err != nil {
		t.Fatalf("setstat mode: %v", err)
	}
	// /depot is write-only: its deposits cannot be read back.
	if _, err := c.Open("/depot/" + name); err == nil {
		t.Fatal("reading a deposit must be refused")
	}
}

func testRefusedNames(t *testing.T, e *env) {
	c, _ := e.dialSFTP("alice-xt", e.alice)
	now := time.Now()
	future := now.Add(48 * time.Hour).Format("20060102150405")
	stamp := now.Add(-time.Hour).Format("20060102150405")
	year := now.Format("2006")
	cases := []struct {
		name, want string
		code       uint32
	}{
		{"notes.txt", "extension", fxPermissionDenied},
		{year + "_" + siretA + "_" + stamp + ".XML", "minuscules", fxPermissionDenied},
		{year + "_" + siretA + "_" + stamp + ".xml.gz", "extension", fxPermissionDenied},
		{year + "_" + siretA + ".xml", "AAAA_SIRET_AAAAMMJJhhmmss.xml", fxPermissionDenied},
		{"1999_" + siretA + "_" + stamp + ".xml", "campagne", fxPermissionDenied},
		{"3000_" + siretA + "_" + stamp + ".xml", "campagne", fxPermissionDenied},
		{year + "_22940028800011_" + stamp + ".xml", "clé de contrôle", fxPermissionDenied},
		{year + "_2294002880001_" + stamp + ".xml", "14 chiffres", fxPermissionDenied},
		{year + "_" + siretA + "_" + year + "1332101500.xml", "date et heure réelles", fxPermissionDenied},
		{year + "_" + siretA + "_" + future + ".xml", "futur", fxPermissionDenied},
		{year + "_" + siretB + "_" + stamp + ".xml", "n'est pas habilité pour le SIRET " + siretB, fxPermissionDenied},
		{year + "_" + siretC + "_" + stamp + ".xml", "n'est pas habilité", fxPermissionDenied},
	}
	before := e.diskFiles()
	nA, nB := len(e.deposits(siretA)), len(e.deposits(siretB))
	_, conn := e.dialSFTP("alice-xt", e.alice)
	raw := newRawSFTP(t, conn)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.OpenFile("/depot/"+tc.name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
			if !errors.Is(err, os.ErrPermission) {
				t.Fatalf("open: %v, want permission denied", err)
			}
			code, msg := raw.open("/depot/"+tc.name, 0x1a)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("refusal = %d %q; want code %d and a message containing %q", code, msg, tc.code, tc.want)
			}
			if _, err := c.Stat("/depot/" + tc.name); err == nil {
				t.Fatal("a refused name is STAT-able")
			}
		})
	}
	if len(e.deposits(siretA)) != nA || len(e.deposits(siretB)) != nB {
		t.Fatal("a refused upload was recorded")
	}
	if after := e.diskFiles(); !reflect.DeepEqual(before, after) {
		t.Fatalf("disk changed:\nbefore %v\nafter  %v", before, after)
	}

	// Oversize upload: refused while streaming, nothing kept.
	small := startEnv(t, "sqlite", func(c *config.Config) { c.MaxUploadSize = 1 << 20 })
	sc, _ := small.dialSFTP("alice-xt", small.alice)
	f, err := sc.OpenFile("/depot/"+callName(siretA, 2), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.ReadFrom(bytes.NewReader(randomBytes(2 << 20)))
	cerr := f.Close()
	if werr == nil && cerr == nil {
		t.Fatal("oversize upload accepted")
	}
	if werr != nil {
		if code, msg := statusOf(t, werr); code != fxFailure || !strings.Contains(msg, "taille maximale") {
			t.Fatalf("oversize refusal %d %q", code, msg)
		}
	}
	if n := len(small.deposits(siretA)); n != 0 {
		t.Fatalf("oversize upload recorded %d deposits", n)
	}
	if tmp := small.tmpFiles(); len(tmp) != 0 {
		t.Fatalf("oversize upload left %v", tmp)
	}
}

func testFilepartRename(t *testing.T, e *env) {
	c, _ := e.dialSFTP("alice-xt", e.alice)
	before := len(e.deposits(siretA))
	name := callName(siretA, 3)
	data := randomBytes(200 << 10)
	// WinSCP: write NAME.filepart, close, remove NAME if present, rename, setstat.
	f, err := c.OpenFile("/depot/"+name+".filepart", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	f.ReadFrom(bytes.NewReader(data))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(e.deposits(siretA)); n != before {
		t.Fatal("the staging file became a deposit before its rename")
	}
	if fi, err := c.Stat("/depot/" + name + ".filepart"); err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("stat staging file: %v %v", fi, err)
	}
	if err := c.Rename("/depot/"+name+".filepart", "/depot/"+name); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if err := c.Chtimes("/depot/"+name, time.Now(), time.Now()); err != nil {
		t.Fatalf("setstat after rename: %v", err)
	}
	ds := e.deposits(siretA)
	if len(ds) != before+1 || ds[0].ExternalName != name || ds[0].SHA256 != sha(data) {
		t.Fatalf("after rename: %d deposits (want %d), newest %+v", len(ds), before+1, ds[0])
	}
	// A staging file renamed to another name is refused and dropped.
	g, _ := c.OpenFile("/depot/"+name+".filepart", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	g.Write([]byte("x"))
	g.Close()
	if err := c.Rename("/depot/"+name+".filepart", "/depot/"+callName(siretA, 4)); err == nil {
		t.Fatal("rename of a staging file to another name accepted")
	}
	// A staging name that breaks the rule is refused at open.
	if _, err := c.OpenFile("/depot/bad.txt.filepart", os.O_WRONLY|os.O_CREATE|os.O_TRUNC); err == nil {
		t.Fatal("bad staging name accepted")
	}
	if len(e.deposits(siretA)) != before+1 {
		t.Fatal("refused staging operations were recorded")
	}
}

func testDownloadAndHistory(t *testing.T, e *env) {
	ctx := context.Background()
	content := []byte("<ReponseAPA version=\"1.0\"/>\n")
	name := "2026_" + siretA + "_20261128103016_REP.xml"
	resp := e.publish(siretA, name, content)
	c, _ := e.dialSFTP("alice-xt", e.alice)

	infos, err := c.ReadDir("/retrait")
	if err != nil {
		t.Fatal(err)
	}
	var found os.FileInfo
	for _, fi := range infos {
		if fi.Name() == name {
			found = fi
		}
	}
	if found == nil || found.Size() != int64(len(content)) || !found.ModTime().Equal(resp.AvailableAt.Truncate(time.Second)) {
		t.Fatalf("/retrait listing %v: want %s with size %d and mtime %v", infos, name, len(content), resp.AvailableAt)
	}
	// rm before any download: refused, file kept.
	if err := c.Remove("/retrait/" + name); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("remove before download: %v, want permission denied", err)
	}
	_, conn := e.dialSFTP("alice-xt", e.alice)
	if code, msg := newRawSFTP(t, conn).remove("/retrait/" + name); code != fxPermissionDenied || !strings.Contains(msg, "pas encore été téléchargé") {
		t.Fatalf("remove before download: %d %q", code, msg)
	}
	f, err := c.Open("/retrait/" + name)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, content) {
		t.Fatalf("downloaded %q, want %q", got, content)
	}
	r, _ := e.app.DB.FindResponse(ctx, resp.ID)
	if r.FirstDownloadAt == nil {
		t.Fatal("first download date not set")
	}
	first := *r.FirstDownloadAt
	time.Sleep(10 * time.Millisecond)
	f, _ = c.Open("/retrait/" + name)
	io.ReadAll(f)
	f.Close()
	r, _ = e.app.DB.FindResponse(ctx, resp.ID)
	if !r.FirstDownloadAt.Equal(first) {
		t.Fatal("first download date changed on the second download")
	}
	dls, _ := e.app.DB.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}})
	if len(dls) < 2 || dls[0].ResponseName != name || dls[0].ClientIP != "127.0.0.1" || dls[0].Protocol != pigp.ProtocolSFTP {
		t.Fatalf("downloads = %+v", dls)
	}

	// History listings: size in the listing equals what is read.
	for _, h := range []struct{ file, header, must string }{
		{"depots.csv", "nom_externe;nom_interne;date_depot;taille;identifiant_depot;statut;sha256", ";RECU;"},
		{"retraits.csv", "nom_fichier;type_document;taille;date_telechargement;identifiant;protocole;adresse_ip",
			name + ";Fichier réponse APA;" + strconv.Itoa(len(content)) + ";"},
	} {
		fi, err := c.Stat("/historique/" + h.file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.Open("/historique/" + h.file)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if int64(len(b)) != fi.Size() {
			t.Fatalf("%s: listed size %d, read %d bytes", h.file, fi.Size(), len(b))
		}
		lines := strings.Split(string(b), "\r\n")
		if lines[0] != "\ufeff"+h.header || !strings.Contains(string(b), h.must) {
			t.Fatalf("%s:\n%s", h.file, b)
		}
		if err := c.Remove("/historique/" + h.file); err == nil {
			t.Fatalf("%s removable", h.file)
		}
	}

	// rm after download: hidden, content deleted, history kept.
	if err := c.Remove("/retrait/" + name); err != nil {
		t.Fatalf("remove after download: %v", err)
	}
	if _, err := c.Stat("/retrait/" + name); err == nil {
		t.Fatal("removed file still visible")
	}
	if objectExists(t, e.app.Blobs, resp.StorageKey) {
		t.Fatal("removed file's content still stored")
	}
	if dls2, _ := e.app.DB.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}}); len(dls2) != len(dls) {
		t.Fatal("history lost after removal")
	}
}

func testTraversal(t *testing.T, e *env) {
	c, _ := e.dialSFTP("alice-xt", e.alice)
	e.publish(siretB, "2026_"+siretB+"_20261128103016_REP.xml", []byte("secret of B"))
	before := e.diskFiles()
	nA := len(e.deposits(siretA))
	for _, p := range []string{"/etc/passwd", "/../../etc/passwd", "/depot/../../etc/passwd", "//etc/passwd",
		"/retrait/../../../etc/passwd", "/retrait/2026_" + siretB + "_20261128103016_REP.xml",
		"/depot/..", "/historique/../retrait/../../etc/hostname", "/depot/sub/" + callName(siretA, 5)} {
		if f, err := c.Open(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("read %s succeeded: %q", p, b)
		}
	}
	for _, p := range []string{"/x.xml", "/retrait/" + callName(siretA, 6), "/historique/" + callName(siretA, 7),
		"/depot/../" + callName(siretA, 8), "/depot/sub/" + callName(siretA, 9), "/etc/" + callName(siretA, 10)} {
		if _, err := c.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC); !errors.Is(err, os.ErrPermission) {
			t.Errorf("write %s: %v, want permission denied", p, err)
		}
	}
	if err := c.Mkdir("/depot/sub"); err == nil {
		t.Error("mkdir accepted")
	}
	if err := c.Mkdir("/newdir"); err == nil {
		t.Error("mkdir at root accepted")
	}
	if err := c.Symlink("/etc/passwd", "/depot/link"); err == nil {
		t.Error("symlink accepted")
	}
	if err := c.Link("/historique/depots.csv", "/depot/"+callName(siretA, 11)); err == nil {
		t.Error("hard link accepted")
	}
	if err := c.RemoveDirectory("/depot"); err == nil {
		t.Error("rmdir accepted")
	}
	if err := c.Rename("/historique/depots.csv", "/depot/x"); err == nil {
		t.Error("rename out of /historique accepted")
	}
	if err := c.PosixRename("/retrait/x", "/depot/y"); err == nil {
		t.Error("posix-rename accepted")
	}
	for _, p := range []string{"..", "../..", "/../../etc", "/depot/../../.."} {
		rp, err := c.RealPath(p)
		if err != nil || !strings.HasPrefix(rp, "/") || strings.Contains(rp, "..") {
			t.Errorf("realpath(%q) = %q, %v", p, rp, err)
		}
	}
	// Paths are resolved inside the virtual tree, where /etc does not exist.
	if rp, _ := c.RealPath("/../../etc"); rp != "/etc" {
		t.Errorf("realpath(/../../etc) = %q, want /etc inside the tree", rp)
	}
	if _, err := c.Stat("/etc"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat /etc: %v, want not found", err)
	}
	if _, err := c.ReadDir("/../.."); err != nil {
		t.Errorf("readdir /../..: %v (the root of the tree)", err)
	}
	if after := e.diskFiles(); !reflect.DeepEqual(before, after) {
		t.Fatalf("disk changed:\nbefore %v\nafter  %v", before, after)
	}
	if len(e.deposits(siretA)) != nA {
		t.Fatal("a refused operation recorded a deposit")
	}
}

func testIsolation(t *testing.T, e *env) {
	ca, _ := e.dialSFTP("alice-xt", e.alice)
	cb, _ := e.dialSFTP("bob-xt", e.bob)
	nameA := "2026_" + siretA + "_20261128110000_REP.xml"
	e.publish(siretA, nameA, []byte("for A only"))
	depA := callName(siretA, 12)
	f, _ := ca.OpenFile("/depot/"+depA, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	f.Write([]byte("<DemandeAPA/>"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	infos, _ := cb.ReadDir("/retrait")
	for _, fi := range infos {
		if strings.Contains(fi.Name(), siretA) {
			t.Errorf("bob sees %s", fi.Name())
		}
	}
	if _, err := cb.Stat("/retrait/" + nameA); err == nil {
		t.Error("bob can stat alice's response")
	}
	if _, err := cb.Open("/retrait/" + nameA); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bob opening alice's response: %v, want not found", err)
	}
	if err := cb.Remove("/retrait/" + nameA); err == nil {
		t.Error("bob can remove alice's response")
	}
	dep, _ := cb.ReadDir("/depot")
	for _, fi := range dep {
		if strings.Contains(fi.Name(), siretA) {
			t.Errorf("bob's /depot lists %s", fi.Name())
		}
	}
	hf, _ := cb.Open("/historique/depots.csv")
	hb, _ := io.ReadAll(hf)
	hf.Close()
	if strings.Contains(string(hb), siretA) {
		t.Errorf("bob's depots.csv shows alice's deposits:\n%s", hb)
	}
	// And alice does not see bob's response published in testTraversal.
	infos, _ = ca.ReadDir("/retrait")
	for _, fi := range infos {
		if strings.Contains(fi.Name(), siretB) {
			t.Errorf("alice sees %s", fi.Name())
		}
	}
}

func testOpenSSH(t *testing.T, e *env) {
	needTool(t, "sftp", "sshpass")
	dir := t.TempDir()
	name := callName(siretA, 13)
	data := randomBytes(1<<20 + 7)
	os.WriteFile(filepath.Join(dir, name), data, 0o644)
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte("x"), 0o644)
	resp := "2026_" + siretA + "_20261128120000_REP.xml"
	e.publish(siretA, resp, []byte("<ReponseAPA/>"))
	before := len(e.deposits(siretA))

	// Password authentication: put, ls, get, history.
	out, err := e.sftpBatch("alice-xt", e.alice, strings.Join([]string{
		"put -p " + name + " /depot/",
		"-put bad.txt /depot/bad.txt",
		"ls -l /depot",
		"get /retrait/" + resp + " got.xml",
		"get /historique/depots.csv depots.csv",
	}, "\n")+"\n", dir)
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Permission denied") {
		t.Errorf("bad name not reported as refused:\n%s", out)
	}
	ds := e.deposits(siretA)
	if len(ds) != before+1 || ds[0].ExternalName != name || ds[0].SHA256 != sha(data) {
		t.Fatalf("OpenSSH put: %d deposits (want %d), newest %+v", len(ds), before+1, ds[0])
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "got.xml")); string(b) != "<ReponseAPA/>" {
		t.Fatalf("downloaded %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "depots.csv")); !strings.Contains(string(b), ds[0].ID+";RECU;"+sha(data)) {
		t.Fatalf("depots.csv does not list the deposit:\n%s", b)
	}
	lsLine := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, name) {
			lsLine = l
		}
	}
	if !strings.HasPrefix(lsLine, "-") || !strings.Contains(lsLine, strconv.Itoa(len(data))) {
		t.Errorf("ls -l line %q", lsLine)
	}

	// Key authentication.
	name2 := callName(siretA, 14)
	os.WriteFile(filepath.Join(dir, name2), data[:1000], 0o644)
	out, err = e.sftpBatch("alice-xt", "", "put "+name2+" /depot/\nls /retrait\n", dir)
	if err != nil {
		t.Fatalf("sftp with key: %v\n%s", err, out)
	}
	if ds := e.deposits(siretA); ds[0].ExternalName != name2 || ds[0].SHA256 != sha(data[:1000]) {
		t.Fatalf("key upload not recorded: %+v", ds[0])
	}

	// Wrong password fails, and so does an unknown login.
	if out, err := e.sftpBatch("alice-xt", "wrong-password-123", "ls /\n", dir); err == nil {
		t.Fatalf("wrong password accepted:\n%s", out)
	}
}

// TestUploadCutOff drops the connection in the middle of an upload: no
// row, no file.
func TestUploadCutOff(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, e.addr, sshConfig("alice-xt", e.alice))
	if err != nil {
		t.Fatal(err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	c, err := sftp.NewClient(client)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.OpenFile("/depot/"+callName(siretA, 20), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randomBytes(256 << 10)); err != nil {
		t.Fatal(err)
	}
	conn.Close() // the network goes away mid-upload
	deadline := time.Now().Add(5 * time.Second)
	for len(e.tmpFiles()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if tmp := e.tmpFiles(); len(tmp) != 0 {
		t.Fatalf("temporary upload left after disconnect: %v", tmp)
	}
	if n := len(e.deposits(siretA)); n != 0 {
		t.Fatalf("%d deposits recorded for a cut-off upload", n)
	}
	for _, f := range e.diskFiles() {
		if strings.Contains(f, "/objects/") {
			t.Fatalf("content stored for a cut-off upload: %s", f)
		}
	}
}

// TestAuthentication checks refusals that must not tell whether a login
// exists, disabled accounts, expired passwords (with the French banner) and
// key scoping.
func TestAuthentication(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	ctx := context.Background()
	dial := func(cfg *ssh.ClientConfig) error {
		c, err := ssh.Dial("tcp", e.addr, cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	errUnknown := dial(sshConfig("nobody-xt", "Whatever-123-x"))
	errWrong := dial(sshConfig("alice-xt", "Whatever-123-x"))
	if errUnknown == nil || errWrong == nil {
		t.Fatal("bad credentials accepted")
	}
	if errUnknown.Error() != errWrong.Error() {
		t.Fatalf("unknown login and wrong password differ:\n%v\n%v", errUnknown, errWrong)
	}
	if err := dial(sshConfig("alice-xt", e.alice)); err != nil {
		t.Fatalf("good password refused: %v", err)
	}
	keyCfg := &ssh.ClientConfig{User: "alice-xt", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.aliceKey)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
	if err := dial(keyCfg); err != nil {
		t.Fatalf("key refused: %v", err)
	}
	// Alice's key does not open bob's account.
	keyCfg.User = "bob-xt"
	if err := dial(keyCfg); err == nil {
		t.Fatal("alice's key opened bob's account")
	}

	// Disabled: same refusal as a wrong password.
	if err := e.app.DB.SetAccountState(ctx, "bob-xt", pigp.AccountDisabled); err != nil {
		t.Fatal(err)
	}
	errDisabled := dial(sshConfig("bob-xt", e.bob))
	if errDisabled == nil || errDisabled.Error() != errWrong.Error() {
		t.Fatalf("disabled account: %v", errDisabled)
	}
	e.app.DB.SetAccountState(ctx, "bob-xt", pigp.AccountActive)

	// Expired password: refused with the French banner.
	a, _ := e.app.DB.FindAccountByLogin(ctx, "bob-xt")
	past := time.Now().AddDate(-1, 0, -1)
	if err := e.app.DB.SetPassword(ctx, "bob-xt", a.PasswordHash, past, past.AddDate(1, 0, 0), false); err != nil {
		t.Fatal(err)
	}
	var banner string
	cfg := sshConfig("bob-xt", e.bob)
	cfg.BannerCallback = func(msg string) error { banner += msg; return nil }
	if err := dial(cfg); err == nil {
		t.Fatal("expired password accepted")
	}
	if !strings.Contains(banner, "expiré") || !strings.Contains(banner, "paierie départementale") {
		t.Fatalf("banner %q", banner)
	}
	// The banner is not shown for a wrong password of the same account.
	banner = ""
	cfg = sshConfig("bob-xt", "Wrong-password-123")
	cfg.BannerCallback = func(msg string) error { banner += msg; return nil }
	dial(cfg)
	if banner != "" {
		t.Fatalf("banner shown without the right password: %q", banner)
	}
}

// TestSessionRequests checks that only the sftp subsystem is served.
func TestSessionRequests(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	client, err := ssh.Dial("tcp", e.addr, sshConfig("alice-xt", e.alice))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, req := range []string{"exec", "shell", "pty-req", "env", "x11-req"} {
		s, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		switch req {
		case "exec":
			ok = s.Run("echo ${ShellId}%ComSpec%") == nil
		case "shell":
			ok = s.Shell() == nil
		case "pty-req":
			ok = s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}) == nil
		case "env":
			ok = s.Setenv("LD_PRELOAD", "/tmp/x.so") == nil
		case "x11-req":
			ok, _ = s.SendRequest("x11-req", true, nil)
		}
		if ok {
			t.Errorf("%s accepted", req)
		}
		s.Close()
	}
	s, _ := client.NewSession()
	if err := s.RequestSubsystem("scp"); err == nil {
		t.Error("subsystem scp accepted")
	}
	s.Close()
	if _, _, err := client.OpenChannel("direct-tcpip", ssh.Marshal(struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}{"127.0.0.1", 22, "127.0.0.1", 1234})); err == nil {
		t.Error("port forwarding accepted")
	}
	if _, err := client.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("remote forwarding accepted")
	}
	// sftp still works on the same connection.
	c, err := sftp.NewClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatal(err)
	}
}

// TestAlgorithms checks that the server refuses every insecure algorithm.
func TestAlgorithms(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	insecure := ssh.InsecureAlgorithms()
	try := func(cfg ssh.Config) error {
		cc := sshConfig("alice-xt", e.alice)
		cc.Config = cfg
		c, err := ssh.Dial("tcp", e.addr, cc)
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, k := range insecure.KeyExchanges {
		if try(ssh.Config{KeyExchanges: []string{k}}) == nil {
			t.Errorf("kex %s accepted", k)
		}
	}
	for _, c := range insecure.Ciphers {
		if try(ssh.Config{Ciphers: []string{c}}) == nil {
			t.Errorf("cipher %s accepted", c)
		}
	}
	for _, m := range insecure.MACs {
		if try(ssh.Config{Ciphers: []string{ssh.CipherAES128CTR}, MACs: []string{m}}) == nil {
			t.Errorf("mac %s accepted", m)
		}
	}
	cc := sshConfig("alice-xt", e.alice)
	cc.HostKeyAlgorithms = insecure.HostKeys
	if c, err := ssh.Dial("tcp", e.addr, cc); err == nil {
		c.Close()
		t.Error("insecure host key algorithm accepted")
	}
	// And a modern client gets in with each secure cipher.
	for _, c := range []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES128CTR} {
		if err := try(ssh.Config{Ciphers: []string{c}}); err != nil {
			t.Errorf("cipher %s refused: %v", c, err)
		}
	}
}

// TestGracefulShutdown lets a running transfer finish after shutdown starts
// and refuses new connections.
func TestGracefulShutdown(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	c, _ := e.dialSFTP("alice-xt", e.alice)
	name := callName(siretA, 30)
	f, err := c.OpenFile("/depot/"+name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	first := randomBytes(64 << 10)
	f.Write(first)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.app.SFTP.Close(ctx)
	}()
	time.Sleep(200 * time.Millisecond)
	if conn, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		conn.Close()
		t.Error("new connection accepted during shutdown")
	}
	second := randomBytes(64 << 10)
	if _, err := f.Write(second); err != nil {
		t.Fatalf("write during shutdown: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close during shutdown: %v", err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	ds := e.deposits(siretA)
	if len(ds) != 1 || ds[0].SHA256 != sha(append(first, second...)) {
		t.Fatalf("transfer did not finish during shutdown: %+v", ds)
	}
}

// TestHostKeyPersisted checks the host key is generated once, 0600, and reused.
func TestHostKeyPersisted(t *testing.T) {
	dir := t.TempDir()
	c := config.Default()
	c.DataDir, c.SFTPListen = dir, "127.0.0.1:0"
	fp := func() string {
		a, err := openApp(context.Background(), c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := a.StartSFTP(); err != nil {
			t.Fatal(err)
		}
		var got string
		cfg := &ssh.ClientConfig{User: "x", Auth: []ssh.AuthMethod{ssh.Password("y")}, Timeout: 5 * time.Second,
			HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
			HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
				got = ssh.FingerprintSHA256(k)
				return nil
			}}
		ssh.Dial("tcp", a.SFTP.ListenAddr().String(), cfg)
		return got
	}
	first, second := fp(), fp()
	if first == "" || first != second {
		t.Fatalf("host key changed between starts: %q then %q", first, second)
	}
	fi, err := os.Stat(filepath.Join(dir, "hostkeys", "ssh_host_ed25519_key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, %v", fi, err)
	}
}
