package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/store"
)

const (
	cliSIRETA = "22940028800010"
	cliSIRETB = "22750001100019" // valid, but never created as an organisation unless a test does
)

// cli runs pigp with a fixed environment.
type cli struct {
	env map[string]string
}

// newCLI returns a CLI whose data directory is a fresh temporary directory.
func newCLI(t *testing.T) *cli {
	t.Helper()
	return &cli{env: map[string]string{"PIGP_DATA_DIR": t.TempDir()}}
}

func (c *cli) dataDir() string { return c.env["PIGP_DATA_DIR"] }

type cliResult struct {
	code           int
	stdout, stderr string
}

// run runs pigp args with stdin and returns its exit code and output.
func (c *cli) run(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{
		Stdin:  strings.NewReader(stdin),
		Stdout: &stdout,
		Stderr: &stderr,
		Getenv: func(k string) string { return c.env[k] },
	}
	code := m.Run(context.Background(), args)
	return cliResult{code, stdout.String(), stderr.String()}
}

// ok runs pigp args and fails the test unless it exits 0.
func (c *cli) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := c.run(t, "", args...)
	if r.code != 0 {
		t.Fatalf("pigp %s: exit %d, want 0\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs pigp args and checks the exit code and that stderr holds want.
func (c *cli) fails(t *testing.T, code int, want string, stdin string, args ...string) cliResult {
	t.Helper()
	r := c.run(t, stdin, args...)
	if r.code != code {
		t.Fatalf("pigp %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("pigp %s: stderr %q, want it to contain %q", strings.Join(args, " "), r.stderr, want)
	}
	return r
}

// openDB opens the CLI's SQLite database.
func (c *cli) openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.SQLite, filepath.Join(c.dataDir(), "pigp.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (c *cli) account(t *testing.T, login string) *pigp.Account {
	t.Helper()
	a, err := c.openDB(t).FindAccountByLogin(context.Background(), login)
	if err != nil {
		t.Fatalf("FindAccountByLogin(%s): %v", login, err)
	}
	return a
}

func (c *cli) addOrg(t *testing.T, siret string) {
	t.Helper()
	c.ok(t, "org", "add", "--siret", siret, "--name", "Département "+siret)
}

func TestRun_Usage(t *testing.T) {
	c := newCLI(t)
	t.Run("NoArgs", func(t *testing.T) {
		r := c.run(t, "")
		if r.code != 2 || !strings.Contains(r.stdout+r.stderr, "Usage: pigp COMMAND") {
			t.Fatalf("exit %d, output %q; want 2 and the usage", r.code, r.stdout+r.stderr)
		}
	})
	for _, arg := range []string{"-h", "--help", "help"} {
		t.Run(arg, func(t *testing.T) {
			r := c.run(t, "", arg)
			if r.code != 0 || !strings.Contains(r.stdout, "Usage: pigp COMMAND") {
				t.Fatalf("exit %d, stdout %q; want 0 and the usage", r.code, r.stdout)
			}
		})
	}
	t.Run("UnknownCommand", func(t *testing.T) {
		c.fails(t, 2, `unknown command "frobnicate"`, "", "frobnicate")
	})
	t.Run("Version", func(t *testing.T) {
		want := "pigp " + pigp.Version + "\ncommit " + pigp.BuildCommit() + "\ngo " + runtime.Version() + "\n"
		if out := c.ok(t, "version"); out != want {
			t.Fatalf("version printed %q, want %q", out, want)
		}
	})
	t.Run("CommandHelp", func(t *testing.T) {
		r := c.run(t, "", "org", "add", "-h")
		if r.code != 0 || !strings.Contains(r.stderr, "-siret") {
			t.Fatalf("org add -h: exit %d, stderr %q; want 0 and the flags", r.code, r.stderr)
		}
	})
	t.Run("UnknownFlag", func(t *testing.T) {
		c.fails(t, 2, "sirett", "", "org", "add", "--sirett", cliSIRETA)
	})
}

func TestOrg(t *testing.T) {
	c := newCLI(t)
	out := c.ok(t, "org", "add", "--siret", cliSIRETA, "--name", "Département du Val-de-Marne")
	if !strings.Contains(out, cliSIRETA) || !strings.Contains(out, "Département du Val-de-Marne") {
		t.Fatalf("org add printed %q", out)
	}

	t.Run("Duplicate", func(t *testing.T) {
		c.fails(t, 1, "existe déjà", "", "org", "add", "--siret", cliSIRETA, "--name", "again")
	})
	t.Run("BadChecksum", func(t *testing.T) {
		c.fails(t, 1, "clé de contrôle", "", "org", "add", "--siret", "22940028800011", "--name", "x")
	})
	t.Run("NotDigits", func(t *testing.T) {
		c.fails(t, 1, "14 chiffres", "", "org", "add", "--siret", "2294002880", "--name", "x")
	})
	t.Run("MissingFlags", func(t *testing.T) {
		c.fails(t, 2, "--siret and --name are required", "", "org", "add", "--siret", cliSIRETB)
		c.fails(t, 2, "--siret and --name are required", "", "org", "add", "--name", "x")
	})
	t.Run("StrayArgument", func(t *testing.T) {
		c.fails(t, 2, "unexpected argument", "", "org", "add", "--siret", cliSIRETB, "--name", "x", "extra")
	})
	t.Run("NoSubcommand", func(t *testing.T) {
		c.fails(t, 2, "missing subcommand", "", "org")
		c.fails(t, 2, "unknown subcommand", "", "org", "delete")
	})
	t.Run("List", func(t *testing.T) {
		out := c.ok(t, "org", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("org list printed %q, want a header and one row", out)
		}
		if f := strings.Fields(lines[0]); len(f) < 2 || f[0] != "SIRET" || f[1] != "NOM" {
			t.Fatalf("header %q", lines[0])
		}
		if !strings.HasPrefix(lines[1], cliSIRETA) || !strings.Contains(lines[1], "Département du Val-de-Marne") ||
			!strings.Contains(lines[1], time.Now().UTC().Format("2006-01-02")) {
			t.Fatalf("row %q", lines[1])
		}
		if strings.Contains(out, "22940028800011") || strings.Contains(out, "again") {
			t.Fatalf("org list shows a refused organisation: %q", out)
		}
	})
}

var cliGeneratedRE = regexp.MustCompile(`mot de passe \(affiché une seule fois\) : (\S+)\n`)

func TestUserAdd(t *testing.T) {
	c := newCLI(t)
	c.addOrg(t, cliSIRETA)
	add := func(login string, extra ...string) []string {
		return append([]string{"user", "add", "--login", login, "--siret", cliSIRETA, "--name", "Denis Jouffre", "--email", login + "@ex.fr"}, extra...)
	}

	t.Run("GeneratedPassword", func(t *testing.T) {
		out := c.ok(t, add("djouffre-xt")...)
		m := cliGeneratedRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("user add printed %q, want the generated password", out)
		}
		pw := m[1]
		if n := strings.Count(out, pw); n != 1 {
			t.Fatalf("password printed %d times, want once", n)
		}
		if err := pigp.CheckPassword(pw, "djouffre-xt", "Denis Jouffre", []string{cliSIRETA}); err != nil {
			t.Fatalf("generated password %q breaks the policy: %v", pw, err)
		}
		a := c.account(t, "djouffre-xt")
		if !pigp.VerifyPassword(a.PasswordHash, pw) {
			t.Fatal("the printed password does not verify against the stored hash")
		}
		if strings.Contains(a.PasswordHash, pw) || !strings.HasPrefix(a.PasswordHash, "$argon2id$") {
			t.Fatalf("stored hash %q", a.PasswordHash)
		}
		if a.State != pigp.AccountActive || a.PasswordTemporary || a.Email != "djouffre-xt@ex.fr" || a.Name != "Denis Jouffre" ||
			len(a.SIRETs) != 1 || a.SIRETs[0] != cliSIRETA {
			t.Fatalf("account = %+v", a)
		}
		if want := a.PasswordSetAt.AddDate(0, 12, 0); !a.PasswordExpiresAt.Equal(want) {
			t.Fatalf("PasswordExpiresAt = %v, want 12 months after %v", a.PasswordExpiresAt, a.PasswordSetAt)
		}
		if !strings.Contains(out, a.PasswordExpiresAt.Format("2006-01-02")) {
			t.Fatalf("user add printed %q, want the expiry date", out)
		}
	})

	t.Run("PasswordStdin", func(t *testing.T) {
		const pw = "Tr0ub4dor&3xyz"
		r := c.run(t, pw+"\n", add("stdin-user", "--password-stdin")...)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if strings.Contains(r.stdout, pw) || strings.Contains(r.stdout, "affiché une seule fois") {
			t.Fatalf("user add --password-stdin printed %q, want no password", r.stdout)
		}
		if a := c.account(t, "stdin-user"); !pigp.VerifyPassword(a.PasswordHash, pw) {
			t.Fatal("the stdin password does not verify against the stored hash")
		}
	})

	t.Run("PasswordStdinCRLF", func(t *testing.T) {
		const pw = "Tr0ub4dor&3xyz"
		if r := c.run(t, pw+"\r\n", add("crlf-user", "--password-stdin")...); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if a := c.account(t, "crlf-user"); !pigp.VerifyPassword(a.PasswordHash, pw) {
			t.Fatal("the password read with CRLF does not verify without its line end")
		}
	})

	for _, tt := range []struct{ name, password, want string }{
		{"Short", "Ab1-short", "12 caractères au moins"},
		{"TwoClasses", "abcdefghijkl", "trois types"},
		{"ContainsLogin", "Xx-weak-user-9", "identifiant"},
		{"ContainsSIRET", "Ab-" + cliSIRETA, "SIRET"},
		{"Accent", "Abcdéfgh1234!", "ASCII"},
	} {
		t.Run("Weak"+tt.name, func(t *testing.T) {
			r := c.fails(t, 1, tt.want, tt.password+"\n", add("weak-user", "--password-stdin")...)
			if strings.Contains(r.stdout+r.stderr, tt.password) {
				t.Fatalf("output echoes the refused password: %q", r.stdout+r.stderr)
			}
			if _, err := c.openDB(t).FindAccountByLogin(context.Background(), "weak-user"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
				t.Fatalf("refused account exists: %v", err)
			}
		})
	}

	t.Run("EmptyStdin", func(t *testing.T) {
		c.fails(t, 2, "no password", "", add("nostdin-user", "--password-stdin")...)
	})
	t.Run("UnknownOrg", func(t *testing.T) {
		r := c.fails(t, 1, cliSIRETB, "", "user", "add", "--login", "other-user", "--siret", cliSIRETB, "--name", "X Y", "--email", "x@ex.fr")
		if !strings.Contains(r.stderr, "inconnue") {
			t.Fatalf("stderr %q, want it to say the organisation is unknown", r.stderr)
		}
		if strings.Contains(r.stdout, "mot de passe") {
			t.Fatalf("a password was printed for a refused account: %q", r.stdout)
		}
	})
	t.Run("BadSIRET", func(t *testing.T) {
		c.fails(t, 1, "clé de contrôle", "", "user", "add", "--login", "other-user", "--siret", "22940028800011", "--name", "X Y", "--email", "x@ex.fr")
	})
	t.Run("DuplicateLogin", func(t *testing.T) {
		r := c.fails(t, 1, "existe déjà", "", add("djouffre-xt")...)
		if strings.Contains(r.stdout, "mot de passe") {
			t.Fatalf("a password was printed for a refused account: %q", r.stdout)
		}
	})
	t.Run("BadLogin", func(t *testing.T) {
		c.fails(t, 1, "identifiant", "", add("Bad Login")...)
	})
	t.Run("BadEmail", func(t *testing.T) {
		c.fails(t, 1, "adresse électronique", "", "user", "add", "--login", "mail-user", "--siret", cliSIRETA, "--name", "X Y", "--email", "nope")
	})
	t.Run("MissingFlags", func(t *testing.T) {
		c.fails(t, 2, "required", "", "user", "add", "--login", "x-user", "--siret", cliSIRETA)
		c.fails(t, 2, "required", "", "user", "add")
	})
	t.Run("NoSubcommand", func(t *testing.T) {
		c.fails(t, 2, "missing subcommand", "", "user")
		c.fails(t, 2, "unknown subcommand", "", "user", "remove")
	})
}

func TestUserLifecycle(t *testing.T) {
	c := newCLI(t)
	c.addOrg(t, cliSIRETA)
	c.addOrg(t, cliSIRETB)
	out := c.ok(t, "user", "add", "--login", "djouffre-xt", "--siret", cliSIRETA+","+cliSIRETB, "--name", "Denis Jouffre", "--email", "d@ex.fr")
	oldPassword := cliGeneratedRE.FindStringSubmatch(out)[1]

	row := func(t *testing.T) string {
		t.Helper()
		out := c.ok(t, "user", "list")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("user list printed %q, want a header and one row", out)
		}
		for _, col := range []string{"IDENTIFIANT", "NOM", "COURRIEL", "SIRET", "ÉTAT", "EXPIRATION MOT DE PASSE", "CLÉS SSH"} {
			if !strings.Contains(lines[0], col) {
				t.Fatalf("header %q lacks column %q", lines[0], col)
			}
		}
		return lines[1]
	}

	t.Run("List", func(t *testing.T) {
		r := row(t)
		a := c.account(t, "djouffre-xt")
		for _, want := range []string{"djouffre-xt", "Denis Jouffre", "d@ex.fr", cliSIRETA, cliSIRETB, "active",
			a.PasswordExpiresAt.Format("2006-01-02")} {
			if !strings.Contains(r, want) {
				t.Fatalf("row %q lacks %q", r, want)
			}
		}
		if f := strings.Fields(r); f[len(f)-1] != "0" {
			t.Fatalf("row %q: want 0 SSH keys in the last column", r)
		}
	})

	t.Run("Disable", func(t *testing.T) {
		if out := c.ok(t, "user", "disable", "--login", "djouffre-xt"); !strings.Contains(out, "désactivé") {
			t.Fatalf("disable printed %q", out)
		}
		if a := c.account(t, "djouffre-xt"); a.State != pigp.AccountDisabled {
			t.Fatalf("state = %q, want disabled", a.State)
		}
		if r := row(t); !strings.Contains(r, "disabled") {
			t.Fatalf("row %q, want disabled", r)
		}
	})
	t.Run("Enable", func(t *testing.T) {
		if out := c.ok(t, "user", "enable", "--login", "djouffre-xt"); !strings.Contains(out, "activé") {
			t.Fatalf("enable printed %q", out)
		}
		if a := c.account(t, "djouffre-xt"); a.State != pigp.AccountActive {
			t.Fatalf("state = %q, want active", a.State)
		}
	})
	t.Run("StateErrors", func(t *testing.T) {
		c.fails(t, 1, "nobody", "", "user", "disable", "--login", "nobody")
		c.fails(t, 1, "nobody", "", "user", "enable", "--login", "nobody")
		c.fails(t, 2, "--login is required", "", "user", "disable")
	})

	t.Run("ResetPassword", func(t *testing.T) {
		out := c.ok(t, "user", "reset-password", "--login", "djouffre-xt")
		m := regexp.MustCompile(`mot de passe temporaire de djouffre-xt .*: (\S+)\n`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("reset-password printed %q, want a temporary password", out)
		}
		a := c.account(t, "djouffre-xt")
		if !pigp.VerifyPassword(a.PasswordHash, m[1]) {
			t.Fatal("the temporary password does not verify against the stored hash")
		}
		if pigp.VerifyPassword(a.PasswordHash, oldPassword) {
			t.Fatal("the old password still verifies")
		}
		if !a.PasswordTemporary {
			t.Fatal("PasswordTemporary = false after a reset")
		}
		if r := row(t); !strings.Contains(r, "temporaire") {
			t.Fatalf("row %q, want it to show the temporary password", r)
		}
		c.fails(t, 1, "nobody", "", "user", "reset-password", "--login", "nobody")
		c.fails(t, 2, "--login is required", "", "user", "reset-password")
	})

	t.Run("KeyAdd", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "id_ed25519.pub")
		var line []byte
		if path, err := exec.LookPath("ssh-keygen"); err == nil {
			if out, err := exec.Command(path, "-q", "-t", "ed25519", "-N", "", "-C", "denis@poste", "-f", filepath.Join(dir, "id_ed25519")).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v: %s", err, out)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			line = b
		} else {
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			pk, _ := ssh.NewPublicKey(pub)
			line = append(bytes.TrimSpace(ssh.MarshalAuthorizedKey(pk)), " denis@poste\n"...)
			if err := os.WriteFile(file, line, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			t.Fatal(err)
		}
		fp := ssh.FingerprintSHA256(pk)

		out := c.ok(t, "user", "key", "add", "--login", "djouffre-xt", "--file", file)
		if !strings.Contains(out, fp) {
			t.Fatalf("key add printed %q, want the fingerprint %s", out, fp)
		}
		a := c.account(t, "djouffre-xt")
		k, err := c.openDB(t).FindSSHKey(context.Background(), a.ID, fp)
		if err != nil {
			t.Fatalf("FindSSHKey: %v", err)
		}
		if k.Comment != "denis@poste" {
			t.Fatalf("comment = %q, want denis@poste", k.Comment)
		}
		if f := strings.Fields(row(t)); f[len(f)-1] != "1" {
			t.Fatalf("user list row %q: want 1 SSH key", f)
		}

		c.fails(t, 1, "déjà enregistrée", "", "user", "key", "add", "--login", "djouffre-xt", "--file", file)
		c.fails(t, 1, "nobody", "", "user", "key", "add", "--login", "nobody", "--file", file)
		c.fails(t, 1, "lecture", "", "user", "key", "add", "--login", "djouffre-xt", "--file", filepath.Join(dir, "missing.pub"))
		c.fails(t, 2, "required", "", "user", "key", "add", "--login", "djouffre-xt")
		c.fails(t, 2, "user key add", "", "user", "key")

		garbage := filepath.Join(dir, "garbage.pub")
		os.WriteFile(garbage, []byte("not a key\n"), 0o600)
		c.fails(t, 1, "authorized_keys", "", "user", "key", "add", "--login", "djouffre-xt", "--file", garbage)

		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rpk, _ := ssh.NewPublicKey(&rsaKey.PublicKey)
		short := filepath.Join(dir, "id_rsa.pub")
		os.WriteFile(short, ssh.MarshalAuthorizedKey(rpk), 0o600)
		c.fails(t, 1, "3072", "", "user", "key", "add", "--login", "djouffre-xt", "--file", short)
	})
}

