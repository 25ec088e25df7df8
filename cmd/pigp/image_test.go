package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// imageLDFlags and imageBuildArgs are the Dockerfile's build command
// (TestDockerfile checks that it still says so).
const (
	imageVersion = "image-test"
	imageCommit  = "0123456789abcdef0123456789abcdef01234567"
	imageLDFlags = "-s -w -buildid= -X github.com/pigp/pigp.Version=" + imageVersion +
		" -X github.com/pigp/pigp.Commit=" + imageCommit
)

var imageBuildArgs = []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + imageLDFlags}

// buildStatic builds pigp as the Dockerfile does (CGO_ENABLED=0, -trimpath,
// stamped version) and checks that the result is a static executable.
func buildStatic(t *testing.T, dir string) string {
	return buildStaticIn(t, ".", dir)
}

// buildStaticIn builds the main package in pkgDir into dir.
func buildStaticIn(t *testing.T, pkgDir, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pigp")
	cmd := exec.Command("go", append(imageBuildArgs, "-o", bin, ".")...)
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary is dynamically linked (%v)", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs %v", libs)
	}
	return bin
}

// emptyRoot is a directory holding only the binary (/pigp) and a data
// directory (/data), in which commands run as the image's numeric non-root
// user (65532): a stand-in for the distroless image when no container
// engine is at hand. As root it uses chroot; otherwise an unprivileged user
// namespace.
type emptyRoot struct {
	t    *testing.T
	dir  string
	asNS bool
}

const imageUID = 65532

func newEmptyRoot(t *testing.T, bin string) *emptyRoot {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pigp"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	r := &emptyRoot{t: t, dir: dir, asNS: os.Geteuid() != 0}
	if !r.asNS {
		if err := os.Chown(filepath.Join(dir, "data"), imageUID, imageUID); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing else: no /etc, /tmp, /dev, /usr/share/zoneinfo or CA bundle.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("the root holds %d entries, want 2", len(entries))
	}
	return r
}

// command returns /pigp args... to run inside the root, with only env.
func (r *emptyRoot) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("/pigp", args...)
	cmd.Path = "/pigp"
	cmd.Dir = "/"
	cmd.Env = env
	attr := &syscall.SysProcAttr{Chroot: r.dir}
	if r.asNS {
		attr.Cloneflags = syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: imageUID, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: imageUID, HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	} else {
		attr.Credential = &syscall.Credential{Uid: imageUID, Gid: imageUID}
	}
	cmd.SysProcAttr = attr
	return cmd
}

// run runs a short command inside the root.
func (r *emptyRoot) run(env []string, stdin string, args ...string) (code int, stdout, stderr string) {
	r.t.Helper()
	cmd := r.command(env, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		if r.asNS && os.Getenv("CI") != "true" {
			r.t.Skipf("cannot enter an empty root (not root, and no user namespace): %v", err)
		}
		r.t.Fatalf("run %v in the empty root: %v", args, err)
	}
	return code, o.String(), e.String()
}

// lockedBuffer collects a process's stderr while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listenAddrs reads the bound addresses from JSON log lines, by component.
func listenAddrs(log string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var rec struct {
			Msg, Component, Addr string
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Addr != "" && strings.Contains(rec.Msg, "listening") {
			out[rec.Component] = rec.Addr
		}
	}
	return out
}

