// Package blob stores file contents on local disk, durably: a file is
// written under tmp/, fsynced, renamed to its key under objects/ and the
// directory fsynced, so a committed object survives a crash and a
// half-written one is never visible. Keys are server-generated, never
// client-supplied names.
package blob

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Store is a directory of objects.
type Store struct {
	dir   string
	owner Owner
}

// Owner says who made a temporary file: its name carries the node (host
// name), the process id and a token drawn when the process started, so
// that nodes sharing a data directory never take each other's files for
// leftovers, and a process restarted with the same pid (a container) does
// not take its predecessor's files for its own.
type Owner struct {
	Node  string
	PID   int
	Token string
}

// processToken tells this process from an earlier one with the same pid.
var processToken = func() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// ThisProcess returns the owner of the temporary files this process makes
// on node ("" for the host name).
func ThisProcess(node string) Owner {
	if node == "" {
		node, _ = os.Hostname()
	}
	return Owner{Node: sanitizeNode(node), PID: os.Getpid(), Token: processToken}
}

// sanitizeNode keeps a node name usable in a file name: letters, digits,
// '.' and '-', at most 64 characters.
func sanitizeNode(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "node"
	}
	return string(b)
}

// tempPrefix starts the names of temporary files:
// upload_<node>_<pid>_<token>_<random>.
const tempPrefix = "upload_"

func (o Owner) prefix() string {
	return fmt.Sprintf("%s%s_%d_%s_", tempPrefix, o.Node, o.PID, o.Token)
}

// ownerOf parses a temporary file's name; ok is false for names of another
// form (an older version's).
func ownerOf(name string) (o Owner, ok bool) {
	rest, found := strings.CutPrefix(name, tempPrefix)
	if !found {
		return o, false
	}
	parts := strings.Split(rest, "_")
	if len(parts) != 4 {
		return o, false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return o, false
	}
	return Owner{Node: parts[0], PID: pid, Token: parts[2]}, true
}

// Open returns the store rooted at dir, creating its layout if needed. Its
// temporary files are owned by this process on this host.
func Open(dir string) (*Store, error) {
	return OpenAs(dir, ThisProcess(""))
}

// OpenAs is Open with the owner of the temporary files given.
func OpenAs(dir string, owner Owner) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "objects")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create blob store: %w", err)
		}
	}
	owner.Node = sanitizeNode(owner.Node)
	return &Store{dir: dir, owner: owner}, nil
}

// Owner returns the owner of the temporary files this store makes.
func (s *Store) Owner() Owner { return s.owner }

// Dir returns the store's root directory.
func (s *Store) Dir() string { return s.dir }

