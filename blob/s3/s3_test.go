package s3_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/blob/blobtest"
	"github.com/pigp/pigp/blob/s3"
)

func TestContract_Gofakes3(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Harness {
		f := newFake(t)
		return blobtest.Harness{Backend: f.store(t, f.config()), Large: 11 << 20}
	})
}

// The store's keys live under its prefix; Walk shows them without it and
// ignores the rest of the bucket.
func TestPrefix(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	cfg.Prefix = "/node-a"
	st := f.store(t, cfg)
	h := blobtest.Harness{Backend: st}
	blobtest.MustPut(t, h, "depots/ab/x", []byte("x"))
	other := cfg
	other.Prefix = "node-b/"
	blobtest.MustPut(t, blobtest.Harness{Backend: f.store(t, other)}, "depots/ab/y", []byte("y"))

	if _, err := f.backend.HeadObject(bucket, "node-a/depots/ab/x"); err != nil {
		t.Fatalf("object not stored under the prefix: %v", err)
	}
	if keys := blobtest.Keys(t, st, ""); len(keys) != 1 || keys[0] != "depots/ab/x" {
		t.Fatalf("Walk = %v, want [depots/ab/x]", keys)
	}
	if _, err := s3.New(context.Background(), s3.Config{Bucket: "b", Prefix: "Bad Prefix"}); err == nil {
		t.Fatal("an invalid prefix was accepted")
	}
}

// A small object goes in one PutObject carrying its SHA-256 as checksum
// and as signed payload hash, with If-None-Match: *; the SHA-256 is kept
// as metadata.
func TestPut_SingleSendsChecksums(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	data := blobtest.Data(100000, 1)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/single", data)
	puts := f.requests(seenPutObject)
	if len(puts) != 1 {
		t.Fatalf("%d PutObject requests, want 1", len(puts))
	}
	sum := blobtest.Sum(data)
	raw, _ := hex.DecodeString(sum)
	hd := puts[0].Header
	if got, want := hd.Get("X-Amz-Checksum-Sha256"), base64.StdEncoding.EncodeToString(raw); got != want {
		t.Errorf("x-amz-checksum-sha256 = %q, want %q", got, want)
	}
	if got := hd.Get("X-Amz-Content-Sha256"); got != sum {
		t.Errorf("x-amz-content-sha256 = %q, want the object's SHA-256 %s", got, sum)
	}
	if got := hd.Get("If-None-Match"); got != "*" {
		t.Errorf("If-None-Match = %q, want *", got)
	}
	if !strings.HasPrefix(puts[0].Path, "/"+bucket+"/") {
		t.Errorf("path %q is not path-style", puts[0].Path)
	}
	info, err := st.Stat(context.Background(), "depots/ab/single")
	if err != nil || info.SHA256 != sum {
		t.Fatalf("Stat = %+v, %v; want SHA256 %s", info, err, sum)
	}
}

// A large object goes in parts of PartSize, each with its own SHA-256, and
// is completed with If-None-Match: *.
func TestPut_MultipartSendsPartChecksums(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	data := blobtest.Data(12<<20, 2)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/multi", data)
	parts := f.requests(seenUploadPart)
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3 (5 + 5 + 2 MiB)", len(parts))
	}
	for _, p := range parts {
		n := p.Query["partNumber"][0]
		i := map[string]int{"1": 0, "2": 1, "3": 2}[n]
		chunk := data[i*(5<<20) : min((i+1)*(5<<20), len(data))]
		sum := blobtest.Sum(chunk)
		raw, _ := hex.DecodeString(sum)
		if got := p.Header.Get("X-Amz-Checksum-Sha256"); got != base64.StdEncoding.EncodeToString(raw) {
			t.Errorf("part %s: checksum %q, want the part's SHA-256", n, got)
		}
		if got := p.Header.Get("X-Amz-Content-Sha256"); got != sum {
			t.Errorf("part %s: payload hash %q, want %s", n, got, sum)
		}
	}
	completes := f.requests(seenComplete)
	if len(completes) != 1 || completes[0].Header.Get("If-None-Match") != "*" {
		t.Fatalf("CompleteMultipartUpload requests %v, want one with If-None-Match: *", completes)
	}
	if got := blobtest.ReadAll(t, st, "depots/ab/multi"); !bytes.Equal(got, data) {
		t.Fatal("multipart object differs")
	}
}

