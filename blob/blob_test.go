package blob_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp/blob"
)

// MustOpen opens a blob store in a temporary directory.
func MustOpen(tb testing.TB) *blob.Store {
	tb.Helper()
	s, err := blob.Open(filepath.Join(tb.TempDir(), "store"))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// tmpEntries returns the names in the store's tmp/ directory.
func tmpEntries(tb testing.TB, s *blob.Store) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func readKey(tb testing.TB, s *blob.Store, key string) []byte {
	tb.Helper()
	f, err := s.Open(key)
	if err != nil {
		tb.Fatalf("Open(%q): %v", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func randomBytes(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestOpen_Layout(t *testing.T) {
	s := MustOpen(t)
	for _, d := range []string{"tmp", "objects"} {
		fi, err := os.Stat(filepath.Join(s.Dir(), d))
		if err != nil || !fi.IsDir() {
			t.Fatalf("%s: %v, want a directory", d, err)
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("%s mode = %o, want 700", d, perm)
		}
	}
	if _, err := blob.Open(s.Dir()); err != nil {
		t.Fatalf("reopening: %v", err)
	}
}

func TestTemp_Commit(t *testing.T) {
	s := MustOpen(t)
	const chunk, chunks = 4096, 64
	want := randomBytes(t, chunk*chunks)

	tmp, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	if got := tmpEntries(t, s); len(got) != 1 {
		t.Fatalf("tmp/ holds %v while writing, want one file", got)
	}

	// Write the chunks concurrently in a random order.
	order := make([]int, chunks)
	for i := range order {
		order[i] = i
	}
	for i := len(order) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		order[i], order[j.Int64()] = order[j.Int64()], order[i]
	}
	var wg sync.WaitGroup
	errs := make(chan error, chunks)
	for _, i := range order {
		wg.Go(func() {
			off := int64(i * chunk)
			if _, err := tmp.WriteAt(want[off:off+chunk], off); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	const key = "depots/ab/ab0123456789abcdef0123456789abcd"
	if s.Exists(key) {
		t.Fatal("Exists before Commit = true")
	}
	if err := tmp.Commit(key); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if !s.Exists(key) {
		t.Fatal("Exists after Commit = false")
	}
	if got := readKey(t, s, key); !bytes.Equal(got, want) {
		t.Fatalf("content at key differs from what was written (%d bytes, want %d)", len(got), len(want))
	}
	if got := tmpEntries(t, s); len(got) != 0 {
		t.Fatalf("tmp/ holds %v after Commit, want nothing", got)
	}
	fi, err := os.Stat(filepath.Join(s.Dir(), "objects", "depots", "ab", "ab0123456789abcdef0123456789abcd"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("committed file mode = %o, want 600", perm)
	}
	for _, d := range []string{"depots", filepath.Join("depots", "ab")} {
		fi, err := os.Stat(filepath.Join(s.Dir(), "objects", d))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("directory %s mode = %o, want 700", d, perm)
		}
	}

	t.Run("AbortAfterCommitIsNoop", func(t *testing.T) {
		if err := tmp.Abort(); err != nil {
			t.Fatalf("Abort after Commit = %v, want nil", err)
		}
		if !s.Exists(key) {
			t.Fatal("Abort after Commit removed the committed object")
		}
	})
	t.Run("CommitTwice", func(t *testing.T) {
		if err := tmp.Commit("other/key"); err == nil {
			t.Fatal("second Commit = nil, want an error")
		}
		if s.Exists("other/key") {
			t.Fatal("second Commit created an object")
		}
	})
}

func TestTemp_Abort(t *testing.T) {
	s := MustOpen(t)
	tmp, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write([]byte("half an upload")); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if got := tmpEntries(t, s); len(got) != 0 {
		t.Fatalf("tmp/ holds %v after Abort, want nothing", got)
	}
	if err := tmp.Abort(); err != nil {
		t.Fatalf("second Abort = %v, want nil", err)
	}
	if err := tmp.Commit("depots/x"); err == nil {
		t.Fatal("Commit after Abort = nil, want an error")
	}
	if s.Exists("depots/x") {
		t.Fatal("Commit after Abort created an object")
	}
}

func TestInvalidKeys(t *testing.T) {
	s := MustOpen(t)
	keys := []string{
		"",
		"../x",
		"a/../../x",
		"/abs",
		"a//b",
		"a/",
		"./a",
		"a/./b",
		"..",
		"Upper",
		"depots/AB/x",
		`a\b`,
		"a b",
		"é",
		strings.Repeat("a", 201),
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			tmp, err := s.Create()
			if err != nil {
				t.Fatal(err)
			}
			defer tmp.Abort()
			if err := tmp.Commit(key); err == nil {
				t.Fatalf("Commit(%q) = nil, want an error", key)
			}
			if _, err := s.Open(key); err == nil {
				t.Fatalf("Open(%q) = nil error, want an error", key)
			}
			if err := s.Remove(key); err == nil {
				t.Fatalf("Remove(%q) = nil, want an error", key)
			}
			if _, err := s.Put(key, strings.NewReader("x")); err == nil {
				t.Fatalf("Put(%q) = nil error, want an error", key)
			}
			if s.Exists(key) {
				t.Fatalf("Exists(%q) = true", key)
			}
		})
	}
	// Nothing escaped the store, and failed Puts left no temporary file.
	if got := tmpEntries(t, s); len(got) != 0 {
		t.Fatalf("tmp/ holds %v, want nothing", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.Dir()), "x")); err == nil {
		t.Fatal("a file was created outside the store")
	}
}

func TestValidKeys(t *testing.T) {
	s := MustOpen(t)
	for _, key := range []string{"a", "depots/ab/ab12", "retraits/x_y-z.1", strings.Repeat("a", 200)} {
		if _, err := s.Put(key, strings.NewReader("x")); err != nil {
			t.Errorf("Put(%q) = %v, want nil", key, err)
		}
	}
}

func TestPut(t *testing.T) {
	s := MustOpen(t)
	want := randomBytes(t, 300_000)
	n, err := s.Put("retraits/01/0123", bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(want)) {
		t.Fatalf("Put returned size %d, want %d", n, len(want))
	}
	if got := readKey(t, s, "retraits/01/0123"); !bytes.Equal(got, want) {
		t.Fatal("content differs from what was Put")
	}

	t.Run("Empty", func(t *testing.T) {
		n, err := s.Put("empty", strings.NewReader(""))
		if err != nil || n != 0 {
			t.Fatalf("Put(empty) = %d, %v; want 0, nil", n, err)
		}
		if !s.Exists("empty") {
			t.Fatal("empty object does not exist")
		}
	})
	t.Run("ReaderError", func(t *testing.T) {
		r := io.MultiReader(strings.NewReader("partial"), errReader{})
		if _, err := s.Put("broken", r); err == nil {
			t.Fatal("Put(failing reader) = nil error, want an error")
		}
		if s.Exists("broken") {
			t.Fatal("a failed Put left an object")
		}
		if got := tmpEntries(t, s); len(got) != 0 {
			t.Fatalf("a failed Put left %v in tmp/", got)
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestRemove(t *testing.T) {
	s := MustOpen(t)
	const key = "retraits/ab/abcd"
	if _, err := s.Put(key, strings.NewReader("content")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(key); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if s.Exists(key) {
		t.Fatal("Exists after Remove = true")
	}
	if _, err := s.Open(key); !os.IsNotExist(err) {
		t.Fatalf("Open after Remove = %v, want not-exist", err)
	}
	if err := s.Remove(key); err != nil {
		t.Fatalf("second Remove = %v, want nil (idempotent)", err)
	}
	if err := s.Remove("never/existed"); err != nil {
		t.Fatalf("Remove(missing) = %v, want nil", err)
	}
}

func TestRemoveStaleTemps(t *testing.T) {
	s := MustOpen(t)
	now := time.Now()
	var old, fresh []*blob.Temp
	for i := 0; i < 3; i++ {
		tmp, err := s.Create()
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, tmp)
		tmp2, err := s.Create()
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, tmp2)
	}
	for _, tmp := range old {
		past := now.Add(-25 * time.Hour)
		if err := os.Chtimes(tmp.Name(), past, past); err != nil {
			t.Fatal(err)
		}
	}
	for _, tmp := range fresh {
		recent := now.Add(-23 * time.Hour)
		if err := os.Chtimes(tmp.Name(), recent, recent); err != nil {
			t.Fatal(err)
		}
	}
	// A committed object, however old, is not a temporary file.
	if _, err := s.Put("keep", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Dir(), "objects", "keep")
	if err := os.Chtimes(p, now.AddDate(-1, 0, 0), now.AddDate(-1, 0, 0)); err != nil {
		t.Fatal(err)
	}

	n, err := s.RemoveStaleTemps(now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(old) {
		t.Fatalf("RemoveStaleTemps removed %d files, want %d", n, len(old))
	}
	for _, tmp := range old {
		if _, err := os.Stat(tmp.Name()); !os.IsNotExist(err) {
			t.Errorf("old temp %s still exists (%v)", tmp.Name(), err)
		}
	}
	for _, tmp := range fresh {
		if _, err := os.Stat(tmp.Name()); err != nil {
			t.Errorf("fresh temp %s was removed: %v", tmp.Name(), err)
		}
	}
	if !s.Exists("keep") {
		t.Fatal("RemoveStaleTemps removed a committed object")
	}
	for _, tmp := range fresh {
		tmp.Abort()
	}
	for _, tmp := range old {
		tmp.Abort() // the file is already gone: not an error
	}
	if got := tmpEntries(t, s); len(got) != 0 {
		t.Fatalf("tmp/ holds %v, want nothing", got)
	}
}
