package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/internal/testutil"
)

// storeKinds are the content stores the storage end-to-end tests run on:
// the filesystem store and S3 (a versitygw started by the test).
var storeKinds = []string{"fs", "s3"}

// testStore is the content store of an end-to-end test.
type testStore struct {
	kind   string
	srv    *testutil.S3Server // s3 only
	bucket string
}

// newTestStore prepares a store of the given kind: for s3, a versitygw on
// 127.0.0.1 and a fresh bucket, reached directly or through endpoint when
// it is not "" (a proxy in front of srv).
func newTestStore(t *testing.T, kind string) *testStore {
	t.Helper()
	ts := &testStore{kind: kind}
	if kind == "s3" {
		ts.srv = testutil.StartVersityGW(t)
		ts.bucket = ts.srv.NewBucket(t)
	}
	return ts
}

// configure sets c to use the store, through endpoint ("" for the server
// itself).
func (ts *testStore) configure(c *config.Config, endpoint string) {
	if ts.kind != "s3" {
		return
	}
	if endpoint == "" {
		endpoint = ts.srv.Endpoint
	}
	st := &c.Storage
	st.Kind, st.Endpoint, st.Region, st.Bucket, st.PathStyle = "s3", endpoint, ts.srv.Region, ts.bucket, true
	st.AccessKey, st.SecretKey = ts.srv.AccessKey, ts.srv.SecretKey
	// Small parts, so that a few MiB exercise multipart uploads.
	st.PartSize, st.MultipartThreshold = 5<<20, 5<<20
	st.MaxAttempts, st.RequestTimeout = 2, config.Duration(30*time.Second)
}

// environ is the store's configuration as pigp's environment variables.
func (ts *testStore) environ() []string {
	if ts.kind != "s3" {
		return nil
	}
	return []string{"PIGP_STORAGE_KIND=s3", "PIGP_S3_ENDPOINT=" + ts.srv.Endpoint, "PIGP_S3_REGION=" + ts.srv.Region,
		"PIGP_S3_BUCKET=" + ts.bucket, "PIGP_S3_PATH_STYLE=true", "PIGP_S3_ACCESS_KEY=" + ts.srv.AccessKey,
		"PIGP_S3_SECRET_KEY=" + ts.srv.SecretKey}
}

// onServer returns the bytes the S3 server keeps for key, read behind the
// store's back from versitygw's posix directory; for fs, from the store's
// directory.
func (ts *testStore) onServer(t *testing.T, e *env, key string) ([]byte, error) {
	t.Helper()
	if ts.kind == "s3" {
		return os.ReadFile(filepath.Join(ts.srv.Dir, ts.bucket, filepath.FromSlash(key)))
	}
	return os.ReadFile(filepath.Join(e.app.Spool.Dir(), "objects", filepath.FromSlash(key)))
}

