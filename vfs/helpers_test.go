package vfs_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/pkg/sftp"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/internal/sftptest"
)

// Shorthands of the harness.
const (
	siretA = sftptest.SIRETA
	siretB = sftptest.SIRETB
	siretC = sftptest.SIRETC

	fxOK       = sftptest.FxOK
	fxEOF      = sftptest.FxEOF
	fxNoFile   = sftptest.FxNoSuchFile
	fxDenied   = sftptest.FxPermissionDenied
	fxFailure  = sftptest.FxFailure
	flagRead   = sftptest.FlagRead
	flagWrite  = sftptest.FlagWrite
	flagAppend = sftptest.FlagAppend
	flagCreat  = sftptest.FlagCreat
	flagTrunc  = sftptest.FlagTrunc
	flagExcl   = sftptest.FlagExcl
	// flagPut is what clients send to upload: WRITE|CREAT|TRUNC.
	flagPut = flagWrite | flagCreat | flagTrunc
)

func callName(siret string, n int) string { return sftptest.CallName(siret, n) }

// The messages the client reads (vfs.go, limits.go).
const (
	msgNotFound   = "Fichier ou répertoire introuvable"
	msgReadOnly   = "Opération refusée : ce répertoire est en lecture seule"
	msgWriteDepot = "Opération refusée : seuls les dépôts de fichiers d'appel dans /depot sont autorisés"
	msgDenied     = "Opération refusée"
	msgDepotRead  = "Lecture refusée : /depot est une boîte de dépôt ; les réponses sont dans /retrait"
	msgTakenOver  = "Envoi interrompu : le fichier temporaire a été repris par une autre connexion"
	msgNotDir     = "Ce n'est pas un répertoire"
	msgNotLink    = "Ce n'est pas un lien symbolique"
	msgReadDir    = "Impossible de lire un répertoire"
	msgGeneric    = "Erreur interne du serveur. Réessayez plus tard ou contactez l'assistance."
)

// wantStatus checks a status and its message: msg must equal want, or
// contain it when want starts with "…".
func wantStatus(t *testing.T, what string, code uint32, msg string, wantCode uint32, want string) {
	t.Helper()
	ok := code == wantCode
	if sub, found := strings.CutPrefix(want, "…"); found {
		ok = ok && strings.Contains(msg, sub)
	} else {
		ok = ok && msg == want
	}
	if !ok {
		t.Errorf("%s: status %d %q; want %d %q", what, code, msg, wantCode, want)
	}
}

// put uploads data to /depot/name (WRITE|CREAT|TRUNC).
func put(t *testing.T, c *sftp.Client, name string, data []byte) {
	t.Helper()
	if err := sftptest.Put(c, name, data); err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
}

// upload writes data to a new handle of /depot/name and leaves it open.
func upload(t *testing.T, c *sftp.Client, name string, flags int, data []byte) *sftp.File {
	t.Helper()
	f, err := c.OpenFile("/depot/"+name, flags)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	if len(data) > 0 {
		if _, err := f.Write(data); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	return f
}

// read returns the content of path.
func read(t *testing.T, c *sftp.Client, path string) []byte {
	t.Helper()
	f, err := c.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
	return buf.Bytes()
}

// notExist checks that err is pkg/sftp's "does not exist".
func notExist(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want not found", what, err)
	}
}

func data(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// deposit returns the one deposit of siretA named name, or fails.
func deposit(t *testing.T, e *sftptest.Env, name string) *pigp.Deposit {
	t.Helper()
	var found *pigp.Deposit
	for _, d := range e.Deposits(siretA) {
		if d.ExternalName == name {
			if found != nil {
				t.Fatalf("two deposits named %s", name)
			}
			found = d
		}
	}
	if found == nil {
		t.Fatalf("no deposit named %s", name)
	}
	return found
}
