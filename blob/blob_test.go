package blob_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return cmd.Process.Pid
}

// tempOf makes a temporary file in s's tmp/ as owner o would, aged age.
func tempOf(t *testing.T, s *blob.Store, o blob.Owner, age time.Duration) string {
	t.Helper()
	other, err := blob.OpenAs(s.Dir(), o)
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := other.Create()
	if err != nil {
		t.Fatal(err)
	}
	tmp.Write([]byte("partial"))
	tmp.File.Close() // the owner is gone, or holds it elsewhere
	when := time.Now().Add(-age)
	if err := os.Chtimes(tmp.Name(), when, when); err != nil {
		t.Fatal(err)
	}
	return tmp.Name()
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// TestTempNames checks that a temporary file's name says which node and
// process made it.
func TestTempNames(t *testing.T) {
	s, err := blob.OpenAs(filepath.Join(t.TempDir(), "store"), blob.Owner{Node: "noeud_1/a", PID: 4242, Token: "cafe0001"})
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Abort()
	base := filepath.Base(tmp.Name())
	if !strings.HasPrefix(base, "upload_noeud-1-a_4242_cafe0001_") {
		t.Fatalf("temp name %q does not carry node, pid and token", base)
	}
	if o := blob.ThisProcess("srv-a"); o.PID != os.Getpid() || o.Node != "srv-a" || o.Token == "" {
		t.Fatalf("ThisProcess = %+v", o)
	}
}

// TestRemoveLeftovers: at start, a node removes the temporary files of its
// own processes that are gone, and nothing else.
func TestRemoveLeftovers(t *testing.T) {
	me := blob.ThisProcess("noeud-a")
	s, err := blob.OpenAs(filepath.Join(t.TempDir(), "store"), me)
	if err != nil {
		t.Fatal(err)
	}
	dead := deadPID(t)
	gone := tempOf(t, s, blob.Owner{Node: "noeud-a", PID: dead, Token: "00000001"}, time.Minute)
	// The same pid in an earlier life (a restarted container).
	earlier := tempOf(t, s, blob.Owner{Node: "noeud-a", PID: me.PID, Token: "00000002"}, time.Minute)
	// A running process of this node (the test's parent).
	running := tempOf(t, s, blob.Owner{Node: "noeud-a", PID: os.Getppid(), Token: "00000003"}, time.Minute)
	// Another node sharing the data directory, its process id meaningless here.
	otherNode := tempOf(t, s, blob.Owner{Node: "noeud-b", PID: dead, Token: "00000004"}, time.Minute)
	live, err := s.Create() // this process's own upload
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()

	n, err := s.RemoveLeftovers()
	if err != nil || n != 2 {
		t.Fatalf("RemoveLeftovers = %d, %v; want 2", n, err)
	}
	if exists(gone) || exists(earlier) {
		t.Fatal("a crash leftover of this node is still there")
	}
	if !exists(running) || !exists(otherNode) || !exists(live.Name()) {
		t.Fatal("a live or foreign temporary file was removed")
	}
}

// TestRemoveStaleTemps: housekeeping removes temporary files older than
// the limit on the real clock, except those of running processes of this
// node, however old.
func TestRemoveStaleTemps(t *testing.T) {
	s := MustOpen(t)
	me := s.Owner()
	dead := deadPID(t)
	oldGone := tempOf(t, s, blob.Owner{Node: me.Node, PID: dead, Token: "00000001"}, 25*time.Hour)
	oldOther := tempOf(t, s, blob.Owner{Node: "autre-noeud", PID: dead, Token: "00000002"}, 25*time.Hour)
	freshOther := tempOf(t, s, blob.Owner{Node: "autre-noeud", PID: dead, Token: "00000003"}, 23*time.Hour)
	oldRunning := tempOf(t, s, blob.Owner{Node: me.Node, PID: os.Getppid(), Token: "00000004"}, 25*time.Hour)
	// An older version's name.
	legacy := filepath.Join(s.Dir(), "tmp", "upload-0123456789abcdef01234567")
	os.WriteFile(legacy, []byte("x"), 0o600)
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(legacy, past, past)
	// This process's upload, untouched for two days: a running upload holds it.
	mine, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(mine.Name(), past, past)
	// A committed object, however old, is not a temporary file.
	if _, err := s.Put("keep", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Dir(), "objects", "keep")
	if err := os.Chtimes(p, time.Now().AddDate(-1, 0, 0), time.Now().AddDate(-1, 0, 0)); err != nil {
		t.Fatal(err)
	}

	n, err := s.RemoveStaleTemps(24 * time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("RemoveStaleTemps removed %d files (%v), want 3", n, err)
	}
	for _, name := range []string{oldGone, oldOther, legacy} {
		if exists(name) {
			t.Errorf("stale temp %s still exists", filepath.Base(name))
		}
	}
	for _, name := range []string{freshOther, oldRunning, mine.Name()} {
		if !exists(name) {
			t.Errorf("temp %s was removed", filepath.Base(name))
		}
	}
	if !s.Exists("keep") {
		t.Fatal("RemoveStaleTemps removed a committed object")
	}
	if err := mine.Commit("mine"); err != nil {
		t.Fatalf("the upload kept by housekeeping cannot commit: %v", err)
	}
}

// TestIsNoSpace recognises a full disk through wrapping.
func TestIsNoSpace(t *testing.T) {
	full := &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}
	if !blob.IsNoSpace(fmt.Errorf("write upload: %w", full)) || blob.IsNoSpace(io.ErrUnexpectedEOF) {
		t.Fatal("IsNoSpace")
	}
	free, total, err := MustOpen(t).FreeSpace()
	if err != nil || free == 0 || total < free {
		t.Fatalf("FreeSpace = %d, %d, %v", free, total, err)
	}
}