// Transient 503s (throttling) are retried; the object is stored once.
func TestPut_Retries503(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	f.inject(isPutObject, 2, s3Error(http.StatusServiceUnavailable, "SlowDown"))
	data := blobtest.Data(3000, 3)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/retried", data)
	if n := len(f.requests(seenPutObject)); n != 3 {
		t.Fatalf("%d PutObject attempts, want 3", n)
	}
	if got := blobtest.ReadAll(t, st, "depots/ab/retried"); !bytes.Equal(got, data) {
		t.Fatal("object differs after retries")
	}
}

// assertUnavailable checks the error a client would be shown.
func assertUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if pigp.ErrorCode(err) != pigp.EUNAVAILABLE || pigp.ErrorMessage(err) != blob.UnavailableMessage {
		t.Fatalf("%s: %v (code %s, message %q), want EUNAVAILABLE %q", what, err, pigp.ErrorCode(err), pigp.ErrorMessage(err), blob.UnavailableMessage)
	}
}

// A server that keeps failing: a bounded number of attempts, then
// "stockage indisponible", and nothing stored.
func TestPut_Persistent503(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	f.inject(isPutObject, 0, s3Error(http.StatusServiceUnavailable, "ServiceUnavailable"))
	file, sum := blobtest.Spool(t, blobtest.Harness{}, blobtest.Data(3000, 4))
	err := st.Put(context.Background(), "depots/ab/refused", file, sum)
	assertUnavailable(t, "Put against a failing server", err)
	if n := len(f.requests(seenPutObject)); n != 3 {
		t.Fatalf("%d attempts, want MaxAttempts = 3", n)
	}
	f.clearFaults()
	_, err = st.Stat(context.Background(), "depots/ab/refused")
	blobtest.AssertNotFound(t, "Stat after a refused Put", err)
}

// assertNoUploads fails if a multipart upload is left in the bucket.
func assertNoUploads(t *testing.T, st *s3.Store, f *fake) {
	t.Helper()
	n, err := st.AbortIncomplete(context.Background(), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d multipart uploads were left behind", n)
	}
}

// A part that keeps failing aborts the whole upload: no object, no parts.
func TestPut_FailedPartAborts(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	f.inject(isUploadPart("2"), 0, s3Error(http.StatusInternalServerError, "InternalError"))
	file, sum := blobtest.Spool(t, blobtest.Harness{}, blobtest.Data(12<<20, 5))
	err := st.Put(context.Background(), "depots/ab/partfail", file, sum)
	assertUnavailable(t, "Put with a failing part", err)
	if len(f.requests(seenAbort)) != 1 || len(f.requests(seenComplete)) != 0 {
		t.Fatalf("aborts %d, completes %d; want 1 and 0", len(f.requests(seenAbort)), len(f.requests(seenComplete)))
	}
	f.clearFaults()
	_, err = st.Stat(context.Background(), "depots/ab/partfail")
	blobtest.AssertNotFound(t, "Stat after a failed multipart Put", err)
	assertNoUploads(t, st, f)
}

// A part that fails once is sent again; the object is whole.
func TestPut_FailedPartRetried(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	f.inject(isUploadPart("2"), 1, s3Error(http.StatusInternalServerError, "InternalError"))
	data := blobtest.Data(12<<20, 6)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/partretry", data)
	if got := blobtest.ReadAll(t, st, "depots/ab/partretry"); !bytes.Equal(got, data) {
		t.Fatal("object differs after a retried part")
	}
}

// An attempt that gets no answer is abandoned after RequestTimeout and
// tried again.
func TestPut_TimeoutRetried(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	// Long enough for a 5 MiB part on a busy machine under -race; the
	// hung attempts each cost that long.
	cfg.RequestTimeout = 2 * time.Second
	st := f.store(t, cfg)
	f.inject(isUploadPart("1"), 1, f.hang)
	f.inject(isPutObject, 1, f.hang)
	for _, n := range []int64{4000, 12 << 20} {
		data := blobtest.Data(n, 7)
		blobtest.MustPut(t, blobtest.Harness{Backend: st}, fmt.Sprintf("depots/ab/slow-%d", n), data)
	}
	if n := len(f.requests(seenPutObject)); n != 2 {
		t.Fatalf("%d PutObject attempts, want 2 (one timed out)", n)
	}
}

