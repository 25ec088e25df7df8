package lifecycle_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/internal/testutil"
)

// backendKinds are the content stores the lifecycle runs on in these tests.
var backendKinds = []string{"fs", "s3"}

// backend returns e's filesystem store (fs) or an in-process S3 server (s3).
func backend(t *testing.T, e *env, kind string) blob.Backend {
	if kind == "s3" {
		return testutil.StartFakeS3(t).Store(t)
	}
	return blob.NewFS(e.blobs)
}

// putObject stores data under key in b, through a spool file of e.
func putObject(t *testing.T, e *env, b blob.Backend, key string, data []byte) {
	t.Helper()
	tmp, err := e.blobs.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Abort()
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := b.Put(context.Background(), key, tmp.File, hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
}

func keysOf(t *testing.T, b blob.Backend) []string {
	t.Helper()
	var keys []string
	if err := b.Walk(context.Background(), "", func(o blob.Info) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// Housekeeping walks the store and removes the objects no row refers to,
// batch by batch (BatchSize 3), on either store; objects younger than the
// grace period are kept.
func TestHousekeepingSweepsOrphans(t *testing.T) {
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, "sqlite")
			b := backend(t, e, kind)
			e.life.Blobs = b
			ctx := context.Background()
			var kept []string
			for i := range 11 {
				id := pigp.NewID()
				key := blob.Key(blob.KindResponse, id)
				putObject(t, e, b, key, []byte(fmt.Sprint("content ", i)))
				if i%3 == 0 { // 4 with a row, 7 orphans
					r := &pigp.Response{ID: id, Name: fmt.Sprintf("r%d_REP.xml", i), SIRET: siret, DocType: pigp.DocResponse,
						Size: 9, SHA256: "x", State: pigp.ResponseAvailable, AvailableAt: e.t0, ExpiresAt: e.t0.Add(pigp.DefaultRetention), StorageKey: key}
					if err := e.db.CreateResponse(ctx, r); err != nil {
						t.Fatal(err)
					}
					kept = append(kept, key)
				}
			}
			slices.Sort(kept)
			if _, orphans, err := e.life.Housekeeping(ctx, time.Now()); err != nil || orphans != 0 {
				t.Fatalf("within the grace period: %d orphans removed, %v", orphans, err)
			}
			e.life.OrphanMinAge = 0
			if _, orphans, err := e.life.Housekeeping(ctx, time.Now()); err != nil || orphans != 7 {
				t.Fatalf("housekeeping: %d orphans removed, %v; want 7", orphans, err)
			}
			if got := keysOf(t, b); !slices.Equal(got, kept) {
				t.Fatalf("objects left %v, want %v", got, kept)
			}
		})
	}
}

// Expiry deletes the expired responses' objects in batches on either store;
// an object already gone is no error.
func TestExpireResponsesDeletesObjects(t *testing.T) {
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, "sqlite")
			b := backend(t, e, kind)
			e.life.Blobs = b
			ctx := context.Background()
			var keys []string
			for i := range 5 {
				id := pigp.NewID()
				key := blob.Key(blob.KindResponse, id)
				putObject(t, e, b, key, []byte("<ReponseAPA/>"))
				r := &pigp.Response{ID: id, Name: fmt.Sprintf("r%d_REP.xml", i), SIRET: siret, DocType: pigp.DocResponse,
					Size: 13, SHA256: "x", State: pigp.ResponseAvailable, AvailableAt: e.t0, ExpiresAt: e.t0.Add(pigp.DefaultRetention), StorageKey: key}
				if err := e.db.CreateResponse(ctx, r); err != nil {
					t.Fatal(err)
				}
				keys = append(keys, key)
			}
			if err := b.Remove(ctx, keys[2]); err != nil { // gone already (a run killed half-way)
				t.Fatal(err)
			}
			expired, deleted, err := e.life.ExpireResponses(ctx, e.t0.Add(pigp.DefaultRetention+time.Hour))
			if err != nil || expired != 5 || deleted != 5 {
				t.Fatalf("expiry: %d expired, %d deleted, %v", expired, deleted, err)
			}
			if got := keysOf(t, b); len(got) != 0 {
				t.Fatalf("objects left: %v", got)
			}
		})
	}
}
