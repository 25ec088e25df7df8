// Package blobtest is the contract every blob.Backend must meet, written
// once and run against each of them (the filesystem store, S3 through an
// in-process server and through a real versitygw): Run(t, newHarness).
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
)

// Harness is one backend under test.
type Harness struct {
	Backend blob.Backend
	// Spool returns a new empty local file where the backend's callers
	// spool uploads (for the filesystem store, its tmp/ directory). nil: a
	// file in t.TempDir().
	Spool func(tb testing.TB) *os.File
	// Large is a size that takes Put's multipart path, 0 when the backend
	// has none (a 3 MiB object is used then).
	Large int64
}

// Run runs the contract against the backends newHarness returns; each
// subtest gets a fresh, empty backend.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"PutOpenReadAt", testPutOpenReadAt},
		{"PutLarge", testPutLarge},
		{"SourceRemovedAfterPut", testSourceRemovedAfterPut},
		{"NeverOverwrites", testNeverOverwrites},
		{"WrongSumStoresNothing", testWrongSum},
		{"CanceledPutStoresNothing", testCanceledPut},
		{"NotFound", testNotFound},
		{"InvalidKeys", testInvalidKeys},
		{"RemoveBatch", testRemove},
		{"Walk", testWalk},
		{"ConcurrentPuts", testConcurrentPuts},
		{"AbortIncompleteKeepsObjects", testAbortIncomplete},
		{"FreeSpaceAndCheck", testFreeSpaceAndCheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newHarness(t)) })
	}
}

// Data returns n pseudo-random bytes (seeded: the same n and seed give the
// same bytes).
func Data(n int64, seed uint64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 1}))
	b := make([]byte, n)
	for i := range b {
		if i%8 == 0 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
	}
	return b
}

// Sum returns the hex SHA-256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Spool writes data to a new spool file of h and returns it with its sum.
func Spool(tb testing.TB, h Harness, data []byte) (*os.File, string) {
	tb.Helper()
	var f *os.File
	if h.Spool != nil {
		f = h.Spool(tb)
	} else {
		var err error
		if f, err = os.CreateTemp(tb.TempDir(), "spool-"); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { f.Close(); os.Remove(f.Name()) })
	// Written out of order, as SFTP clients do.
	half := len(data) / 2
	if _, err := f.WriteAt(data[half:], int64(half)); err != nil {
		tb.Fatal(err)
	}
	if _, err := f.WriteAt(data[:half], 0); err != nil {
		tb.Fatal(err)
	}
	return f, Sum(data)
}

// MustPut stores data under key.
func MustPut(tb testing.TB, h Harness, key string, data []byte) {
	tb.Helper()
	f, sum := Spool(tb, h, data)
	if err := h.Backend.Put(context.Background(), key, f, sum); err != nil {
		tb.Fatalf("Put(%s, %d bytes): %v", key, len(data), err)
	}
}

// ReadAll reads the whole object under key, checking its size.
func ReadAll(tb testing.TB, b blob.Backend, key string) []byte {
	tb.Helper()
	o, err := b.Open(context.Background(), key)
	if err != nil {
		tb.Fatalf("Open(%s): %v", key, err)
	}
	defer o.Close()
	got, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	if err != nil {
		tb.Fatalf("read %s: %v", key, err)
	}
	return got
}

// AssertNotFound fails unless err says that key holds no object.
func AssertNotFound(tb testing.TB, what string, err error) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("%s: no error, want not found", what)
	}
	if pigp.ErrorCode(err) != pigp.ENOTFOUND || !errors.Is(err, fs.ErrNotExist) {
		tb.Fatalf("%s: %v (code %s), want ENOTFOUND wrapping fs.ErrNotExist", what, err, pigp.ErrorCode(err))
	}
}

func testPutOpenReadAt(t *testing.T, h Harness) {
	for i, n := range []int64{0, 1, 1000, 256<<10 + 13, 1<<20 + 1} {
		key := fmt.Sprintf("depots/%02x/obj-%d", i, n)
		data := Data(n, uint64(i))
		before := time.Now()
		MustPut(t, h, key, data)
		after := time.Now()

		info, err := h.Backend.Stat(context.Background(), key)
		if err != nil {
			t.Fatalf("Stat(%s): %v", key, err)
		}
		if info.Key != key || info.Size != n {
			t.Errorf("Stat(%s) = %+v, want key and size %d", key, info, n)
		}
		if info.SHA256 != "" && info.SHA256 != Sum(data) {
			t.Errorf("Stat(%s).SHA256 = %s, want %s", key, info.SHA256, Sum(data))
		}
		if info.ModTime.Before(before.Add(-time.Hour)) || info.ModTime.After(after.Add(time.Hour)) {
			t.Errorf("Stat(%s).ModTime = %v, not around the put (%v)", key, info.ModTime, before)
		}

		if got := ReadAll(t, h.Backend, key); !bytes.Equal(got, data) {
			t.Fatalf("%s: read %d bytes back, differing from the %d put", key, len(got), n)
		}
		checkReadAt(t, h.Backend, key, data)
	}
}