// A server that never answers: bounded attempts, "stockage indisponible",
// no object and no upload left.
func TestPut_TimeoutPersistent(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	cfg.RequestTimeout = time.Second // the requests that get an answer are small
	st := f.store(t, cfg)
	f.inject(isUploadPart(""), 0, f.hang)
	file, sum := blobtest.Spool(t, blobtest.Harness{}, blobtest.Data(11<<20, 8))
	err := st.Put(context.Background(), "depots/ab/never", file, sum)
	assertUnavailable(t, "Put against a server that never answers", err)
	f.clearFaults()
	_, err = st.Stat(context.Background(), "depots/ab/never")
	blobtest.AssertNotFound(t, "Stat", err)
	assertNoUploads(t, st, f)
}

// The caller's context ends mid-upload: the multipart upload is aborted.
func TestPut_CanceledMidUploadAborts(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	ctx, cancel := context.WithCancel(context.Background())
	f.inject(isUploadPart("2"), 0, func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		cancel()
		f.hang(w, r, nil)
	})
	file, sum := blobtest.Spool(t, blobtest.Harness{}, blobtest.Data(12<<20, 9))
	if err := st.Put(ctx, "depots/ab/canceled", file, sum); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	f.clearFaults()
	_, err := st.Stat(context.Background(), "depots/ab/canceled")
	blobtest.AssertNotFound(t, "Stat", err)
	assertNoUploads(t, st, f)
}

// If the key appears between the HEAD and the write, If-None-Match makes
// the server refuse: ECONFLICT, the first object kept.
func TestPut_ConditionalWriteRace(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/race", []byte("first"))
	f.inject(isHead, 1, s3Error(http.StatusNotFound, "NotFound")) // the HEAD misses it
	file, sum := blobtest.Spool(t, blobtest.Harness{}, []byte("second"))
	err := st.Put(context.Background(), "depots/ab/race", file, sum)
	if pigp.ErrorCode(err) != pigp.ECONFLICT {
		t.Fatalf("Put racing an existing key = %v, want ECONFLICT", err)
	}
	if got := blobtest.ReadAll(t, st, "depots/ab/race"); string(got) != "first" {
		t.Fatalf("object = %q, want first", got)
	}
}

// A server that reports another checksum than the one sent: the object is
// taken back and the Put fails.
func TestPut_ServerChecksumMismatch(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	f.inject(isPutObject, 1, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(make([]byte, 32)))
		next.ServeHTTP(w, r)
	})
	file, sum := blobtest.Spool(t, blobtest.Harness{}, blobtest.Data(5000, 10))
	err := st.Put(context.Background(), "depots/ab/corrupt", file, sum)
	assertUnavailable(t, "Put with a wrong checksum from the server", err)
	_, err = st.Stat(context.Background(), "depots/ab/corrupt")
	blobtest.AssertNotFound(t, "Stat of an object taken back", err)
}

// A ranged GET whose body breaks off is asked again; the reader returns
// the right bytes.
func TestRead_CutBodyRetried(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	data := blobtest.Data(300<<10, 11)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "retraits/ab/cut", data)
	f.inject(isGet, 2, cutBody)
	if got := blobtest.ReadAll(t, st, "retraits/ab/cut"); !bytes.Equal(got, data) {
		t.Fatal("bytes differ after cut-off GETs")
	}
}

// Reads use ranged GETs of ReadChunk bytes, never the whole object.
func TestRead_RangedGets(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	cfg.ReadChunk = 64 << 10
	st := f.store(t, cfg)
	data := blobtest.Data(1<<20, 12)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "retraits/ab/ranged", data)
	blobtest.ReadAll(t, st, "retraits/ab/ranged")
	gets := f.requests(func(r seenRequest) bool { return r.Method == http.MethodGet && strings.Contains(r.Path, "ranged") })
	if len(gets) != 16 {
		t.Fatalf("%d GETs for 1 MiB in 64 KiB chunks, want 16", len(gets))
	}
	for _, g := range gets {
		if !strings.HasPrefix(g.Header.Get("Range"), "bytes=") || g.Header.Get("If-Match") == "" {
			t.Fatalf("GET without Range or If-Match: %v", g.Header)
		}
	}
}

// A read that keeps failing says "stockage indisponible"; once the server
// is back, the same open object reads again.
func TestRead_UnavailableThenBack(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	data := blobtest.Data(200<<10, 13)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "retraits/ab/flaky", data)
	o, err := st.Open(context.Background(), "retraits/ab/flaky")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	f.inject(isGet, 0, s3Error(http.StatusServiceUnavailable, "ServiceUnavailable"))
	p := make([]byte, 1000)
	_, err = o.ReadAt(p, 150<<10)
	assertUnavailable(t, "ReadAt against a failing server", err)
	f.clearFaults()
	if _, err := o.ReadAt(p, 150<<10); err != nil || !bytes.Equal(p, data[150<<10:150<<10+1000]) {
		t.Fatalf("ReadAt after the server came back: %v", err)
	}
}

