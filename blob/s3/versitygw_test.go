package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob/blobtest"
	"github.com/pigp/pigp/blob/s3"
	"github.com/pigp/pigp/internal/testutil"
)

// vgwConfig is a store configuration for a fresh bucket of srv, reached at
// endpoint (srv's, or a proxy's in front of it).
func vgwConfig(t *testing.T, srv *testutil.S3Server, endpoint string) s3.Config {
	return s3.Config{
		Endpoint: endpoint, Region: srv.Region, Bucket: srv.NewBucket(t), PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		MultipartThreshold: 5 << 20, PartSize: 5 << 20, Concurrency: 3,
		ReadChunk: 256 << 10, ReadAhead: 2,
		MaxAttempts: 3, MaxBackoff: 20 * time.Millisecond, RequestTimeout: 30 * time.Second,
	}
}

func TestContract_VersityGW(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	blobtest.Run(t, func(t *testing.T) blobtest.Harness {
		st, err := s3.New(context.Background(), vgwConfig(t, srv, srv.Endpoint))
		if err != nil {
			t.Fatal(err)
		}
		return blobtest.Harness{Backend: st, Large: 11 << 20}
	})
}

// The bytes on the server's disk are the ones put, single and multipart.
func TestVersityGW_ObjectOnDisk(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	cfg := vgwConfig(t, srv, srv.Endpoint)
	st, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{70000, 12 << 20} {
		data := blobtest.Data(n, 21)
		key := "depots/ab/disk-" + map[bool]string{true: "multi", false: "single"}[n > cfg.MultipartThreshold]
		blobtest.MustPut(t, blobtest.Harness{Backend: st}, key, data)
		onDisk, err := os.ReadFile(filepath.Join(srv.Dir, cfg.Bucket, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(onDisk)
		if hex.EncodeToString(sum[:]) != blobtest.Sum(data) {
			t.Fatalf("%s: SHA-256 on the server's disk differs from the one put", key)
		}
	}
}

// A byte changed on the way: the server checks the SHA-256 sent with the
// object or part and refuses; nothing is stored, no upload is left.
func TestVersityGW_CorruptionInTransitRefused(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	p := newProxy(t, srv.Endpoint)
	cfg := vgwConfig(t, srv, p.srv.URL)
	st, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.inject(func(r *http.Request) bool { return r.Method == http.MethodPut }, 0, corrupt)
	for _, n := range []int64{70000, 12 << 20} {
		file, sum := blobtest.Spool(t, blobtest.Harness{}, blobtest.Data(n, 22))
		key := "depots/ab/corrupted"
		err := st.Put(context.Background(), key, file, sum)
		assertUnavailable(t, "Put corrupted in transit", err)
		_, err = st.Stat(context.Background(), key)
		blobtest.AssertNotFound(t, "Stat after a corrupted Put", err)
	}
	// Each damaged request was sent again, MaxAttempts times in all.
	if n := len(p.requests(seenPutObject)); n != 3 {
		t.Fatalf("%d PutObject attempts, want 3", n)
	}
	p.clearFaults()
	if n, err := st.AbortIncomplete(context.Background(), time.Now().Add(24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("AbortIncomplete = %d, %v; want no upload left", n, err)
	}
}

// The conditional create holds on the server for multipart uploads too:
// when the HEAD misses an existing key, CompleteMultipartUpload with
// If-None-Match is refused and the first object stays.
func TestVersityGW_ConditionalMultipart(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	p := newProxy(t, srv.Endpoint)
	st, err := s3.New(context.Background(), vgwConfig(t, srv, p.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	first := blobtest.Data(9000, 23)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/taken", first)
	p.inject(isHead, 1, s3Error(http.StatusNotFound, "NotFound"))
	file, sum := blobtest.Spool(t, blobtest.Harness{}, blobtest.Data(11<<20, 24))
	err = st.Put(context.Background(), "depots/ab/taken", file, sum)
	if pigp.ErrorCode(err) != pigp.ECONFLICT {
		t.Fatalf("multipart Put over an existing key = %v, want ECONFLICT", err)
	}
	if got := blobtest.ReadAll(t, st, "depots/ab/taken"); !bytes.Equal(got, first) {
		t.Fatal("the existing object was overwritten")
	}
	if n, err := st.AbortIncomplete(context.Background(), time.Now().Add(24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("AbortIncomplete = %d, %v; want no upload left", n, err)
	}
}

// Refused credentials: "stockage indisponible", for /readyz and for a Put.
func TestVersityGW_WrongSecret(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	cfg := vgwConfig(t, srv, srv.Endpoint)
	cfg.SecretKey = "wrong"
	st, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertUnavailable(t, "Check with a wrong secret", st.Check(context.Background()))
	file, sum := blobtest.Spool(t, blobtest.Harness{}, []byte("x"))
	assertUnavailable(t, "Put with a wrong secret", st.Put(context.Background(), "depots/ab/x", file, sum))
}

// A part damaged once on the way is refused by the server, sent again and
// stored whole.
func TestVersityGW_CorruptionOnceRetried(t *testing.T) {
	srv := testutil.StartVersityGW(t)
	p := newProxy(t, srv.Endpoint)
	st, err := s3.New(context.Background(), vgwConfig(t, srv, p.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	p.inject(isUploadPart("2"), 1, corrupt)
	data := blobtest.Data(12<<20, 25)
	blobtest.MustPut(t, blobtest.Harness{Backend: st}, "depots/ab/healed", data)
	if got := blobtest.ReadAll(t, st, "depots/ab/healed"); !bytes.Equal(got, data) {
		t.Fatal("object differs")
	}
	if n := len(p.requests(seenUploadPart)); n != 4 {
		t.Fatalf("%d UploadPart requests, want 4 (3 parts, one sent twice)", n)
	}
}