// objectKeys lists every object of the store.
func objectKeys(t *testing.T, b blob.Backend) []string {
	t.Helper()
	var keys []string
	if err := b.Walk(context.Background(), "", func(o blob.Info) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestStorage_SFTP runs the paths of a deposit and a response over SFTP on
// each content store: a deposit uploaded as NAME.filepart and renamed (the
// staging name never becomes an object; the object has the deposit's
// SHA-256), a resumed upload, an upload cut off (nothing stored, nothing
// left after housekeeping), processing (the deposit read back from the
// store, its answer published into it), a download (recorded), and expiry
// (the object deleted).
func TestStorage_SFTP(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ts := newTestStore(t, kind)
			e := startEnv(t, "sqlite", func(c *config.Config) { ts.configure(c, "") })
			ctx := context.Background()
			c, _ := e.dialSFTP("alice-xt", e.alice)

			// A deposit through the WinSCP staging name, large enough for
			// a multipart upload on S3.
			name, data := callName(siretA, 301), randomBytes(6<<20+12345)
			f, err := c.Create("/depot/" + name + ".filepart")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if keys := objectKeys(t, e.app.Blobs); len(keys) != 0 {
				t.Fatalf("a staged upload is stored before its rename: %v", keys)
			}
			if err := c.Rename("/depot/"+name+".filepart", "/depot/"+name); err != nil {
				t.Fatal(err)
			}
			ds := e.deposits(siretA)
			if len(ds) != 1 || ds[0].SHA256 != sha(data) || ds[0].Size != int64(len(data)) {
				t.Fatalf("deposits after the rename: %+v", ds)
			}
			if keys := objectKeys(t, e.app.Blobs); len(keys) != 1 || keys[0] != ds[0].StorageKey {
				t.Fatalf("objects %v, want only the deposit's %s", keys, ds[0].StorageKey)
			}
			raw, err := ts.onServer(t, e, ds[0].StorageKey)
			if err != nil || sha(raw) != ds[0].SHA256 {
				t.Fatalf("the stored object's SHA-256 differs from the deposit's (%v)", err)
			}

			// A resumed upload: half, the connection drops, the rest from
			// the size the server reports.
			name2, data2 := callName(siretA, 302), randomBytes(300<<10)
			conn, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			sc, chans, reqs, err := ssh.NewClientConn(conn, e.addr, sshConfig("alice-xt", e.alice))
			if err != nil {
				t.Fatal(err)
			}
			c1, err := sftp.NewClient(ssh.NewClient(sc, chans, reqs))
			if err != nil {
				t.Fatal(err)
			}
			f1, err := c1.Create("/depot/" + name2 + ".filepart")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f1.Write(data2[:100<<10]); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			var size int64
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if fi, err := c.Stat("/depot/" + name2 + ".filepart"); err == nil && fi.Size() == 100<<10 {
					size = fi.Size()
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if size == 0 {
				t.Fatal("the staged upload was not kept for a resume")
			}
			f2, err := c.OpenFile("/depot/"+name2+".filepart", os.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f2.WriteAt(data2[size:], size); err != nil {
				t.Fatal(err)
			}
			if err := f2.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Rename("/depot/"+name2+".filepart", "/depot/"+name2); err != nil {
				t.Fatal(err)
			}
			var resumed *pigp.Deposit
			for _, d := range e.deposits(siretA) {
				if d.ExternalName == name2 {
					resumed = d
				}
			}
			if resumed == nil || resumed.SHA256 != sha(data2) {
				t.Fatalf("resumed deposit: %+v", resumed)
			}
			if got, err := readObject(e.app.Blobs, resumed.StorageKey); err != nil || !bytes.Equal(got, data2) {
				t.Fatalf("resumed deposit's object differs (%v)", err)
			}

			// An upload cut off by the network: no deposit, no object, and
			// housekeeping finds nothing of it either.
			conn, err = net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			sc, chans, reqs, err = ssh.NewClientConn(conn, e.addr, sshConfig("alice-xt", e.alice))
			if err != nil {
				t.Fatal(err)
			}
			c3, err := sftp.NewClient(ssh.NewClient(sc, chans, reqs))
			if err != nil {
				t.Fatal(err)
			}
			f3, err := c3.Create("/depot/" + callName(siretA, 303))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f3.Write(randomBytes(256 << 10)); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			for deadline := time.Now().Add(10 * time.Second); len(e.tmpFiles()) > 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			if tmp := e.tmpFiles(); len(tmp) != 0 {
				t.Fatalf("spool files left by the cut-off upload: %v", tmp)
			}
			e.app.Life.OrphanMinAge = 0
			if _, orphans, err := e.app.Life.Housekeeping(ctx, time.Now()); err != nil || orphans != 0 {
				t.Fatalf("housekeeping: %d orphans, %v", orphans, err)
			}
			if n := len(e.deposits(siretA)); n != 2 {
				t.Fatalf("%d deposits, want 2", n)
			}
			if keys := objectKeys(t, e.app.Blobs); len(keys) != 2 {
				t.Fatalf("objects %v, want the two deposits'", keys)
			}

			// Processing reads both deposits from the store and publishes
			// their answers (rejection reports: the contents are random)
			// into it.
			s, err := e.app.Process.Run(ctx)
			if err != nil || s.Rejected != 2 {
				t.Fatalf("processing: %+v, %v", s, err)
			}
			resps, err := e.app.DB.ListAvailableResponses(ctx, []string{siretA}, time.Now())
			if err != nil || len(resps) != 2 {
				t.Fatalf("%d answers, %v", len(resps), err)
			}
			for _, r := range resps {
				if got, err := readObject(e.app.Blobs, r.StorageKey); err != nil || sha(got) != r.SHA256 || !strings.HasPrefix(r.StorageKey, "retraits/") {
					t.Fatalf("answer %s: object %s differs from its row (%v)", r.Name, r.StorageKey, err)
				}
			}

			// A response published by the operator's command, on the same
			// store, downloaded over SFTP (ranged reads) and recorded.
			content := randomBytes(3<<20 + 7)
			file := filepath.Join(t.TempDir(), "reponse.xml")
			os.WriteFile(file, content, 0o600)
			if code, out := e.cliWith(t, envMap(ts.environ()), "response", "publish", "--siret", siretA, "--name", "reponse.xml", file); code != 0 {
				t.Fatalf("response publish: %s", out)
			}
			got, err := readAll(c, "/retrait/reponse.xml")
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("download: %d bytes, %v", len(got), err)
			}
			var pub *pigp.Response
			if rs, _ := e.app.DB.ListAvailableResponses(ctx, []string{siretA}, time.Now()); len(rs) == 3 {
				for _, r := range rs {
					if r.Name == "reponse.xml" {
						pub = r
					}
				}
			}
			if pub == nil {
				t.Fatal("the published response is not listed")
			}
			downloads, err := e.app.DB.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: []string{siretA}})
			if err != nil || len(downloads) != 1 || downloads[0].ResponseID != pub.ID || downloads[0].Size != int64(len(content)) {
				t.Fatalf("downloads: %+v, %v", downloads, err)
			}

			// Expiry deletes the objects of the expired responses.
			expired, deleted, err := e.app.Life.ExpireResponses(ctx, time.Now().Add(pigp.DefaultRetention+24*time.Hour))
			if err != nil || expired != 3 || deleted != 3 {
				t.Fatalf("expiry: %d expired, %d deleted, %v", expired, deleted, err)
			}
			for _, k := range objectKeys(t, e.app.Blobs) {
				if strings.HasPrefix(k, blob.KindResponse+"/") {
					t.Fatalf("expired response's object %s kept", k)
				}
			}
			if _, err := ts.onServer(t, e, pub.StorageKey); !os.IsNotExist(err) {
				t.Fatalf("the expired response is still on the server: %v", err)
			}
		})
	}
}

