package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/creack/pty"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/blob/s3"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

// migFake is an in-process S3 server (gofakes3 in memory) that can refuse
// chosen requests.
type migFake struct {
	URL    string
	Bucket string

	mu     sync.Mutex
	refuse func(r *http.Request) bool // answered 403 AccessDenied
}

func startMigFake(t *testing.T) *migFake {
	t.Helper()
	f := &migFake{Bucket: "pigp-fake"}
	be := s3mem.New()
	if err := be.CreateBucket(f.Bucket); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(be, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		refuse := f.refuse != nil && f.refuse(r)
		f.mu.Unlock()
		if refuse {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			return
		}
		faker.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *migFake) setRefuse(match func(r *http.Request) bool) {
	f.mu.Lock()
	f.refuse = match
	f.mu.Unlock()
}

// useS3 points the CLI's storage section at a bucket.
func (c *cli) useS3(endpoint, bucket, accessKey, secretKey string) {
	for k, v := range map[string]string{
		"PIGP_STORAGE_KIND": "s3", "PIGP_S3_ENDPOINT": endpoint, "PIGP_S3_BUCKET": bucket, "PIGP_S3_REGION": "us-east-1",
		"PIGP_S3_ACCESS_KEY": accessKey, "PIGP_S3_SECRET_KEY": secretKey, "PIGP_S3_PATH_STYLE": "true",
	} {
		c.env[k] = v
	}
}

// smallParts is a configuration file sending objects above 5 MiB in parts.
func smallParts(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "pigp.yaml")
	if err := os.WriteFile(p, []byte("storage:\n  part_size: 5MiB\n  multipart_threshold: 5MiB\n  concurrency: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// bucketStore opens the CLI's bucket as the server would.
func (c *cli) bucketStore(t *testing.T) *s3.Store {
	t.Helper()
	st, err := s3.New(context.Background(), s3.Config{
		Endpoint: c.env["PIGP_S3_ENDPOINT"], Bucket: c.env["PIGP_S3_BUCKET"], Region: "us-east-1", PathStyle: true,
		AccessKey: c.env["PIGP_S3_ACCESS_KEY"], SecretKey: c.env["PIGP_S3_SECRET_KEY"], MaxAttempts: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// seedContents publishes responses of the given sizes through the CLI
// (contents and rows) and puts one object no row refers to; it returns
// every key with its bytes.
func seedContents(t *testing.T, c *cli, sizes ...int) map[string][]byte {
	t.Helper()
	c.addOrg(t, cliSIRETA)
	dir := t.TempDir()
	for i, n := range sizes {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(i*7 + j*13 + j/251)
		}
		file := filepath.Join(dir, fmt.Sprintf("reponse-%d.xml", i))
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c.ok(t, "response", "publish", "--siret", cliSIRETA, "--name", filepath.Base(file), file)
	}
	blobs, err := blob.Open(filepath.Join(c.dataDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.Put("divers/orphelin", strings.NewReader("un contenu sans ligne en base\n")); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	err = blob.NewFS(blobs).Walk(context.Background(), "", func(i blob.Info) error {
		f, err := blobs.Open(i.Key)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		out[i.Key] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(sizes)+1 {
		t.Fatalf("the store holds %d objects, want %d", len(out), len(sizes)+1)
	}
	return out
}

// bucketKeys lists the bucket's objects with their bytes' SHA-256.
func bucketSums(t *testing.T, st blob.Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := st.Walk(context.Background(), "", func(i blob.Info) error {
		sum, err := hashObject(context.Background(), st, i.Key)
		out[i.Key] = sum
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sumOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestStorageCheck_FS(t *testing.T) {
	c := newCLI(t)
	out := c.ok(t, "storage", "check")
	for _, want := range []string{"stockage fs : " + filepath.Join(c.dataDir(), "store"), "ok     écriture", "ok     lecture",
		"ok     suppression", "espace : ", "stockage utilisable"} {
		if !strings.Contains(out, want) {
			t.Errorf("storage check printed %q, want %q", out, want)
		}
	}
	if strings.Contains(out, "multipart") {
		t.Errorf("the filesystem store has no multipart probe: %q", out)
	}
	// The probe is gone.
	blobs, err := blob.Open(filepath.Join(c.dataDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	blob.NewFS(blobs).Walk(context.Background(), "", func(i blob.Info) error {
		t.Errorf("object %s left behind", i.Key)
		return nil
	})
	c.fails(t, 2, "usage", "", "storage")
	c.fails(t, 2, `unknown subcommand "verify"`, "", "storage", "verify")
	c.fails(t, 2, "unexpected argument", "", "storage", "check", "now")
}

func TestStorageCheck_VersityGW(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	c := newCLI(t)
	c.useS3(srv.Endpoint, srv.NewBucket(t), srv.AccessKey, srv.SecretKey)
	out := c.ok(t, "storage", "check")
	for _, want := range []string{"stockage s3 : bucket " + c.env["PIGP_S3_BUCKET"], "clé d'accès " + srv.AccessKey,
		"ok     accès au stockage", "ok     écriture : objet de sonde de 4096 octets",
		"ok     écriture : objet de sonde en plusieurs parties (multipart) de 5246976 octets",
		"ok     liste des envois multipart inachevés", "espace : inconnu", "stockage utilisable"} {
		if !strings.Contains(out, want) {
			t.Errorf("storage check printed %q, want %q", out, want)
		}
	}
	if strings.Contains(out, srv.SecretKey) {
		t.Fatal("storage check printed the secret key")
	}
	if keys := bucketSums(t, c.bucketStore(t)); len(keys) != 0 {
		t.Fatalf("probes left in the bucket: %v", keys)
	}
	ups, err := srv.Client().ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(c.env["PIGP_S3_BUCKET"])})
	if err != nil || len(ups.Uploads) != 0 {
		t.Fatalf("multipart uploads left: %v, %v", ups, err)
	}

	c.env["PIGP_S3_QUOTA"] = "1GiB"
	if out := c.ok(t, "storage", "check"); !strings.Contains(out, "espace : 1.0 Gio libres sur 1.0 Gio") {
		t.Errorf("with a quota, storage check printed %q", out)
	}

	t.Run("WrongSecret", func(t *testing.T) {
		c2 := newCLI(t)
		c2.useS3(srv.Endpoint, c.env["PIGP_S3_BUCKET"], srv.AccessKey, "not-the-secret")
		r := c2.fails(t, 1, "stockage inutilisable : accès au stockage", "", "storage", "check")
		if !strings.Contains(r.stdout, "ÉCHEC  accès au stockage") {
			t.Fatalf("stdout %q", r.stdout)
		}
	})
	t.Run("NoBucket", func(t *testing.T) {
		c2 := newCLI(t)
		c2.useS3(srv.Endpoint, "pigp-no-such-bucket", srv.AccessKey, srv.SecretKey)
		c2.fails(t, 1, "stockage inutilisable : accès au stockage", "", "storage", "check")
	})
	t.Run("BadConfig", func(t *testing.T) {
		c2 := newCLI(t)
		c2.useS3("s3.example.fr", "pigp", "", "")
		c2.fails(t, 1, "storage.endpoint", "", "storage", "check")
	})
}

// A permission the server lacks (deletion) fails the check at that step,
// after the probe was written.
func TestStorageCheck_RefusedDelete(t *testing.T) {
	f := startMigFake(t)
	c := newCLI(t)
	c.useS3(f.URL, f.Bucket, "ak", "sk")
	f.setRefuse(func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Query().Has("delete") })
	r := c.fails(t, 1, "stockage inutilisable : suppression", "", "storage", "check")
	if !strings.Contains(r.stdout, "ok     lecture") || !strings.Contains(r.stdout, "ÉCHEC  suppression : ") ||
		!strings.Contains(r.stdout, "AccessDenied") {
		t.Fatalf("stdout %q", r.stdout)
	}
}

// The whole store is copied, each object with its bytes; a second run
// copies nothing and finds everything in place.
func TestStorageMigrate_VersityGW(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	c := newCLI(t)
	want := seedContents(t, c, 1000, 12<<20, 70000)
	c.useS3(srv.Endpoint, srv.NewBucket(t), srv.AccessKey, srv.SecretKey)
	c.env["PIGP_STORAGE_KIND"] = "fs" // the server still runs on the filesystem
	cfg := smallParts(t)

	r := c.run(t, "", "storage", "migrate", "--to", "s3", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, line := range []string{"4 objet(s), 12.1 Mio dans le stockage local ; 3 contenu(s) référencé(s) en base",
		"4 objet(s) copié(s) (12.1 Mio), 0 déjà présent(s), 1 sans ligne en base (SHA-256 recalculé), 0 écart(s), 0 échec(s), 0 absent(s)",
		"migration terminée"} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("stdout %q, want %q", r.stdout, line)
		}
	}
	got := bucketSums(t, c.bucketStore(t))
	if len(got) != len(want) {
		t.Fatalf("bucket holds %v, want %d objects", got, len(want))
	}
	for k, b := range want {
		if got[k] != sumOf(b) {
			t.Errorf("%s: SHA-256 in the bucket %s, want %s", k, got[k], sumOf(b))
		}
		onDisk, err := os.ReadFile(filepath.Join(srv.Dir, c.env["PIGP_S3_BUCKET"], filepath.FromSlash(k)))
		if err != nil || !bytes.Equal(onDisk, b) {
			t.Errorf("%s on the server's disk: %d bytes, %v", k, len(onDisk), err)
		}
	}

	r = c.run(t, "", "storage", "migrate", "--to", "s3", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "0 objet(s) copié(s) (0 o), 4 déjà présent(s)") {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// Not a terminal: progress lines, not a bar; the last one at the end.
	if strings.Contains(r.stderr, "\r") || !strings.HasSuffix(r.stderr, "migration : 4/4 objet(s), 12.1 Mio / 12.1 Mio\n") {
		t.Errorf("stderr %q, want progress lines ending with the total", r.stderr)
	}

	c.fails(t, 2, "--to s3 is required", "", "storage", "migrate")
	c.fails(t, 2, "--to s3 is required", "", "storage", "migrate", "--to", "fs")
	c2 := newCLI(t)
	c2.fails(t, 1, "storage.bucket", "", "storage", "migrate", "--to", "s3")
}

// Interrupted midway (Ctrl-C while a multipart object's parts are on
// their way), the migration leaves only complete objects and no upload;
// run again, it copies the rest and skips what is there.
func TestStorageMigrate_InterruptAndResume(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	c := newCLI(t)
	want := seedContents(t, c, 2000, 3000, 11<<20, 4000, 5000)
	c.useS3(srv.Endpoint, srv.NewBucket(t), srv.AccessKey, srv.SecretKey)
	st := c.bucketStore(t)

	// A proxy in front of versitygw cancels the run when the first part
	// of a multipart upload arrives (the Host header is kept: requests are
	// signed for the proxy's address).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	target, _ := url.Parse(srv.Endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	var parts atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("partNumber") && parts.Add(1) == 1 {
			cancel()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	cfg := st.Config()
	cfg.Endpoint, cfg.PartSize, cfg.MultipartThreshold = front.URL, s3.MinPartSize, s3.MinPartSize
	viaProxy, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	known := map[string]store.Content{}
	c.openDB(t).EachContent(context.Background(), func(ct store.Content) error {
		known[ct.Key] = ct
		return nil
	})
	blobs, err := blob.Open(filepath.Join(c.dataDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	var out, lines bytes.Buffer
	mg := &migration{src: blobs, dst: viaProxy, known: known, jobs: 1, out: &out, lines: &lines, every: time.Hour}
	err = mg.run(ctx)
	if pigp.ErrorCode(err) != pigp.EUNAVAILABLE || !errors.Is(err, context.Canceled) || !strings.Contains(pigp.ErrorMessage(err), "interrompue") {
		t.Fatalf("interrupted run = %v\n%s", err, out.String())
	}
	if parts.Load() == 0 {
		t.Fatal("no part was sent: the run was not interrupted during a multipart upload")
	}
	got := bucketSums(t, st)
	// The walk goes in lexical order: divers/orphelin is always copied first.
	if got["divers/orphelin"] == "" || len(got) >= len(want) {
		t.Fatalf("after the interruption the bucket holds %v, want some of the %d objects", got, len(want))
	}
	for k, sum := range got {
		if sum != sumOf(want[k]) || len(want[k]) > 5<<20 {
			t.Fatalf("%s is in the bucket though incomplete or wrong", k)
		}
	}
	ups, err := srv.Client().ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(c.env["PIGP_S3_BUCKET"])})
	if err != nil || len(ups.Uploads) != 0 {
		t.Fatalf("multipart uploads left after the interruption: %+v, %v", ups.Uploads, err)
	}
	if strings.Contains(out.String(), "ÉCHEC") {
		t.Fatalf("an interruption is not a failure: %s", out.String())
	}

	r := c.run(t, "", "storage", "migrate", "--to", "s3", "--config", smallParts(t))
	wantLine := fmt.Sprintf("%d objet(s) copié(s)", len(want)-len(got))
	if r.code != 0 || !strings.Contains(r.stdout, wantLine) || !strings.Contains(r.stdout, fmt.Sprintf("%d déjà présent(s)", len(got))) {
		t.Fatalf("resume: exit %d, want %q\n%s\n%s", r.code, wantLine, r.stdout, r.stderr)
	}
	got = bucketSums(t, st)
	for k, b := range want {
		if got[k] != sumOf(b) {
			t.Errorf("%s after the resume: %s, want %s", k, got[k], sumOf(b))
		}
	}
}

// Mismatches are reported, never copied nor overwritten, and fail the run:
// a local file that differs from its row's SHA-256, an object already in
// the bucket with other bytes. A refused put is a failure that a later
// run takes up.
func TestStorageMigrate_Mismatches(t *testing.T) {
	f := startMigFake(t)
	c := newCLI(t)
	want := seedContents(t, c, 100, 200, 300)
	c.useS3(f.URL, f.Bucket, "ak", "sk")
	blobs, err := blob.Open(filepath.Join(c.dataDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range want {
		if k != "divers/orphelin" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	corrupted, taken, refused := keys[0], keys[1], keys[2]

	// A byte changed on disk since the row recorded the SHA-256.
	p := filepath.Join(blobs.Dir(), "objects", filepath.FromSlash(corrupted))
	os.Chmod(p, 0o600)
	bad := bytes.Clone(want[corrupted])
	bad[10] ^= 0xff
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	// Another content already in the bucket under a key.
	st := c.bucketStore(t)
	other := filepath.Join(t.TempDir(), "other")
	os.WriteFile(other, []byte("autre chose"), 0o600)
	of, _ := os.Open(other)
	defer of.Close()
	if err := st.Put(context.Background(), taken, of, sumOf([]byte("autre chose"))); err != nil {
		t.Fatal(err)
	}
	// The server refuses one object.
	f.setRefuse(func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, refused)
	})

	r := c.run(t, "", "storage", "migrate", "--to", "s3")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, line := range []string{
		"ÉCART  " + corrupted + " : le fichier local n'a pas le SHA-256 enregistré en base",
		"ÉCART  " + taken + " : déjà dans le bucket avec un autre contenu",
		"ÉCHEC  " + refused + " : ",
		"1 objet(s) copié(s)", "2 écart(s), 1 échec(s)",
	} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("stdout %q, want %q", r.stdout, line)
		}
	}
	if !strings.Contains(r.stderr, "2 écart(s) de contenu") {
		t.Errorf("stderr %q", r.stderr)
	}
	got := bucketSums(t, st)
	if _, ok := got[corrupted]; ok {
		t.Errorf("the corrupted file was copied")
	}
	if got[taken] != sumOf([]byte("autre chose")) {
		t.Errorf("the object already in the bucket was overwritten")
	}
	if got["divers/orphelin"] != sumOf(want["divers/orphelin"]) {
		t.Errorf("the healthy object was not copied")
	}

	// Once the server accepts and the file is repaired, only the bucket's
	// own conflict remains.
	f.setRefuse(nil)
	os.WriteFile(p, want[corrupted], 0o600)
	r = c.run(t, "", "storage", "migrate", "--to", "s3")
	if r.code != 1 || !strings.Contains(r.stdout, "2 objet(s) copié(s)") || !strings.Contains(r.stdout, "1 écart(s), 0 échec(s)") {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	got = bucketSums(t, st)
	if got[refused] != sumOf(want[refused]) || got[corrupted] != sumOf(want[corrupted]) {
		t.Fatalf("after the second run: %v", got)
	}

	// A content removed between the walk and its copy (expiry while the
	// server runs) is neither a failure nor copied.
	var out bytes.Buffer
	mg := &migration{src: blobs, dst: st, known: map[string]store.Content{}, out: &out}
	if res := mg.migrate(context.Background(), blob.Info{Key: "retraits/zz/expired", Size: 3}); res != vanished || out.Len() != 0 {
		t.Fatalf("a vanished content: outcome %d, output %q", res, out.String())
	}
}

// On a terminal, the migration shows a progress bar (bytes) on standard
// error instead of periodic lines.
func TestStorageMigrate_ProgressBarOnTerminal(t *testing.T) {
	f := startMigFake(t)
	c := newCLI(t)
	seedContents(t, c, 3<<20, 2<<20)
	c.useS3(f.URL, f.Bucket, "ak", "sk")
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&screen, ptmx) // until tty is closed
	}()
	var stdout bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: tty, Getenv: func(k string) string { return c.env[k] }}
	code := m.Run(context.Background(), []string{"storage", "migrate", "--to", "s3", "--progress-every", "1ms"})
	tty.Close()
	<-read
	if code != 0 || !strings.Contains(stdout.String(), "3 objet(s) copié(s)") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), screen.String())
	}
	// The bar is drawn with carriage returns; no "migration : N/M" lines.
	if s := screen.String(); !strings.Contains(s, "migration") || !strings.Contains(s, "\r") || strings.Contains(s, "objet(s), ") {
		t.Fatalf("terminal shows %q, want a progress bar", s)
	}
}
