package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestDocumentationOverSFTP: the XSDs and the cahier des charges can be
// fetched read-only from /historique/documentation.
func TestDocumentationOverSFTP(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	c, _ := e.dialSFTP("alice-xt", e.alice)
	infos, err := c.ReadDir("/historique")
	if err != nil {
		t.Fatal(err)
	}
	var sawDir bool
	for _, fi := range infos {
		if fi.Name() == "documentation" && fi.IsDir() {
			sawDir = true
		}
	}
	if !sawDir {
		t.Fatalf("/historique lacks the documentation directory: %v", infos)
	}
	docs, err := c.ReadDir("/historique/documentation")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range docs {
		names = append(names, fi.Name())
	}
	sort.Strings(names)
	want := []string{"CompteRenduAPA.xsd", "DemandeAPA.xsd", "ReponseAPA.xsd", "cahier-des-charges.md"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("documentation lists %v, want %v", names, want)
	}
	for _, name := range want[:3] {
		f, err := c.Open("/historique/documentation/" + name)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		local, _ := os.ReadFile(filepath.Join("..", "..", "apa", "xsd", name))
		if !bytes.Equal(got, local) {
			t.Fatalf("%s differs from apa/xsd/%s", name, name)
		}
	}
	if _, err := c.OpenFile("/historique/documentation/x.xml", os.O_WRONLY|os.O_CREATE); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("write in documentation: %v", err)
	}
	if err := c.Remove("/historique/documentation/DemandeAPA.xsd"); err == nil {
		t.Fatal("remove in documentation accepted")
	}
	if _, err := c.Stat("/historique/documentation/sub/x"); err == nil {
		t.Fatal("deeper path found")
	}
	// And with OpenSSH.
	needTool(t, "sftp", "sshpass")
	dir := t.TempDir()
	if out, err := e.sftpBatch("alice-xt", e.alice, "get /historique/documentation/cahier-des-charges.md cdc.md\n", dir); err != nil {
		t.Fatalf("sftp get: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cdc.md")); !bytes.Contains(b, []byte("DemandeAPA")) {
		t.Fatal("cahier des charges not downloaded")
	}
}
