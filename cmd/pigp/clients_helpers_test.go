package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/server"
)

// The clients suite (issue 7) drives real SFTP clients against pigp started
// in process: the helpers here prepare one "round" per client (a valid
// deposit, a refused one, a response to download) and check what the
// server recorded. .ci/clients.sh installs the clients.

// clientTimeout bounds every client command.
const clientTimeout = 60 * time.Second

// clientsDir is where .ci/clients.sh installs npm packages.
func clientsDir() string {
	if d := os.Getenv("PIGP_CLIENTS_DIR"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "pigp-clients")
}

// missingClient skips the test, or fails it in CI, where every client must
// be installed.
func missingClient(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI (installed by .ci/clients.sh)", what)
	}
	t.Skipf("%s not installed (bash .ci/clients.sh)", what)
}

// needFile skips (or fails in CI) when path is missing.
func needFile(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missingClient(t, what)
	}
}

// needPython skips (or fails in CI) when Debian's python3 cannot import
// paramiko.
func needPython(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import paramiko").Run(); err != nil {
		missingClient(t, "python3-paramiko (for /usr/bin/python3)")
	}
}

// run runs a client command in dir with a bounded time and returns its
// combined output.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return string(out), err
}

// round is one client's exchange: a valid deposit, a refused one and a
// response to download, with the files on the client side in dir.
type round struct {
	t    *testing.T
	e    *env
	dir  string
	n    int    // base of the call-file timestamps
	ok   string // valid call-file name
	data []byte // its content
	bad  string // refused name: a SIRET alice-xt may not act for
	resp string // response published for alice's SIRET
	body []byte // its content
}

// newRound prepares the files of one client; n must be unique per client
// (it spaces the call-file timestamps).
func newRound(t *testing.T, e *env, n, size int) *round {
	t.Helper()
	r := &round{t: t, e: e, dir: t.TempDir(), n: n,
		ok: callName(siretA, n), data: randomBytes(size), bad: callName(siretB, n)}
	ts := callEpoch.Add(-time.Hour).Add(time.Duration(n) * time.Second).Format("20060102150405")
	r.resp = "2026_" + siretA + "_" + ts + "_REP.xml"
	r.body = []byte("<ReponseAPA client=\"" + t.Name() + "\">" + strings.Repeat("é", n) + "</ReponseAPA>\n")
	r.write(r.ok, r.data)
	r.write(r.bad, []byte("<AppelAPA/>"))
	e.publish(siretA, r.resp, r.body)
	return r
}

func (r *round) write(name string, data []byte) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), data, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *round) path(name string) string { return filepath.Join(r.dir, name) }

// extra adds another valid call file to the round and returns its name.
func (r *round) extra(k, size int) (string, []byte) {
	name, data := callName(siretA, r.n+k), randomBytes(size)
	r.write(name, data)
	return name, data
}

// deposit returns the newest deposit named name.
func (r *round) deposit(name string) *pigp.Deposit {
	r.t.Helper()
	for _, d := range r.e.deposits(siretA) {
		if d.ExternalName == name {
			return d
		}
	}
	return nil
}

// checkDeposit checks that name was deposited once with the SHA-256 and
// the bytes of the client's file.
func (r *round) checkDeposit(name string, data []byte) *pigp.Deposit {
	r.t.Helper()
	var found []*pigp.Deposit
	for _, d := range r.e.deposits(siretA) {
		if d.ExternalName == name {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		r.t.Fatalf("%s: %d deposits, want 1", name, len(found))
	}
	d := found[0]
	if d.SHA256 != sha(data) || d.Size != int64(len(data)) || d.Login != "alice-xt" || d.Status != pigp.DepositReceived {
		r.t.Fatalf("%s: deposit %+v; want size %d sha256 %s", name, d, len(data), sha(data))
	}
	if !bytes.Equal(r.e.content(d), data) {
		r.t.Fatalf("%s: stored content differs from the client's file", name)
	}
	return d
}

// checkRefused checks that the refused name left nothing: no deposit under
// any SIRET and nothing STAT-able.
func (r *round) checkRefused(name string) {
	r.t.Helper()
	for _, s := range []string{siretA, siretB} {
		for _, d := range r.e.deposits(s) {
			if d.ExternalName == name {
				r.t.Fatalf("refused %s was recorded: %+v", name, d)
			}
		}
	}
	c, _ := r.e.dialSFTP("alice-xt", r.e.alice)
	if fi, err := c.Stat("/depot/" + name); err == nil {
		r.t.Fatalf("refused %s is STAT-able: %v", name, fi.Size())
	}
}

// checkDownload checks the downloaded response file.
func (r *round) checkDownload(file string) {
	r.t.Helper()
	got, err := os.ReadFile(r.path(file))
	if err != nil {
		r.t.Fatalf("download: %v", err)
	}
	if !bytes.Equal(got, r.body) {
		r.t.Fatalf("downloaded %q, want %q", got, r.body)
	}
}

// checkHistory checks that the downloaded depots.csv lists the deposit d
// with its id and SHA-256.
func (r *round) checkHistory(file string, d *pigp.Deposit) {
	r.t.Helper()
	b, err := os.ReadFile(r.path(file))
	if err != nil {
		r.t.Fatalf("history: %v", err)
	}
	cr := csv.NewReader(bytes.NewReader(b))
	cr.Comma = ';'
	rows, err := cr.ReadAll()
	if err != nil {
		r.t.Fatalf("depots.csv does not parse: %v\n%s", err, b)
	}
	for _, row := range rows[1:] {
		if row[0] == d.ExternalName && row[4] == d.ID && row[6] == d.SHA256 {
			return
		}
	}
	r.t.Fatalf("depots.csv does not list %s (%s):\n%s", d.ExternalName, d.ID, b)
}

// hostKeyFingerprints returns the SHA-256 fingerprints of the server's host
// keys (ed25519, ECDSA P-256).
func (e *env) hostKeyFingerprints() []string {
	e.t.Helper()
	keys, err := server.LoadOrCreateHostKeys(filepath.Join(e.app.Config.DataDir, "hostkeys"))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		out = append(out, ssh.FingerprintSHA256(k.PublicKey()))
	}
	return out
}
