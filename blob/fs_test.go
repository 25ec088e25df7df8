package blob_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/blob/blobtest"
)

func fsHarness(t *testing.T) blobtest.Harness {
	s := MustOpen(t)
	return blobtest.Harness{
		Backend: blob.NewFS(s),
		Spool: func(tb testing.TB) *os.File {
			tmp, err := s.Create()
			if err != nil {
				tb.Fatal(err)
			}
			return tmp.File
		},
	}
}

func TestFS_Contract(t *testing.T) {
	blobtest.Run(t, fsHarness)
}

// The store's own spool file becomes the object without a copy, and the
// caller still owns (and removes) the spool name.
func TestFS_PutLinksSpool(t *testing.T) {
	h := fsHarness(t)
	f, sum := blobtest.Spool(t, h, blobtest.Data(100000, 1))
	if err := h.Backend.Put(context.Background(), "depots/ab/linked", f, sum); err != nil {
		t.Fatal(err)
	}
	s := h.Backend.(*blob.FS).Store()
	spool, err := os.Stat(f.Name())
	if err != nil {
		t.Fatalf("spool gone after Put: %v", err)
	}
	obj, err := os.Stat(filepath.Join(s.Dir(), "objects", "depots", "ab", "linked"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(spool, obj) {
		t.Fatal("the spool file was copied, not linked")
	}
	if perm := obj.Mode().Perm(); perm != 0o600 {
		t.Errorf("object mode %o, want 600", perm)
	}
}

// A file from elsewhere is copied, and the copy's spool name does not stay
// in tmp/.
func TestFS_PutCopiesForeignFile(t *testing.T) {
	h := fsHarness(t)
	s := h.Backend.(*blob.FS).Store()
	data := blobtest.Data(300000, 2)
	f, sum := blobtest.Spool(t, blobtest.Harness{}, data)
	if err := h.Backend.Put(context.Background(), "retraits/cd/copied", f, sum); err != nil {
		t.Fatal(err)
	}
	src, _ := f.Stat()
	obj, err := os.Stat(filepath.Join(s.Dir(), "objects", "retraits", "cd", "copied"))
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(src, obj) {
		t.Fatal("a file outside the store was linked")
	}
	if names := tmpEntries(t, s); len(names) != 0 {
		t.Fatalf("tmp/ after a copying Put: %v", names)
	}
}

// Taking a key that exists leaves both the object and the spool alone.
func TestFS_PutTakenKeyKeepsSpool(t *testing.T) {
	h := fsHarness(t)
	blobtest.MustPut(t, h, "depots/ef/taken", []byte("first"))
	f, sum := blobtest.Spool(t, h, []byte("second"))
	err := h.Backend.Put(context.Background(), "depots/ef/taken", f, sum)
	if pigp.ErrorCode(err) != pigp.ECONFLICT {
		t.Fatalf("Put on a taken key = %v, want ECONFLICT", err)
	}
	if b, err := os.ReadFile(f.Name()); err != nil || string(b) != "second" {
		t.Fatalf("spool after a refused Put: %q, %v", b, err)
	}
}

// Walk sees committed objects only, never spool files.
func TestFS_WalkIgnoresSpool(t *testing.T) {
	h := fsHarness(t)
	blobtest.MustPut(t, h, "depots/01/a", []byte("a"))
	blobtest.Spool(t, h, []byte("in progress"))
	if keys := blobtest.Keys(t, h.Backend, ""); len(keys) != 1 || keys[0] != "depots/01/a" {
		t.Fatalf("Walk = %v, want only depots/01/a", keys)
	}
}

// A store whose directory went away is unavailable, with the French
// message and no internal text.
func TestFS_CheckUnavailable(t *testing.T) {
	h := fsHarness(t)
	s := h.Backend.(*blob.FS).Store()
	if err := os.RemoveAll(filepath.Join(s.Dir(), "objects")); err != nil {
		t.Fatal(err)
	}
	err := h.Backend.Check(context.Background())
	if pigp.ErrorCode(err) != pigp.EUNAVAILABLE || pigp.ErrorMessage(err) != blob.UnavailableMessage {
		t.Fatalf("Check = %v (%q), want EUNAVAILABLE with %q", err, pigp.ErrorMessage(err), blob.UnavailableMessage)
	}
	if err := h.Backend.Walk(context.Background(), "", func(blob.Info) error { return nil }); pigp.ErrorCode(err) != pigp.EUNAVAILABLE {
		t.Fatalf("Walk = %v, want EUNAVAILABLE", err)
	}
}

func TestFS_FreeSpace(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("statfs is wired on Linux only")
	}
	sp, err := fsHarness(t).Backend.FreeSpace(context.Background())
	if err != nil || !sp.Known || sp.Total == 0 {
		t.Fatalf("FreeSpace = %+v, %v; want the filesystem's figures", sp, err)
	}
}