// An object removed while open: reads say not found.
func TestRead_RemovedWhileOpen(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "retraits/ab/gone", blobtest.Data(500<<10, 14))
	o, err := st.Open(context.Background(), "retraits/ab/gone")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := st.Remove(context.Background(), "retraits/ab/gone"); err != nil {
		t.Fatal(err)
	}
	_, err = o.ReadAt(make([]byte, 10), 400<<10)
	blobtest.AssertNotFound(t, "ReadAt of a removed object", err)
}

// Reads after Close fail; Close stops nothing else.
func TestRead_AfterClose(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "retraits/ab/closed", []byte("content"))
	o, err := st.Open(context.Background(), "retraits/ab/closed")
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if _, err := o.ReadAt(make([]byte, 3), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ReadAt after Close = %v, want os.ErrClosed", err)
	}
}

// Deletions go in DeleteObjects batches of DeleteBatch keys, with
// Content-MD5; missing keys are not errors.
func TestRemove_Batches(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	cfg.DeleteBatch = 3
	st := f.store(t, cfg)
	var keys []string
	for i := range 7 {
		k := "retraits/ab/" + string(rune('a'+i))
		blobtest.MustPut(t, blobtest.Harness{Backend: st}, k, []byte(k))
		keys = append(keys, k)
	}
	if err := st.Remove(context.Background(), append(keys, "retraits/ab/missing")...); err != nil {
		t.Fatal(err)
	}
	deletes := f.requests(func(r seenRequest) bool { _, ok := r.Query["delete"]; return r.Method == http.MethodPost && ok })
	if len(deletes) != 3 {
		t.Fatalf("%d DeleteObjects requests for 8 keys by 3, want 3", len(deletes))
	}
	for _, d := range deletes {
		if d.Header.Get("Content-MD5") == "" {
			t.Fatal("DeleteObjects without Content-MD5")
		}
	}
	if keys := blobtest.Keys(t, st, ""); len(keys) != 0 {
		t.Fatalf("left after Remove: %v", keys)
	}
}

// Incomplete multipart uploads older than the grace are aborted, newer
// ones kept.
func TestAbortIncomplete(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	c := awss3.New(awss3.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.srv.URL), UsePathStyle: true,
		Credentials: aws.AnonymousCredentials{}})
	if _, err := c.CreateMultipartUpload(context.Background(), &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("depots/ab/crashed")}); err != nil {
		t.Fatal(err)
	}
	n, err := st.AbortIncomplete(context.Background(), time.Now().Add(-time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("AbortIncomplete(an hour ago) = %d, %v; want 0 (the upload is recent)", n, err)
	}
	n, err = st.AbortIncomplete(context.Background(), time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("AbortIncomplete(in an hour) = %d, %v; want 1", n, err)
	}
	assertNoUploads(t, st, f)
}

// Without a quota the free space is unknown; with one, it is the quota
// less what the prefix holds.
func TestFreeSpace(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	sp, err := st.FreeSpace(context.Background())
	if err != nil || sp.Known {
		t.Fatalf("FreeSpace without quota = %+v, %v; want unknown", sp, err)
	}
	cfg := f.config()
	cfg.Quota = 1 << 20
	q := f.store(t, cfg)
	blobtest.MustPut(t, blobtest.Harness{Backend: q}, "depots/ab/q", make([]byte, 300000))
	sp, err = q.FreeSpace(context.Background())
	if err != nil || !sp.Known || sp.Total != 1<<20 || sp.Free != 1<<20-300000 {
		t.Fatalf("FreeSpace with a 1 MiB quota = %+v, %v; want 748576 free", sp, err)
	}
}

// Check answers for /readyz: fine, missing bucket, unreachable server.
func TestCheck(t *testing.T) {
	f := newFake(t)
	if err := f.store(t, f.config()).Check(context.Background()); err != nil {
		t.Fatalf("Check = %v", err)
	}
	cfg := f.config()
	cfg.Bucket = "absent"
	assertUnavailable(t, "Check of a missing bucket", f.store(t, cfg).Check(context.Background()))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg = f.config()
	cfg.Endpoint = "http://" + addr
	assertUnavailable(t, "Check of an unreachable server", f.store(t, cfg).Check(context.Background()))
}

