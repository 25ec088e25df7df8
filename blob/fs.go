package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FS is the filesystem store seen as a Backend: objects are files under
// DIR/objects, named by their key. It is the embedded default; several
// nodes can use it only by sharing one POSIX directory.
//
// Its Put links the file into place (link(2)) instead of renaming it:
// link fails when the name exists, so an object is never overwritten, even
// by two nodes racing on a shared directory.
type FS struct {
	s *Store
}

var _ Backend = (*FS)(nil)

// NewFS returns s as a Backend.
func NewFS(s *Store) *FS { return &FS{s: s} }

// Store returns the underlying directory store (for its spool files).
func (b *FS) Store() *Store { return b.s }

// Put stores src under key. A spool file of this store (Store.Create) is
// fsynced and linked into place, with no copy and no re-read; any other file
// is copied into a new spool file while its SHA-256 is checked against sum.
// Either way the key's directory is fsynced before Put returns.
func (b *FS) Put(ctx context.Context, key string, src *os.File, sum string) error {
	dst, err := b.s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.ownsSpool(src.Name()) {
		if err := src.Sync(); err != nil {
			return Unavailable("put", key, fmt.Errorf("fsync upload: %w", err))
		}
		return b.link(src.Name(), dst, key)
	}
	if _, err := os.Lstat(dst); err == nil {
		return Exists(key, nil) // before copying: the copy would be lost anyway
	}
	t, err := b.s.Create()
	if err != nil {
		return Unavailable("put", key, err)
	}
	defer t.Abort() // removes the spool name; the object keeps its own link
	fi, err := src.Stat()
	if err != nil {
		return Unavailable("put", key, fmt.Errorf("stat source: %w", err))
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(t.File, h), ContextReader(ctx, io.NewSectionReader(src, 0, fi.Size()))); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return Unavailable("put", key, fmt.Errorf("copy: %w", err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("blob put %s: %w (file %s, caller %s)", key, ErrSumMismatch, got, sum)
	}
	if err := t.File.Sync(); err != nil {
		return Unavailable("put", key, fmt.Errorf("fsync copy: %w", err))
	}
	return b.link(t.File.Name(), dst, key)
}

// ownsSpool reports whether name is a file of this store's tmp/ directory,
// on the same filesystem as objects/, so that it can be linked into place.
func (b *FS) ownsSpool(name string) bool {
	tmp, err1 := filepath.Abs(filepath.Join(b.s.dir, "tmp"))
	abs, err2 := filepath.Abs(name)
	return err1 == nil && err2 == nil && strings.HasPrefix(abs, tmp+string(filepath.Separator))
}

// link makes src's inode durable under dst: create dst's directories
// (fsynced), link, fsync dst's directory. On failure nothing is left under
// dst.
func (b *FS) link(src, dst, key string) error {
	if err := mkdirAllSync(filepath.Dir(dst)); err != nil {
		return Unavailable("put", key, err)
	}
	if err := os.Link(src, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Exists(key, nil)
		}
		return Unavailable("put", key, fmt.Errorf("link upload: %w", err))
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		// Not durable: take the object back so that no caller records it.
		os.Remove(dst)
		return Unavailable("put", key, err)
	}
	return nil
}

// Open opens the object under key.
func (b *FS) Open(ctx context.Context, key string) (Object, error) {
	p, err := b.s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, b.fail("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, b.fail("open", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, NotFound("open", key, nil)
	}
	return &fsObject{f: f, size: fi.Size()}, nil
}

type fsObject struct {
	f    *os.File
	size int64
}

func (o *fsObject) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }
func (o *fsObject) Size() int64                             { return o.size }
func (o *fsObject) Close() error                            { return o.f.Close() }

// Stat describes the object under key (Info.SHA256 is empty: files carry
// no checksum).
func (b *FS) Stat(ctx context.Context, key string) (Info, error) {
	p, err := b.s.path(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, b.fail("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, NotFound("stat", key, nil)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Remove deletes the objects under keys and makes the deletions durable
// with one filesystem sync (Store.RemoveMany).
func (b *FS) Remove(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return err
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if err := b.s.RemoveMany(keys); err != nil {
		return Unavailable("remove", "", err)
	}
	return nil
}

// Walk visits the files under objects/ whose key starts with prefix,
// starting from the deepest directory the prefix names.
func (b *FS) Walk(ctx context.Context, prefix string, fn func(Info) error) error {
	objects := filepath.Join(b.s.dir, "objects")
	root := objects
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		if !validKey(prefix[:i]) {
			return nil // no key lives there
		}
		root = filepath.Join(objects, filepath.FromSlash(prefix[:i]))
	}
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) && root != objects {
		return nil
	}
	var fnErr error
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(objects, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Skip directories that cannot hold a key with the prefix.
			if p != root && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) || !validKey(key) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		} else if err != nil {
			return err
		}
		if err := fn(Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case fnErr != nil && errors.Is(err, fnErr):
		return fnErr
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		return Unavailable("walk", prefix, err)
	}
}

// AbortIncomplete does nothing: the filesystem store's unfinished writes
// are files of tmp/, swept by Store.RemoveStaleTemps.
func (b *FS) AbortIncomplete(ctx context.Context, before time.Time) (int, error) { return 0, nil }

// FreeSpace returns the free space of the filesystem holding the store.
func (b *FS) FreeSpace(ctx context.Context) (Space, error) {
	sp, err := statSpace(b.s.dir)
	if err != nil {
		return Space{}, Unavailable("statfs", "", err)
	}
	return sp, nil
}

// Check verifies that the store's directories exist.
func (b *FS) Check(ctx context.Context) error {
	for _, d := range []string{"objects", "tmp"} {
		fi, err := os.Stat(filepath.Join(b.s.dir, d))
		if err != nil {
			return Unavailable("check", "", err)
		}
		if !fi.IsDir() {
			return Unavailable("check", "", fmt.Errorf("%s is not a directory", filepath.Join(b.s.dir, d)))
		}
	}
	return nil
}

// fail classifies a filesystem error on key.
func (b *FS) fail(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return NotFound(op, key, err)
	}
	return Unavailable(op, key, err)
}

// ContextReader returns a reader of r that fails with ctx's error once ctx
// is done, so that a long copy stops.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