func TestResponsePublish(t *testing.T) {
	c := newCLI(t)
	c.addOrg(t, cliSIRETA)
	dir := t.TempDir()
	content := []byte("<ReponseAPA>…</ReponseAPA>\n")
	file := filepath.Join(dir, "2026_"+cliSIRETA+"_20261128103016_REP.xml")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(content)
	wantSum := hex.EncodeToString(h[:])

	out := c.ok(t, "response", "publish", "--siret", cliSIRETA, file)
	if !strings.Contains(out, wantSum) || !strings.Contains(out, filepath.Base(file)) {
		t.Fatalf("publish printed %q, want the name and sha256 %s", out, wantSum)
	}
	c.ok(t, "response", "publish", "--siret", cliSIRETA, "--name", "rejet.xml", "--report", file)

	// The files are in the SIRET's /retrait as the exchange serves it.
	db := c.openDB(t)
	blobs, err := blob.Open(filepath.Join(c.dataDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	svc := exchange.New(db, blob.NewFS(blobs), blobs, nil)
	rs, err := svc.Responses(context.Background(), &pigp.Caller{SIRETs: []string{cliSIRETA}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*pigp.Response{}
	for _, r := range rs {
		got[r.Name] = r
	}
	r := got[filepath.Base(file)]
	if len(rs) != 2 || r == nil || got["rejet.xml"] == nil {
		t.Fatalf("Responses = %v, want the two published files", rs)
	}
	if r.SHA256 != wantSum || r.Size != int64(len(content)) || r.DocType != pigp.DocResponse {
		t.Fatalf("response = %+v", r)
	}
	if got["rejet.xml"].DocType != pigp.DocReport {
		t.Fatalf("--report published a %q", got["rejet.xml"].DocType)
	}
	f, err := blobs.Open(r.StorageKey)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stored := make([]byte, len(content)+1)
	n, _ := f.Read(stored)
	if !bytes.Equal(stored[:n], content) {
		t.Fatalf("stored %q, want %q", stored[:n], content)
	}
	if rs, _ := svc.Responses(context.Background(), &pigp.Caller{SIRETs: []string{cliSIRETB}}); len(rs) != 0 {
		t.Fatalf("another SIRET sees %v", rs)
	}

	t.Run("Errors", func(t *testing.T) {
		c.fails(t, 1, "existe déjà", "", "response", "publish", "--siret", cliSIRETA, file)
		c.fails(t, 1, cliSIRETB, "", "response", "publish", "--siret", cliSIRETB, file)
		c.fails(t, 1, "lecture", "", "response", "publish", "--siret", cliSIRETA, filepath.Join(dir, "missing.xml"))
		c.fails(t, 1, "refusé", "", "response", "publish", "--siret", cliSIRETA, "--name", "../x.xml", file)
		c.fails(t, 2, "required", "", "response", "publish", file)
		c.fails(t, 2, "required", "", "response", "publish", "--siret", cliSIRETA)
		c.fails(t, 2, "unexpected argument", "", "response", "publish", "--siret", cliSIRETA, file, file)
		c.fails(t, 2, "usage", "", "response")
	})
}

func TestMigrate(t *testing.T) {
	c := newCLI(t)
	first := c.ok(t, "migrate")
	if !strings.Contains(first, "applied migrations") {
		t.Fatalf("first migrate printed %q, want the applied migrations", first)
	}
	second := c.ok(t, "migrate")
	if !strings.Contains(second, "schema up to date") || !strings.Contains(second, "sqlite") {
		t.Fatalf("second migrate printed %q, want schema up to date", second)
	}
	if err := c.openDB(t).CheckSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFile(t *testing.T) {
	fileDir := filepath.Join(t.TempDir(), "from-file")
	envDir := filepath.Join(t.TempDir(), "from-env")
	flagDir := filepath.Join(t.TempDir(), "from-flag")
	cfg := filepath.Join(t.TempDir(), "pigp.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+fileDir+"\nlog_level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exists := func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, "pigp.db"))
		return err == nil
	}

	t.Run("FileHonoured", func(t *testing.T) {
		c := &cli{env: map[string]string{}}
		c.ok(t, "org", "add", "--config", cfg, "--siret", cliSIRETA, "--name", "From file")
		if !exists(fileDir) {
			t.Fatalf("no database in the config file's data_dir %s", fileDir)
		}
		if out := c.ok(t, "org", "list", "--config", cfg); !strings.Contains(out, "From file") {
			t.Fatalf("org list --config printed %q", out)
		}
	})
	t.Run("EnvWins", func(t *testing.T) {
		c := &cli{env: map[string]string{"PIGP_DATA_DIR": envDir}}
		c.ok(t, "org", "add", "--config", cfg, "--siret", cliSIRETB, "--name", "From env")
		if !exists(envDir) {
			t.Fatalf("no database in PIGP_DATA_DIR %s", envDir)
		}
		out := c.ok(t, "org", "list", "--config", cfg)
		if !strings.Contains(out, "From env") || strings.Contains(out, "From file") {
			t.Fatalf("org list with PIGP_DATA_DIR printed %q, want only the env directory's organisation", out)
		}
	})
	t.Run("FlagWinsOverEnv", func(t *testing.T) {
		c := &cli{env: map[string]string{"PIGP_DATA_DIR": envDir}}
		c.ok(t, "migrate", "--config", cfg, "--data-dir", flagDir)
		if !exists(flagDir) {
			t.Fatalf("no database in --data-dir %s", flagDir)
		}
	})
	t.Run("DatabaseURL", func(t *testing.T) {
		dbPath := filepath.Join(t.TempDir(), "elsewhere", "x.db")
		c := &cli{env: map[string]string{"PIGP_DATA_DIR": t.TempDir(), "PIGP_DATABASE_URL": "sqlite://" + dbPath}}
		c.ok(t, "migrate")
		if _, err := os.Stat(dbPath); err != nil {
			t.Fatalf("PIGP_DATABASE_URL not honoured: %v", err)
		}
	})
	t.Run("UnknownKey", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(bad, []byte("data_dir: /tmp/x\nsftp_lisen: :22\n"), 0o600)
		c := &cli{env: map[string]string{}}
		c.fails(t, 1, "sftp_lisen", "", "org", "list", "--config", bad)
	})
	t.Run("InvalidValue", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(bad, []byte("data_dir: "+t.TempDir()+"\nlog_level: verbose\n"), 0o600)
		c := &cli{env: map[string]string{}}
		c.fails(t, 1, "log_level", "", "org", "list", "--config", bad)
	})
	t.Run("MissingFile", func(t *testing.T) {
		c := &cli{env: map[string]string{"PIGP_DATA_DIR": t.TempDir()}}
		c.fails(t, 1, "config", "", "org", "list", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
	})
	t.Run("BadEnv", func(t *testing.T) {
		c := &cli{env: map[string]string{"PIGP_DATA_DIR": t.TempDir(), "PIGP_MAX_UPLOAD_SIZE": "huge"}}
		c.fails(t, 1, "PIGP_MAX_UPLOAD_SIZE", "", "org", "list")
	})
}

// cliBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type cliBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *cliBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *cliBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestServeCommand(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data") // serve creates it
	serve := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var stdout, stderr cliBuffer
		m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string {
			// Every listener on a free port, the portal's included (its
			// default :8080 may be taken on the machine).
			return map[string]string{"PIGP_DATA_DIR": dataDir, "PIGP_SFTP_LISTEN": "127.0.0.1:0",
				"PIGP_HTTP_LISTEN": "127.0.0.1:0"}[k]
		}}
		done := make(chan int, 1)
		go func() { done <- m.Run(ctx, []string{"serve"}) }()
		deadline := time.After(30 * time.Second)
		for !strings.Contains(stderr.String(), "sftp server listening") || !strings.Contains(stderr.String(), "portal listening") {
			select {
			case code := <-done:
				t.Fatalf("serve exited %d before listening: %s", code, stderr.String())
			case <-deadline:
				t.Fatalf("serve not listening after 30 s: %s", stderr.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("serve exited %d after cancel, want 0: %s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not stop after cancel")
		}
	}

	serve(t)
	keyPath := filepath.Join(dataDir, "hostkeys", "ssh_host_ed25519_key")
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("no ed25519 host key after the first start: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("host key mode = %o, want 600", perm)
	}
	first, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(first)
	if err != nil || signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("host key: %v, %v; want an ed25519 key", signer, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pigp.db")); err != nil {
		t.Fatalf("serve did not create the database: %v", err)
	}

	serve(t)
	second, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatal("the host key changed on the second start, want it reused")
	}
}