// TestImageRoot builds the static binary (twice, to show the build is
// reproducible) and runs `pigp serve` and `pigp
// healthcheck` in a root holding nothing but the binary and a data
// directory, as the numeric user of the image: it serves SFTP, the portal
// and the metrics, the health check passes, then fails once the server is
// stopped. Its logs are JSON, one object per line.
func TestImageRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release binary")
	}
	bin := buildStatic(t, t.TempDir())
	// Reproducible: the same sources built in another directory give the
	// same bytes (-trimpath, no VCS stamp, no build id).
	src := filepath.Join(t.TempDir(), "src")
	copySources(t, filepath.Join("..", ".."), src)
	again := buildStaticIn(t, filepath.Join(src, "cmd", "pigp"), t.TempDir())
	if a, b := fileSum(t, bin), fileSum(t, again); a != b {
		t.Fatalf("two builds of the same sources differ: %s, %s", a, b)
	}
	root := newEmptyRoot(t, bin)
	base := []string{"PIGP_DATA_DIR=/data", "PIGP_LOG_FORMAT=json"}

	code, out, errOut := root.run(base, "", "version")
	if code != 0 || !strings.Contains(out, "pigp "+imageVersion+"\n") || !strings.Contains(out, "commit "+imageCommit+"\n") ||
		!strings.Contains(out, "go go1.") {
		t.Fatalf("version: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := root.run(base, "", "org", "add", "--siret", siretA, "--name", "Département du Val-de-Marne"); code != 0 {
		t.Fatalf("org add: exit %d\n%s%s", code, out, errOut)
	}
	const password = "Vq4!rTz9#LmP2x"
	if code, out, errOut := root.run(base, password+"\n", "user", "add", "--login", "denis-xt", "--siret", siretA,
		"--name", "Denis Jouffre", "--email", "denis.jouffre@example.fr", "--password-stdin"); code != 0 {
		t.Fatalf("user add (zxcvbn and its dictionaries without any file): exit %d\n%s%s", code, out, errOut)
	}

	serveEnv := append(base, "PIGP_SFTP_LISTEN=127.0.0.1:0", "PIGP_HTTP_LISTEN=127.0.0.1:0",
		"PIGP_METRICS_LISTEN=127.0.0.1:0", "PIGP_SHUTDOWN_TIMEOUT=10s")
	serve := root.command(serveEnv, "serve")
	var logs lockedBuffer
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatalf("start serve in the empty root: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			serve.Process.Kill()
			serve.Wait()
		}
	})
	var addrs map[string]string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		addrs = listenAddrs(logs.String())
		if addrs["sftp"] != "" && addrs["web"] != "" && addrs["metrics"] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not report its listeners:\n%s", logs.String())
		}
	}
	// The health check reads the same configuration as serve: the
	// listeners' real ports stand in for the image's fixed ones.
	checkEnv := append(base, "PIGP_SFTP_LISTEN="+addrs["sftp"], "PIGP_HTTP_LISTEN="+addrs["web"])
	if code, out, errOut := root.run(checkEnv, "", "healthcheck", "--sftp"); code != 0 || !strings.HasPrefix(out, "ok: ") ||
		!strings.Contains(out, "SSH-2.0-") {
		t.Fatalf("healthcheck while serving: exit %d\n%s%s", code, out, errOut)
	}

	// SFTP: a deposit, the embedded documentation.
	conn, err := ssh.Dial("tcp", addrs["sftp"], sshConfig("denis-xt", password))
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, logs.String())
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(4096)
	f, err := c.Create("/depot/" + callName(siretA, 1))
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	if err := f.Close(); err != nil {
		t.Fatalf("deposit in the empty root: %v", err)
	}
	xsd, err := c.Open("/historique/documentation/DemandeAPA.xsd")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(xsd); !bytes.Contains(b, []byte("xs:schema")) {
		t.Fatal("the embedded XSD is not served")
	}
	xsd.Close()
	c.Close()
	conn.Close()

	// The portal: login page (embedded templates and DSFR), a login, /readyz.
	p := newPortal(t, "http://"+addrs["web"])
	if status, body := p.get("/connexion"); status != http.StatusOK || !strings.Contains(body, "dsfr") {
		t.Fatalf("portal /connexion: %d", status)
	}
	p.login("denis-xt", password)
	if status, _ := p.get("/readyz"); status != http.StatusOK {
		t.Fatalf("/readyz: %d", status)
	}
	m, body := scrapeMetrics(t, "http://"+addrs["metrics"]+"/metrics")
	if m[`pigp_deposits_total{result="accepted"}`] != 1 || m[`pigp_logins_total{protocol="http",result="success"}`] != 1 {
		t.Fatalf("metrics after one deposit and one portal login:\n%s", body)
	}

	// Stop: SIGTERM, a clean exit, then the health check fails and says why.
	serve.Process.Signal(syscall.SIGTERM)
	err = serve.Wait()
	stopped = true
	if err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, logs.String())
	}
	code, out, errOut = root.run(checkEnv, "", "healthcheck", "--sftp")
	if code == 0 || !strings.Contains(errOut, "not ready") || !strings.Contains(errOut, "connection refused") {
		t.Fatalf("healthcheck after stop: exit %d, stdout %q, stderr %q; want a failure saying why", code, out, errOut)
	}
	code, _, errOut = root.run(append(base, "PIGP_SFTP_LISTEN="+addrs["sftp"], "PIGP_HTTP_LISTEN=off"), "", "healthcheck", "--sftp")
	if code == 0 || !strings.Contains(errOut, "sftp not ready") {
		t.Fatalf("sftp-only healthcheck after stop: exit %d, %q", code, errOut)
	}

	// Logs: one JSON object per line, with the documented base fields.
	lines := strings.Split(strings.TrimRight(logs.String(), "\n"), "\n")
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not one JSON object: %q", line)
		}
		ts, _ := rec["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || rec["level"] == nil || rec["msg"] == nil {
			t.Fatalf("log line without a UTC time, a level or a message: %q", line)
		}
	}
	if len(lines) < 5 {
		t.Fatalf("only %d log lines:\n%s", len(lines), logs.String())
	}
}

// copySources copies the module's files (not .git, node_modules or build
// outputs) from root to dst.
func copySources(t *testing.T, root, dst string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" || rel == "data" || rel == filepath.Join("bench", "out") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	s, err := hashFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
