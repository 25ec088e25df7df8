package blob_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
)

func TestKey(t *testing.T) {
	if got := blob.Key(blob.KindDeposit, "ab12cd"); got != "depots/ab/ab12cd" {
		t.Fatalf("Key = %q", got)
	}
	if got := blob.Key(blob.KindResponse, "0f9e"); got != "retraits/0f/0f9e" || !blob.ValidKey(got) {
		t.Fatalf("Key = %q", got)
	}
}

// Publish stores the content, then commits; a failed commit takes the
// object back, a failed write stores nothing; the spool file goes either
// way.
func TestPublish(t *testing.T) {
	st, err := blob.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	b := blob.NewFS(st)
	ctx := context.Background()
	write := func(w io.Writer) error { _, err := io.WriteString(w, "<ReponseAPA/>"); return err }

	var size int64
	var sum string
	if err := blob.Publish(ctx, b, st, "retraits/ab/ok", write, func(n int64, s string) error { size, sum = n, s; return nil }); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte("<ReponseAPA/>"))
	if info, err := b.Stat(ctx, "retraits/ab/ok"); err != nil || info.Size != 13 || size != 13 || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("published: %+v %v, commit saw %d %s", info, err, size, sum)
	}

	refused := pigp.Errorf(pigp.ECONFLICT, "déjà répondu")
	err = blob.Publish(ctx, b, st, "retraits/ab/refused", write, func(int64, string) error { return refused })
	if !errors.Is(err, refused) || pigp.ErrorCode(err) != pigp.ECONFLICT {
		t.Fatalf("failed commit: %v", err)
	}
	if _, err := b.Stat(ctx, "retraits/ab/refused"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("object of a failed commit kept: %v", err)
	}

	broken := errors.New("writer failed")
	committed := false
	err = blob.Publish(ctx, b, st, "retraits/ab/broken", func(io.Writer) error { return broken }, func(int64, string) error { committed = true; return nil })
	if !errors.Is(err, broken) || committed {
		t.Fatalf("failed write: %v, committed %v", err, committed)
	}
	if _, err := b.Stat(ctx, "retraits/ab/broken"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("object of a failed write stored: %v", err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(st.Dir(), "tmp")); len(tmp) != 0 {
		t.Fatalf("spool files left: %v", tmp)
	}
}