// TestUserCivility: the civility shown before the name, set at creation
// and changed later; anything but MR or MME is refused.
func TestUserCivility(t *testing.T) {
	c := newCLI(t)
	c.addOrg(t, cliSIRETA)
	c.ok(t, "user", "add", "--login", "djouffre-xt", "--siret", cliSIRETA, "--name", "Denis Jouffre", "--email", "d@ex.fr", "--civilite", "mr")
	if a := c.account(t, "djouffre-xt"); a.Civility != pigp.CivilityMr {
		t.Fatalf("civility %q, want MR", a.Civility)
	}
	if out := c.ok(t, "user", "list"); !strings.Contains(strings.Join(strings.Fields(out), " "), "djouffre-xt MR Denis Jouffre") {
		t.Fatalf("user list:\n%s", out)
	}
	c.fails(t, 1, "civilité \"Mlle\" invalide : MR ou MME", "", "user", "add", "--login", "x-xt", "--siret", cliSIRETA,
		"--name", "X", "--email", "x@ex.fr", "--civilite", "Mlle")
	c.ok(t, "user", "update", "--login", "djouffre-xt", "--civilite", "MME")
	if a := c.account(t, "djouffre-xt"); a.Civility != pigp.CivilityMme {
		t.Fatalf("civility %q after update, want MME", a.Civility)
	}
	c.ok(t, "user", "update", "--login", "djouffre-xt", "--civilite", "-")
	if a := c.account(t, "djouffre-xt"); a.Civility != "" {
		t.Fatalf("civility %q after removal", a.Civility)
	}
	c.fails(t, 1, "identifiant inconnu-xt inconnu", "", "user", "update", "--login", "inconnu-xt", "--civilite", "MR")
	c.fails(t, 2, "--login and --civilite are required", "", "user", "update", "--login", "djouffre-xt")
}

// TestPortalOff: http_listen "off" disables the portal, as documented.
func TestPortalOff(t *testing.T) {
	e := startEnv(t, "sqlite", func(c *config.Config) { c.HTTPListen = "off" })
	if err := e.app.StartWeb(); err != nil || e.app.Web != nil {
		t.Fatalf("StartWeb with http_listen off: %v, portal %v", err, e.app.Web)
	}
}