// checkReadAt exercises ReadAt the way SFTP reads: at offsets, several at
// once, across the end.
func checkReadAt(t *testing.T, b blob.Backend, key string, data []byte) {
	t.Helper()
	o, err := b.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer o.Close()
	n := int64(len(data))
	if o.Size() != n {
		t.Fatalf("Size() = %d, want %d", o.Size(), n)
	}
	// At the end: nothing, io.EOF.
	p := make([]byte, 10)
	if k, err := o.ReadAt(p, n); k != 0 || err != io.EOF {
		t.Errorf("ReadAt(end) = %d, %v; want 0, EOF", k, err)
	}
	if n > 3 {
		// Across the end: the tail, io.EOF.
		k, err := o.ReadAt(p, n-3)
		if k != 3 || err != io.EOF || !bytes.Equal(p[:3], data[n-3:]) {
			t.Errorf("ReadAt(end-3, 10) = %d, %v; want 3, EOF and the last bytes", k, err)
		}
	}
	if n == 0 {
		return
	}
	// Many reads at once, out of order, in 32 KiB requests like OpenSSH's.
	r := rand.New(rand.NewPCG(uint64(n), 7))
	type req struct{ off, size int64 }
	var reqs []req
	for off := int64(0); off < n; off += 32 << 10 {
		reqs = append(reqs, req{off, min(32<<10, n-off)})
	}
	for range 20 {
		off := r.Int64N(n)
		reqs = append(reqs, req{off, min(1+r.Int64N(300<<10), n-off)})
	}
	r.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	var wg sync.WaitGroup
	errs := make(chan error, len(reqs))
	sem := make(chan struct{}, 16)
	for _, q := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			buf := make([]byte, q.size)
			k, err := o.ReadAt(buf, q.off)
			if int64(k) != q.size || (err != nil && err != io.EOF) {
				errs <- fmt.Errorf("ReadAt(%d bytes at %d) = %d, %v", q.size, q.off, k, err)
				return
			}
			if !bytes.Equal(buf, data[q.off:q.off+q.size]) {
				errs <- fmt.Errorf("ReadAt(%d bytes at %d): wrong bytes", q.size, q.off)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testPutLarge(t *testing.T, h Harness) {
	n := h.Large
	if n == 0 {
		n = 3 << 20
	}
	n += 12345 // a short last part
	data := Data(n, 99)
	key := "retraits/ab/large"
	MustPut(t, h, key, data)
	if got := ReadAll(t, h.Backend, key); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d put", len(got), n)
	}
	checkReadAt(t, h.Backend, key, data)
	info, err := h.Backend.Stat(context.Background(), key)
	if err != nil || info.Size != n || (info.SHA256 != "" && info.SHA256 != Sum(data)) {
		t.Fatalf("Stat = %+v, %v; want size %d and sha256 %s or none", info, err, n, Sum(data))
	}
}

func testSourceRemovedAfterPut(t *testing.T, h Harness) {
	data := Data(70000, 3)
	f, sum := Spool(t, h, data)
	if err := h.Backend.Put(context.Background(), "depots/cd/kept", f, sum); err != nil {
		t.Fatal(err)
	}
	// Put neither closed nor removed the source.
	if _, err := f.Stat(); err != nil {
		t.Fatalf("source closed by Put: %v", err)
	}
	if _, err := os.Stat(f.Name()); err != nil {
		t.Fatalf("source removed by Put: %v", err)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		t.Fatal(err)
	}
	if got := ReadAll(t, h.Backend, "depots/cd/kept"); !bytes.Equal(got, data) {
		t.Fatal("object changed when its source was removed")
	}
}

func testNeverOverwrites(t *testing.T, h Harness) {
	first := Data(5000, 1)
	MustPut(t, h, "depots/ef/same", first)
	sizes := []int64{4000}
	if h.Large > 0 {
		sizes = append(sizes, h.Large+1)
	}
	for _, n := range sizes {
		f, sum := Spool(t, h, Data(n, 2))
		err := h.Backend.Put(context.Background(), "depots/ef/same", f, sum)
		if pigp.ErrorCode(err) != pigp.ECONFLICT || !errors.Is(err, fs.ErrExist) {
			t.Fatalf("second Put (%d bytes) on a taken key: %v (code %s), want ECONFLICT wrapping fs.ErrExist", n, err, pigp.ErrorCode(err))
		}
		if got := ReadAll(t, h.Backend, "depots/ef/same"); !bytes.Equal(got, first) {
			t.Fatalf("the object was overwritten by a %d-byte put", n)
		}
	}
}

func testWrongSum(t *testing.T, h Harness) {
	sizes := []int64{0, 9000}
	if h.Large > 0 {
		sizes = append(sizes, h.Large+5)
	}
	for _, n := range sizes {
		// A file of its own, not a spool: every backend checks a file it
		// has to read.
		f, err := os.CreateTemp(t.TempDir(), "foreign-")
		if err != nil {
			t.Fatal(err)
		}
		data := Data(n, 4)
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("depots/01/wrongsum-%d", n)
		err = h.Backend.Put(context.Background(), key, f, Sum(append(data, 'x')))
		f.Close()
		if !errors.Is(err, blob.ErrSumMismatch) {
			t.Fatalf("Put with a wrong SHA-256 (%d bytes): %v, want ErrSumMismatch", n, err)
		}
		_, err = h.Backend.Stat(context.Background(), key)
		AssertNotFound(t, "Stat after a refused put", err)
	}
}

func testCanceledPut(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, sum := Spool(t, h, Data(20000, 5))
	if err := h.Backend.Put(ctx, "depots/02/canceled", f, sum); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	_, err := h.Backend.Stat(context.Background(), "depots/02/canceled")
	AssertNotFound(t, "Stat after a canceled put", err)
}

func testNotFound(t *testing.T, h Harness) {
	ctx := context.Background()
	o, err := h.Backend.Open(ctx, "depots/00/missing")
	if o != nil {
		t.Error("Open of a missing key returned an object")
	}
	AssertNotFound(t, "Open", err)
	_, err = h.Backend.Stat(ctx, "depots/00/missing")
	AssertNotFound(t, "Stat", err)
}

func testInvalidKeys(t *testing.T, h Harness) {
	ctx := context.Background()
	for _, key := range []string{"", "/abs", "a/../b", "../x", "a//b", "A/b", "a/b/", "é", "a b"} {
		f, sum := Spool(t, h, []byte("x"))
		if err := h.Backend.Put(ctx, key, f, sum); err == nil || pigp.ErrorCode(err) != pigp.EINTERNAL {
			t.Errorf("Put(%q) = %v, want an internal error", key, err)
		}
		if _, err := h.Backend.Open(ctx, key); err == nil || pigp.ErrorCode(err) != pigp.EINTERNAL {
			t.Errorf("Open(%q) = %v, want an internal error", key, err)
		}
		if _, err := h.Backend.Stat(ctx, key); err == nil || pigp.ErrorCode(err) != pigp.EINTERNAL {
			t.Errorf("Stat(%q) = %v, want an internal error", key, err)
		}
		if err := h.Backend.Remove(ctx, "depots/00/fine", key); err == nil {
			t.Errorf("Remove(%q) succeeded", key)
		}
	}
	var n int
	if err := h.Backend.Walk(ctx, "", func(blob.Info) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("after invalid puts: Walk saw %d objects (%v), want none", n, err)
	}
}

func testRemove(t *testing.T, h Harness) {
	ctx := context.Background()
	keys := []string{"retraits/aa/1", "retraits/aa/2", "retraits/bb/3"}
	for i, k := range keys {
		MustPut(t, h, k, Data(int64(100*i), uint64(i)))
	}
	if err := h.Backend.Remove(ctx); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	if err := h.Backend.Remove(ctx, keys[0], "retraits/cc/missing", keys[1]); err != nil {
		t.Fatalf("Remove with a missing key = %v, want nil", err)
	}
	for _, k := range keys[:2] {
		_, err := h.Backend.Stat(ctx, k)
		AssertNotFound(t, "Stat of a removed object", err)
	}
	if _, err := h.Backend.Stat(ctx, keys[2]); err != nil {
		t.Fatalf("an object not named was removed: %v", err)
	}
	if err := h.Backend.Remove(ctx, keys[0]); err != nil {
		t.Fatalf("removing again = %v, want nil", err)
	}
}

func testWalk(t *testing.T, h Harness) {
	ctx := context.Background()
	objects := map[string]int64{"walk/a/1": 10, "walk/a/2": 0, "walk/b/1": 3000, "walkx/1": 7, "walk.a/1": 1}
	for k, n := range objects {
		MustPut(t, h, k, Data(n, 8))
	}
	walk := func(prefix string) map[string]int64 {
		t.Helper()
		got := map[string]int64{}
		err := h.Backend.Walk(ctx, prefix, func(i blob.Info) error {
			if _, dup := got[i.Key]; dup {
				t.Errorf("Walk(%q) saw %s twice", prefix, i.Key)
			}
			if i.ModTime.IsZero() {
				t.Errorf("Walk(%q): %s has no modification time", prefix, i.Key)
			}
			got[i.Key] = i.Size
			return nil
		})
		if err != nil {
			t.Fatalf("Walk(%q): %v", prefix, err)
		}
		return got
	}
	want := func(keys ...string) map[string]int64 {
		m := map[string]int64{}
		for _, k := range keys {
			m[k] = objects[k]
		}
		return m
	}
	for prefix, exp := range map[string]map[string]int64{
		"":          objects,
		"walk/":     want("walk/a/1", "walk/a/2", "walk/b/1"),
		"walk/a/":   want("walk/a/1", "walk/a/2"),
		"walk/a/1":  want("walk/a/1"),
		"walk":      objects,
		"walk.":     want("walk.a/1"),
		"nothing/":  {},
		"walk/c/d/": {},
	} {
		got := walk(prefix)
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("Walk(%q) = %v, want %v", prefix, got, exp)
		}
	}
	// fn's error stops the walk and is returned as is.
	stop := errors.New("stop here")
	calls := 0
	err := h.Backend.Walk(ctx, "walk/", func(blob.Info) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("Walk with a failing fn = %v after %d calls, want %v after 1", err, calls, stop)
	}
}

