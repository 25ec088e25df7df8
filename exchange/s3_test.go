package exchange_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/blob/s3"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/internal/testutil"
)

// mustOpenS3 is MustOpen with the contents in an in-process S3 server;
// uploads still spool in the local store's tmp/.
func mustOpenS3(t *testing.T) (*env, *testutil.FakeS3) {
	e := MustOpen(t)
	fake := testutil.StartFakeS3(t)
	e.svc.Blobs = fake.Store(t)
	return e, fake
}

// objects lists the keys of the service's content store.
func objects(t *testing.T, b blob.Backend) []string {
	t.Helper()
	var keys []string
	if err := b.Walk(context.Background(), "", func(o blob.Info) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// On S3, a deposit written out of order is spooled locally, put whole under
// its depots/ key with its SHA-256, and its spool file removed; a response
// is published into the bucket, downloaded (recorded) and removed.
func TestS3_DepositAndResponse(t *testing.T) {
	e, _ := mustOpenS3(t)
	data := randomBytes(t, 6<<20+3) // multipart
	d := upload(t, e, func(t *testing.T, u *exchange.Upload) {
		const chunk = 1 << 20
		for _, i := range shuffled(t, (len(data)+chunk-1)/chunk) {
			mustWriteAt(t, u, data[i*chunk:min((i+1)*chunk, len(data))], int64(i*chunk))
		}
	}, data)
	if keys := objects(t, e.svc.Blobs); len(keys) != 1 || keys[0] != d.StorageKey || !strings.HasPrefix(d.StorageKey, "depots/") {
		t.Fatalf("objects %v, deposit key %s", keys, d.StorageKey)
	}
	if info, err := e.svc.Blobs.Stat(context.Background(), d.StorageKey); err != nil || info.SHA256 != d.SHA256 {
		t.Fatalf("object's recorded SHA-256 %q, deposit's %s (%v)", info.SHA256, d.SHA256, err)
	}
	content := randomBytes(t, 300<<10)
	r := mustPublish(t, e, siretA, "reponse.xml", content)
	if got := readAll(t, e, e.callerA(), "reponse.xml"); !bytes.Equal(got, content) {
		t.Fatal("downloaded bytes differ")
	}
	if ds := e.downloads(t, siretA); len(ds) != 1 || ds[0].ResponseID != r.ID {
		t.Fatalf("downloads %+v", ds)
	}
	if err := e.svc.RemoveResponse(context.Background(), e.callerA(), "reponse.xml"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Blobs.Stat(context.Background(), r.StorageKey); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("removed response's object: %v", err)
	}
	if got := e.files(t, "tmp"); len(got) != 0 {
		t.Fatalf("spool files left: %v", got)
	}
}

// A bucket that refuses writes: the deposit and the publication are refused
// with "stockage indisponible" and leave no row, no object, no spool file.
func TestS3_Unavailable(t *testing.T) {
	e, fake := mustOpenS3(t)
	fake.FailWrites.Store(true)
	for _, n := range []int{1000, 6 << 20} {
		u, err := e.svc.BeginDeposit(context.Background(), e.callerA(), callName(siretA, e.now.Add(-time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		mustWriteAt(t, u, randomBytes(t, n), 0)
		_, err = u.Commit(context.Background())
		if pigp.ErrorCode(err) != pigp.EUNAVAILABLE || pigp.ErrorMessage(err) != blob.UnavailableMessage {
			t.Fatalf("commit of %d bytes to a failing store: %v (%q)", n, err, pigp.ErrorMessage(err))
		}
	}
	if _, err := e.svc.Publish(context.Background(), siretA, "reponse.xml", pigp.DocResponse, "", strings.NewReader("<x/>")); pigp.ErrorMessage(err) != blob.UnavailableMessage {
		t.Fatalf("publish to a failing store: %v", err)
	}
	fake.FailWrites.Store(false)
	if ds := e.deposits(t, siretA); len(ds) != 0 {
		t.Fatalf("deposits recorded: %+v", ds)
	}
	if rs, _ := e.svc.Responses(context.Background(), e.callerA()); len(rs) != 0 {
		t.Fatalf("responses recorded: %+v", rs)
	}
	if keys := objects(t, e.svc.Blobs); len(keys) != 0 {
		t.Fatalf("objects left: %v", keys)
	}
	if n, err := e.svc.Blobs.AbortIncomplete(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("multipart uploads left: %d, %v", n, err)
	}
	if got := e.files(t, "tmp"); len(got) != 0 {
		t.Fatalf("spool files left: %v", got)
	}
}

// statvfs and the free-space check: a bucket without a quota is "unknown"
// and lets uploads through, whatever min_free_space says.
func TestS3_FreeSpaceUnknown(t *testing.T) {
	e, _ := mustOpenS3(t)
	e.svc.MinFreeSpace = exchange.SpacePolicy{Percent: 99}
	sp, err := e.svc.FreeSpace(context.Background())
	if err != nil || sp.Known {
		t.Fatalf("FreeSpace = %+v, %v; want unknown", sp, err)
	}
	if err := e.svc.CheckSpace(); err != nil {
		t.Fatalf("CheckSpace with an unknown free space: %v", err)
	}
}

// With a quota, the free space is the quota less what the bucket holds, and
// min_free_space applies to it as to a disk: uploads are refused at open
// below it.
func TestS3_Quota(t *testing.T) {
	e := MustOpen(t)
	fake := testutil.StartFakeS3(t)
	e.svc.Blobs = fake.Store(t, func(c *s3.Config) { c.Quota = 10 << 20 })
	data := randomBytes(t, 6<<20)
	upload(t, e, func(t *testing.T, u *exchange.Upload) { mustWriteAt(t, u, data, 0) }, data)
	sp, err := e.svc.FreeSpace(context.Background())
	if err != nil || !sp.Known || sp.Total != 10<<20 || sp.Free != 4<<20 {
		t.Fatalf("FreeSpace = %+v, %v; want 4 MiB free of 10", sp, err)
	}
	e.svc.MinFreeSpace = exchange.SpacePolicy{Bytes: 5 << 20}
	_, err = e.svc.BeginDeposit(context.Background(), e.callerA(), callName(siretA, e.now.Add(-time.Hour)))
	if pigp.ErrorCode(err) != pigp.EUNAVAILABLE {
		t.Fatalf("upload below min_free_space of the quota: %v", err)
	}
	e.svc.MinFreeSpace = exchange.SpacePolicy{Percent: 30}
	if _, err := e.svc.BeginDeposit(context.Background(), e.callerA(), callName(siretA, e.now.Add(-time.Hour))); err != nil {
		t.Fatalf("upload above min_free_space (30%% of the quota): %v", err)
	}
}