// readAll downloads path with pkg/sftp's concurrent reads.
func readAll(c *sftp.Client, path string) ([]byte, error) {
	f, err := c.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	_, err = f.WriteTo(&buf)
	return buf.Bytes(), err
}

func envMap(kv []string) map[string]string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return m
}

// TestStorage_KillBetweenPutAndCommit kills a `pigp serve` node (SIGKILL)
// right after a deposit's content is put into the store and before its row
// is committed: the client gets no OK, no deposit is recorded, and the
// object left behind is an orphan that housekeeping keeps during its grace
// period and then removes.
func TestStorage_KillBetweenPutAndCommit(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ts := newTestStore(t, kind)
			e := startEnv(t, "sqlite", func(c *config.Config) { ts.configure(c, "") })
			e.nodeEnv = append(ts.environ(), "PIGP_TEST_KILL_AFTER_PUT=1")
			n := startNode(t, e, false)
			c := n.dial(t, "alice-xt", e.alice)
			if err := put(c, callName(siretA, 310), randomBytes(64<<10)); err == nil {
				t.Fatal("the upload was answered although the node was killed before its commit")
			}
			select {
			case <-n.done:
				if st, ok := n.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || st.Signal() != syscall.SIGKILL {
					t.Fatalf("node ended with %v, want SIGKILL", n.cmd.ProcessState)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("node still running")
			}
			if ds := e.deposits(siretA); len(ds) != 0 {
				t.Fatalf("deposits after a kill before the commit: %+v", ds)
			}
			keys := objectKeys(t, e.app.Blobs)
			if len(keys) != 1 || !strings.HasPrefix(keys[0], blob.KindDeposit+"/") {
				t.Fatalf("objects after the kill: %v, want the one put", keys)
			}
			ctx := context.Background()
			if _, orphans, err := e.app.Life.Housekeeping(ctx, time.Now()); err != nil || orphans != 0 {
				t.Fatalf("housekeeping within the grace period: %d orphans removed, %v", orphans, err)
			}
			e.app.Life.OrphanMinAge = 0
			if _, orphans, err := e.app.Life.Housekeeping(ctx, time.Now()); err != nil || orphans != 1 {
				t.Fatalf("housekeeping after the grace period: %d orphans removed, %v; want 1", orphans, err)
			}
			if keys := objectKeys(t, e.app.Blobs); len(keys) != 0 {
				t.Fatalf("objects after housekeeping: %v", keys)
			}
			if _, err := ts.onServer(t, e, keys[0]); !os.IsNotExist(err) {
				t.Fatalf("the orphan is still on the server: %v", err)
			}
		})
	}
}