// validKey accepts keys such as "depots/ab/ab12…" made of [a-z0-9/_.-] with
// no empty, "." or ".." component.
func validKey(key string) bool {
	if key == "" || len(key) > 200 {
		return false
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '/' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Store) path(key string) (string, error) {
	if !validKey(key) {
		return "", fmt.Errorf("invalid blob key %q", key)
	}
	return filepath.Join(s.dir, "objects", filepath.FromSlash(key)), nil
}

// Temp is an object being written. It supports concurrent WriteAt and
// ReadAt at any offset.
type Temp struct {
	*os.File
	store *Store
	done  bool
}

// Create starts a new object in tmp/, under a name that says which node
// and process made it: housekeeping never removes it while that process
// runs.
func (s *Store) Create() (*Temp, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	base := s.owner.prefix() + hex.EncodeToString(b[:])
	f, err := os.OpenFile(filepath.Join(s.dir, "tmp", base), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	return &Temp{File: f, store: s}, nil
}

// Commit makes the object durable under key: fsync the file, rename it into
// place, fsync the directory (and any directory it had to create).
func (t *Temp) Commit(key string) error {
	if t.done {
		return errors.New("blob: temp already committed or aborted")
	}
	dst, err := t.store.path(key)
	if err != nil {
		return err
	}
	if err := t.File.Sync(); err != nil {
		return fmt.Errorf("fsync upload: %w", err)
	}
	if err := mkdirAllSync(filepath.Dir(dst)); err != nil {
		return err
	}
	if err := os.Rename(t.File.Name(), dst); err != nil {
		return fmt.Errorf("rename upload: %w", err)
	}
	t.done = true
	closeErr := t.File.Close()
	if err := syncDir(filepath.Dir(dst)); err != nil {
		// Not durable: take the object back so that no caller records it.
		os.Remove(dst)
		return err
	}
	return closeErr
}

// Abort discards the object. It is safe to call after Commit (no-op).
func (t *Temp) Abort() error {
	if t.done {
		return nil
	}
	t.done = true
	t.File.Close()
	if err := os.Remove(t.File.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Open opens a committed object for reading.
func (s *Store) Open(key string) (*os.File, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Remove deletes a committed object and fsyncs its directory. Removing a
// missing object is not an error, so that retried deletions are idempotent.
func (s *Store) Remove(key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return syncDir(filepath.Dir(p))
}

// RemoveMany deletes committed objects, then makes the deletions durable
// with one filesystem sync (Linux's syncfs) or one fsync per directory;
// missing objects are not an error. Batch jobs use it so that deleting n
// objects does not cost n directory fsyncs.
func (s *Store) RemoveMany(keys []string) error {
	dirs := map[string]bool{}
	for _, key := range keys {
		p, err := s.path(key)
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		dirs[filepath.Dir(p)] = true
	}
	if len(dirs) == 0 {
		return nil
	}
	if ok, err := s.syncFS(); ok {
		return err
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// Exists reports whether key is committed.
func (s *Store) Exists(key string) bool {
	p, err := s.path(key)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Put copies r into a new object under key and returns its size.
func (s *Store) Put(key string, r io.Reader) (int64, error) {
	t, err := s.Create()
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(t, r)
	if err != nil {
		t.Abort()
		return 0, fmt.Errorf("write object: %w", err)
	}
	if err := t.Commit(key); err != nil {
		t.Abort()
		return 0, err
	}
	return n, nil
}

// RemoveStaleTemps deletes the temporary files left for more than maxAge
// and returns how many it removed. Age is measured on the real clock
// (modification time against time.Now), never on a job's "as of" time: a
// job run as of a future date must not take a running upload for an
// abandoned one. The temporary files of a process of this node that still
// runs (this one included) are never removed, however old: a running
// upload holds them.
func (s *Store) RemoveStaleTemps(maxAge time.Duration) (int, error) {
	dir := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	n := 0
	for _, e := range entries {
		if o, ok := ownerOf(e.Name()); ok && o.Node == s.owner.Node {
			switch {
			case o.PID == s.owner.PID && o.Token == s.owner.Token:
				continue // this process
			case o.PID != s.owner.PID && processAlive(o.PID):
				continue // another running process of this node
			}
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < maxAge {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n, nil
}

// RemoveLeftovers deletes, whatever their age, the temporary files of this
// node left by a process that is gone: another pid no longer running, or
// this pid in an earlier life (another token). Files of other nodes, of
// running processes and of this process are kept. A node calls it at start
// to clean up after its own crash.
func (s *Store) RemoveLeftovers() (int, error) {
	dir := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		o, ok := ownerOf(e.Name())
		if !ok || o.Node != s.owner.Node || o == s.owner {
			continue
		}
		if o.PID == s.owner.PID {
			if o.Token == s.owner.Token {
				continue
			}
		} else if processAlive(o.PID) {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n, nil
}

func mkdirAllSync(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirAllSync(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create directory: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	return nil
}

// IsNoSpace reports whether err means that the filesystem is full (or the
// service's quota reached).
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// FreeSpace returns the space available to the service on the store's
// filesystem and its size, in bytes (errors.ErrUnsupported where the
// system cannot tell).
func (s *Store) FreeSpace() (free, total uint64, err error) {
	sp, err := statSpace(s.dir)
	if err != nil {
		return 0, 0, err
	}
	if !sp.Known {
		return 0, 0, errors.ErrUnsupported
	}
	return sp.Free, sp.Total, nil
}
