package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/pigp/pigp"
)

// Backend is where committed contents live: the filesystem store (FS, the
// embedded default) or S3-compatible object storage (package blob/s3, for
// nodes that share no disk). Callers reach contents only through it.
//
// Keys are server-generated ("depots/ab/ab12…"): ValidKey says which are
// accepted; a client-supplied name never becomes a key. A stored object is
// immutable: there is no rename, no append and no overwrite. The staging
// names of the SFTP edge (".filepart", ".partial", ".in.") never reach a
// backend: an upload is spooled to a local file, and only the finished file
// is put, once, under its final key.
//
// Errors are *pigp.Error values with these codes, so that each edge maps
// them once:
//   - ENOTFOUND: the key holds no object (also errors.Is(err, fs.ErrNotExist));
//     not-found is always an error, never a nil object;
//   - ECONFLICT: Put found the key taken (also errors.Is(err, fs.ErrExist));
//   - EUNAVAILABLE: the store itself failed (network, timeout, refused
//     credentials, missing bucket, full or failing disk), with the French
//     message UnavailableMessage and the cause kept for the logs only;
//   - any other error (EINTERNAL) is a caller's mistake, such as an invalid
//     key or a SHA-256 that does not match the file.
//
// Every method is safe for concurrent use.
type Backend interface {
	// Put stores the finished local file src under key. sum is the
	// lower-case hex SHA-256 of the whole file, computed by the caller as
	// the bytes arrived; the object is the whole file as src.Stat reports.
	//
	// Put is durable when it returns nil: the object survives a crash of
	// this process, of the machine or of the storage node that answered.
	// It never overwrites: if key already holds an object, Put fails with
	// ECONFLICT and the existing object is unchanged. It stores nothing on
	// failure: either the complete object exists under key, or no object
	// does (an interrupted S3 multipart upload may leave parts, which are
	// not an object and which AbortIncomplete removes).
	//
	// The SHA-256 is checked where it costs nothing extra: by the S3 store
	// (locally while reading the file, and by the server, which verifies the
	// checksum and the signed payload hash it receives) and by the
	// filesystem store when it has to copy src; a mismatch fails the Put and
	// stores nothing. The filesystem store takes its own spool files
	// (Store.Create) without copying them: src must not be written to once
	// Put is called. Put never closes or removes src: the caller does, after
	// Put returns, either way.
	Put(ctx context.Context, key string, src *os.File, sum string) error

	// Open opens the object under key for reading at any offset; several
	// ReadAt calls may run at once. ctx bounds Open itself; reads run until
	// Close. ENOTFOUND when key holds no object.
	Open(ctx context.Context, key string) (Object, error)

	// Stat describes the object under key. ENOTFOUND when key holds no
	// object.
	Stat(ctx context.Context, key string) (Info, error)

	// Remove deletes the objects under keys, in as few requests as the
	// store allows (S3 DeleteObjects batches, one filesystem sync). A key
	// that holds no object is not an error, so that a retried deletion
	// succeeds. Removing no key does nothing.
	Remove(ctx context.Context, keys ...string) error

	// Walk calls fn for every object whose key starts with prefix ("" for
	// all), once each and in no promised order (S3 lists in lexical order,
	// the filesystem by directory), with its key, size and modification
	// time (Info.SHA256 is left empty). It stops at fn's first error and
	// returns it. Objects put or removed during the walk may or may not be
	// seen. Used to sweep orphans: objects that no row refers to.
	Walk(ctx context.Context, prefix string, fn func(Info) error) error

	// AbortIncomplete discards the writes that were started before before
	// and never completed — S3 multipart uploads a crash or a cut network
	// left behind — and returns how many it discarded. The filesystem store
	// has none of its own (its temporary files are swept by
	// Store.RemoveStaleTemps) and returns 0.
	AbortIncomplete(ctx context.Context, before time.Time) (int, error)

	// FreeSpace tells how much more the store can take, for
	// statvfs@openssh.com and the free-space check. A store without a
	// known limit (S3 without a configured quota) returns Known false and
	// no error: callers then let uploads through.
	FreeSpace(ctx context.Context) (Space, error)

	// Check reports whether the store can serve requests now (the
	// directories exist, the bucket answers), for /readyz. It is cheap:
	// it writes nothing.
	Check(ctx context.Context) error
}

// Object is an open stored object.
type Object interface {
	// ReadAt reads len(p) bytes at off, like io.ReaderAt: fewer only at the
	// end of the object, with io.EOF. It may be called concurrently.
	io.ReaderAt
	// Size is the object's size in bytes.
	Size() int64
	// Close releases the object; reads in flight fail.
	Close() error
}

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time // when the object was stored
	SHA256  string    // hex SHA-256 recorded at Put, "" when the store keeps none (the filesystem store, Walk)
}

// Space is the room left in a store.
type Space struct {
	Known bool   // false: the store has no known limit (Total and Free are 0)
	Total uint64 // bytes
	Free  uint64 // bytes available to pigp
}

// UnavailableMessage is what a user is told when the content store fails
// (French, shown by the SFTP edge and the portal).
const UnavailableMessage = "stockage indisponible, réessayez plus tard"

// Unavailable wraps a failure of the store itself: EUNAVAILABLE with
// UnavailableMessage; err stays the internal cause, for the logs.
func Unavailable(op, key string, err error) error {
	return pigp.WrapError(pigp.EUNAVAILABLE, UnavailableMessage, opError(op, key, err))
}

// NotFound is the error for a key that holds no object: ENOTFOUND, and
// errors.Is(err, fs.ErrNotExist) holds.
func NotFound(op, key string, cause error) error {
	var err error
	switch {
	case cause == nil:
		err = opError(op, key, fs.ErrNotExist)
	case errors.Is(cause, fs.ErrNotExist):
		err = opError(op, key, cause)
	default:
		err = opError(op, key, fmt.Errorf("%w: %w", fs.ErrNotExist, cause))
	}
	return pigp.WrapError(pigp.ENOTFOUND, "fichier introuvable", err)
}

// Exists is the error of a Put whose key is taken: ECONFLICT, and
// errors.Is(err, fs.ErrExist) holds.
func Exists(key string, cause error) error {
	err := fs.ErrExist
	if cause != nil && !errors.Is(cause, fs.ErrExist) {
		err = fmt.Errorf("%w: %w", fs.ErrExist, cause)
	} else if cause != nil {
		err = cause
	}
	return pigp.WrapError(pigp.ECONFLICT, "contenu déjà présent", opError("put", key, err))
}

// ErrSumMismatch is the cause of a Put whose file does not have the SHA-256
// the caller gave.
var ErrSumMismatch = errors.New("blob: the file's SHA-256 does not match the caller's")

// ValidKey reports whether key is acceptable to every backend: made of
// [a-z0-9/_.-], at most 200 bytes, with no empty, "." or ".." component.
func ValidKey(key string) bool { return validKey(key) }

// CheckKey returns an error for an invalid key (a caller's mistake).
func CheckKey(key string) error {
	if !validKey(key) {
		return fmt.Errorf("invalid blob key %q", key)
	}
	return nil
}

func opError(op, key string, err error) error {
	if key == "" {
		return fmt.Errorf("blob %s: %w", op, err)
	}
	return fmt.Errorf("blob %s %s: %w", op, key, err)
}