func testConcurrentPuts(t *testing.T, h Harness) {
	var wg sync.WaitGroup
	datas := make([][]byte, 8)
	errs := make([]error, len(datas))
	files := make([]*os.File, len(datas))
	sums := make([]string, len(datas))
	for i := range datas {
		datas[i] = Data(int64(50000+i*1000), uint64(i+20))
		files[i], sums[i] = Spool(t, h, datas[i])
	}
	for i := range datas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.Backend.Put(context.Background(), fmt.Sprintf("depots/%02x/c", i), files[i], sums[i])
		}()
	}
	wg.Wait()
	for i := range datas {
		if errs[i] != nil {
			t.Fatalf("put %d: %v", i, errs[i])
		}
		if got := ReadAll(t, h.Backend, fmt.Sprintf("depots/%02x/c", i)); !bytes.Equal(got, datas[i]) {
			t.Fatalf("object %d differs", i)
		}
	}
}

func testAbortIncomplete(t *testing.T, h Harness) {
	MustPut(t, h, "depots/03/done", Data(1234, 9))
	if _, err := h.Backend.AbortIncomplete(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("AbortIncomplete: %v", err)
	}
	if got := ReadAll(t, h.Backend, "depots/03/done"); !bytes.Equal(got, Data(1234, 9)) {
		t.Fatal("AbortIncomplete touched a complete object")
	}
}

func testFreeSpaceAndCheck(t *testing.T, h Harness) {
	ctx := context.Background()
	sp, err := h.Backend.FreeSpace(ctx)
	if err != nil {
		t.Fatalf("FreeSpace: %v", err)
	}
	if sp.Known && (sp.Total == 0 || sp.Free > sp.Total) {
		t.Fatalf("FreeSpace = %+v: free beyond total, or no total", sp)
	}
	if !sp.Known && (sp.Total != 0 || sp.Free != 0) {
		t.Fatalf("FreeSpace = %+v: unknown, with figures", sp)
	}
	if err := h.Backend.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// Keys returns the keys under prefix, sorted.
func Keys(tb testing.TB, b blob.Backend, prefix string) []string {
	tb.Helper()
	var keys []string
	if err := b.Walk(context.Background(), prefix, func(i blob.Info) error {
		keys = append(keys, i.Key)
		return nil
	}); err != nil {
		tb.Fatalf("Walk(%q): %v", prefix, err)
	}
	slices.Sort(keys)
	return keys
}