// failingProxy forwards to an S3 server and answers 503 SlowDown to every
// write (PUT and POST: objects, parts, multipart creation and completion).
func failingProxy(t *testing.T, target string) *httptest.Server {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestStorage_Unavailable: when the bucket refuses writes, an SFTP upload
// and the operator's publication are refused with "stockage indisponible",
// after bounded retries, and leave nothing behind: no row, no object, no
// multipart upload, no spool file.
func TestStorage_Unavailable(t *testing.T) {
	ts := newTestStore(t, "s3")
	proxy := failingProxy(t, ts.srv.Endpoint)
	e := startEnv(t, "sqlite", func(c *config.Config) { ts.configure(c, proxy.URL) })
	c, _ := e.dialSFTP("alice-xt", e.alice)
	for _, n := range []int{1000, 6 << 20} { // single and multipart
		err := put(c, callName(siretA, 320+n%7), randomBytes(n))
		if err == nil || !strings.Contains(sftpMessage(t, err), blob.UnavailableMessage) {
			t.Fatalf("upload of %d bytes to a failing store: %v, want %q", n, err, blob.UnavailableMessage)
		}
	}
	if _, err := e.app.Exchange.Publish(context.Background(), siretA, "reponse.xml", pigp.DocResponse, "", strings.NewReader("<x/>")); pigp.ErrorCode(err) != pigp.EUNAVAILABLE ||
		pigp.ErrorMessage(err) != blob.UnavailableMessage {
		t.Fatalf("publish to a failing store: %v", err)
	}
	if ds := e.deposits(siretA); len(ds) != 0 {
		t.Fatalf("deposits recorded: %+v", ds)
	}
	if rs, _ := e.app.DB.ListAvailableResponses(context.Background(), []string{siretA}, time.Now()); len(rs) != 0 {
		t.Fatalf("responses recorded: %+v", rs)
	}
	if keys := objectKeys(t, e.app.Blobs); len(keys) != 0 {
		t.Fatalf("objects left: %v", keys)
	}
	if n, err := e.app.Blobs.AbortIncomplete(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("multipart uploads left: %d, %v", n, err)
	}
	if tmp := e.tmpFiles(); len(tmp) != 0 {
		t.Fatalf("spool files left: %v", tmp)
	}
	// The bucket answers reads: the node stays ready.
	if err := e.app.Blobs.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// TestStorage_Portal runs the portal's paths on each content store: a
// deposit (its object has its SHA-256) and a download (the bytes of the
// object, recorded); then, on S3, /readyz fails while the bucket does not
// answer, and statvfs says "unknown" (zero blocks) for a bucket without a
// quota instead of failing the client.
func TestStorage_Portal(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ts := newTestStore(t, kind)
			var down atomic.Bool
			endpoint := ""
			if kind == "s3" {
				target, _ := url.Parse(ts.srv.Endpoint)
				rp := httputil.NewSingleHostReverseProxy(target)
				front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if down.Load() {
						w.WriteHeader(http.StatusServiceUnavailable)
						return
					}
					rp.ServeHTTP(w, r)
				}))
				t.Cleanup(front.Close)
				endpoint = front.URL
			}
			e := startEnv(t, "sqlite", func(c *config.Config) {
				ts.configure(c, endpoint)
				c.HTTPListen = "127.0.0.1:0"
			})
			if err := e.app.StartWeb(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.app.CloseWeb(context.Background()) })
			base := "http://" + e.app.Web.ListenAddr().String()
			p := newPortal(t, base)
			p.login("alice-xt", e.alice)

			name, data := callName(siretA, 330), randomBytes(200<<10)
			if status, body := p.upload(name, data); status != http.StatusOK {
				t.Fatalf("portal deposit: %d %s", status, body)
			}
			ds := e.deposits(siretA)
			if len(ds) != 1 || ds[0].SHA256 != sha(data) {
				t.Fatalf("deposits: %+v", ds)
			}
			if raw, err := ts.onServer(t, e, ds[0].StorageKey); err != nil || sha(raw) != ds[0].SHA256 {
				t.Fatalf("the stored object's SHA-256 differs from the deposit's (%v)", err)
			}
			content := randomBytes(100 << 10)
			r := e.publish(siretA, "reponse_portail.xml", content)
			if status, body := p.get("/apa/retrait/" + r.Name); status != http.StatusOK || body != string(content) {
				t.Fatalf("portal download: %d, %d bytes", status, len(body))
			}
			downloads, err := e.app.DB.ListDownloads(context.Background(), pigp.HistoryFilter{SIRETs: []string{siretA}})
			if err != nil || len(downloads) != 1 || downloads[0].ResponseID != r.ID || downloads[0].Protocol != pigp.ProtocolHTTP {
				t.Fatalf("downloads: %+v, %v", downloads, err)
			}
			if kind != "s3" {
				return
			}
			ready := func() (int, string) {
				resp, err := http.Get(base + "/readyz")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if code, body := ready(); code != http.StatusOK {
				t.Fatalf("readyz with the bucket up: %d %s", code, body)
			}
			down.Store(true)
			if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "content store") {
				t.Fatalf("readyz with the bucket down: %d %s", code, body)
			}
			down.Store(false)
			if code, body := ready(); code != http.StatusOK {
				t.Fatalf("readyz with the bucket back: %d %s", code, body)
			}
			c, _ := e.dialSFTP("alice-xt", e.alice)
			st, err := c.StatVFS("/depot")
			if err != nil || st.Blocks != 0 || st.Bavail != 0 {
				t.Fatalf("statvfs without a quota: %+v, %v; want unknown (zero blocks)", st, err)
			}
		})
	}
}

// TestStorage_BackupRefusedOnS3: pigp backup copies the local store only;
// with the contents in a bucket it says so and points to the procedure,
// rather than failing on contents it cannot find.
func TestStorage_BackupRefusedOnS3(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	code, out := e.cliWith(t, map[string]string{"PIGP_STORAGE_KIND": "s3", "PIGP_S3_BUCKET": "pigp-test",
		"PIGP_S3_ENDPOINT": "http://127.0.0.1:1", "PIGP_S3_PATH_STYLE": "true"}, "backup", "--out", filepath.Join(t.TempDir(), "sauvegarde"))
	if code == 0 || !strings.Contains(out, "storage.kind s3") || !strings.Contains(out, "Sauvegarde et restauration") {
		t.Fatalf("backup with S3 contents: exit %d\n%s", code, out)
	}
}