// tls_ca: a server certified by a private authority is trusted only with
// it.
func TestTLSCA(t *testing.T) {
	f := newFakeServer(t, true)
	cfg := f.config()
	assertUnavailable(t, "Check without the CA", f.store(t, cfg).Check(context.Background()))
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.TLSCA = ca
	st := f.store(t, cfg)
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("Check with the CA = %v", err)
	}
	data := blobtest.Data(7<<20, 15) // multipart over TLS
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/tls", data)
	if got := blobtest.ReadAll(t, st, "depots/ab/tls"); !bytes.Equal(got, data) {
		t.Fatal("object differs over TLS")
	}
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.New(context.Background(), cfg); err == nil {
		t.Fatal("a tls_ca without certificates was accepted")
	}
}

// Without keys in the configuration, the usual AWS environment and files
// give the credentials.
func TestCredentialsFromEnvironment(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	authKey := func() string {
		reqs := f.requests(func(seenRequest) bool { return true })
		a := reqs[len(reqs)-1].Header.Get("Authorization")
		_, after, _ := strings.Cut(a, "Credential=")
		key, _, _ := strings.Cut(after, "/")
		return key
	}
	cfg := f.config()
	cfg.AccessKey, cfg.SecretKey = "", ""

	t.Setenv("AWS_ACCESS_KEY_ID", "FROMENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	if err := f.store(t, cfg).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k := authKey(); k != "FROMENV" {
		t.Fatalf("signed with %q, want the environment's FROMENV", k)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	creds := "[pigp]\naws_access_key_id = FROMFILE\naws_secret_access_key = secret\n"
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_PROFILE", "pigp")
	if err := f.store(t, cfg).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k := authKey(); k != "FROMFILE" {
		t.Fatalf("signed with %q, want the credentials file's FROMFILE", k)
	}
}

func TestConfigRefused(t *testing.T) {
	for name, cfg := range map[string]s3.Config{
		"no bucket":        {},
		"small parts":      {Bucket: "b", PartSize: 1 << 20},
		"half the keys":    {Bucket: "b", AccessKey: "a"},
		"missing tls_ca":   {Bucket: "b", TLSCA: "/nonexistent/ca.pem"},
		"uppercase prefix": {Bucket: "b", Prefix: "PIGP"},
	} {
		if _, err := s3.New(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Objects that 10 000 parts of PartSize would not hold get larger parts,
// in whole MiB.
func TestPartSizeGrows(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config()) // 5 MiB parts
	for _, c := range []struct{ size, want int64 }{
		{11 << 20, 5 << 20},
		{10000 * (5 << 20), 5 << 20},
		{10000*(5<<20) + 1, 6 << 20},
		{5 << 40, 525 << 20}, // 5 TiB, the S3 maximum object
	} {
		got := st.PartSize(c.size)
		if got != c.want || (c.size+got-1)/got > 10000 {
			t.Errorf("PartSize(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

// Credentials without s3:ListBucket get 403 instead of 404 for a missing
// key: the HEAD before a Put does not stop it.
func TestPut_HeadForbiddenGoesOn(t *testing.T) {
	f := newFake(t)
	st := f.store(t, f.config())
	f.inject(isHead, 1, s3Error(http.StatusForbidden, "AccessDenied"))
	data := blobtest.Data(2000, 17)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/nolist", data)
	if got := blobtest.ReadAll(t, st, "depots/ab/nolist"); !bytes.Equal(got, data) {
		t.Fatal("object differs")
	}
}

// The used space behind FreeSpace is listed again only after UsageTTL.
func TestFreeSpace_Cached(t *testing.T) {
	f := newFake(t)
	cfg := f.config()
	cfg.Quota = 10 << 20
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	st := f.store(t, cfg)
	free := func() uint64 {
		t.Helper()
		sp, err := st.FreeSpace(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return sp.Free
	}
	if got := free(); got != 10<<20 {
		t.Fatalf("free = %d, want the whole quota", got)
	}
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/used", make([]byte, 1<<20))
	now = now.Add(time.Minute)
	if got := free(); got != 10<<20 {
		t.Fatalf("free within UsageTTL = %d, want the cached figure", got)
	}
	now = now.Add(5 * time.Minute)
	if got := free(); got != 9<<20 {
		t.Fatalf("free after UsageTTL = %d, want 9 MiB", got)
	}
}
