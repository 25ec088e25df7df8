//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp/config"
)

// tmpfs mounts a small tmpfs (root only); without the right to mount, the
// test is skipped, and fails in CI.
func tmpfs(t *testing.T, mib int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0700", mib)); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs (the disk-space tests run as root in CI): %v", err)
		}
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillTo writes ballast until the filesystem of dir has about free bytes
// left (0: until it is full).
func fillTo(t *testing.T, dir string, free int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "ballast"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		left := int64(st.Bavail) * st.Bsize
		if left <= free {
			return
		}
		n := min(int64(len(chunk)), left-free)
		if _, err := f.Write(chunk[:n]); err != nil {
			if free == 0 && errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// TestDiskSpace runs pigp on a small tmpfs data directory: a transfer cut
// by a full disk, then uploads refused at open below min_free_space and
// /readyz answering 503 with the reason, then a full disk where a valid login is
// never called a wrong password: refused as unavailable on SQLite (the
// database is on that disk), accepted on PostgreSQL. Every client message
// is the French one.
func TestDiskSpace(t *testing.T) {
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			mnt := tmpfs(t, 64)
			e := startEnv(t, kind, func(c *config.Config) {
				c.DataDir = mnt
				c.HTTPListen = "127.0.0.1:0"
				c.MinFreeSpace = config.Space{Bytes: 24 << 20}
			})
			if err := e.app.StartWeb(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
			base := "http://" + e.app.Web.ListenAddr().String()
			p := newPortal(t, base)
			if status, body := p.get("/readyz"); status != http.StatusOK {
				t.Fatalf("readyz with space: %d %s", status, body)
			}
			c, _ := e.dialSFTP("alice-xt", e.alice)
			if err := put(c, callName(siretA, 1), []byte("<DemandeAPA/>")); err != nil {
				t.Fatal(err)
			}

			t.Run("full disk during a transfer", func(t *testing.T) {
				fillTo(t, mnt, 30<<20)
				err := put(c, callName(siretA, 2), randomBytes(40<<20))
				if err == nil {
					t.Fatal("40 MiB stored on a disk with 30 MiB free")
				}
				if msg := sftpMessage(t, err); !strings.Contains(msg, "le serveur manque d'espace disque") {
					t.Fatalf("client read %q", msg)
				}
				if tmp := e.tmpFiles(); len(tmp) != 0 {
					t.Fatalf("temporary file left: %v", tmp)
				}
				if got := len(e.deposits(siretA)); got != 1 {
					t.Fatalf("%d deposits, want 1", got)
				}
			})

			t.Run("below min_free_space", func(t *testing.T) {
				fillTo(t, mnt, 16<<20)
				_, err := c.Create("/depot/" + callName(siretA, 3))
				if err == nil {
					t.Fatal("upload opened below min_free_space")
				}
				if msg := sftpMessage(t, err); !strings.HasPrefix(msg, "Dépôt refusé : le serveur manque d'espace disque") {
					t.Fatalf("client read %q at open", msg)
				}
				// Not ready, with the reason (logins still work: below).
				status, body := p.get("/readyz")
				if status != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: ") || !strings.Contains(body, "min_free_space") {
					t.Fatalf("readyz below min_free_space: %d %s", status, body)
				}
				p.login("alice-xt", e.alice)
				status, body = p.upload(callName(siretA, 4), []byte("<DemandeAPA/>"))
				if status != http.StatusServiceUnavailable || !strings.Contains(body, "le serveur manque d'espace disque") {
					t.Fatalf("portal upload below min_free_space: %d %s", status, body)
				}
				// A refused name still gets its own message.
				if _, err := c.Create("/depot/nom-invalide.txt"); err == nil || strings.Contains(err.Error(), "espace") {
					t.Fatalf("bad name below min_free_space: %v", err)
				}
			})

			// SQLite lives on the full disk: the login's audit row cannot
			// be written, and the login is refused as the server's own
			// failure. PostgreSQL does not: the login goes through.
			t.Run("login on a full disk", func(t *testing.T) {
				fillTo(t, mnt, 0)
				dbOnDisk := kind == "sqlite"
				cl, banner, err := e.dialFrom("127.0.0.2", "alice-xt", ssh.Password(e.alice))
				switch {
				case dbOnDisk && err == nil:
					cl.Close()
					t.Fatal("SSH login accepted although its audit row cannot be written (SQLite on the full disk)")
				case dbOnDisk && !strings.Contains(banner, "service momentanément indisponible"):
					t.Fatalf("valid SSH login on a full disk refused as a wrong password: %v, banner %q", err, banner)
				case !dbOnDisk && err != nil:
					t.Fatalf("SSH login with the database off the full disk: %v, banner %q", err, banner)
				case !dbOnDisk:
					cl.Close()
				}
				q := newPortal(t, base)
				form := url.Values{"csrf": {q.csrf("/connexion")}, "identifiant": {"alice-xt"}, "motdepasse": {e.alice}}
				req, _ := http.NewRequest("POST", base+"/connexion", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				status, body := q.do(req)
				switch {
				case dbOnDisk && (status != http.StatusServiceUnavailable || !strings.Contains(body, "Service momentanément indisponible")):
					t.Fatalf("valid portal login on a full disk (SQLite on it): %d, want 503 service momentanément indisponible\n%s", status, body)
				case !dbOnDisk && status != http.StatusSeeOther:
					t.Fatalf("valid portal login with the database off the full disk: %d, want 303\n%s", status, body)
				}
			})
		})
	}
}
