package blob

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// Publish stores new content and commits the row that refers to it, in
// the order that keeps both durable and consistent: write writes the
// content into a spool file of spool while it is hashed; the file is put
// under key (durable when Put returns); then commit records the row, given
// the content's size and hex SHA-256. When commit fails, the object is
// removed again (a failure to remove it leaves an orphan, which
// housekeeping sweeps) and commit's error is returned. The spool file is
// removed on every way out.
//
// It is the one way a response or a report is published, by the operator's
// command (exchange.Service.Publish) and by processing alike.
func Publish(ctx context.Context, b Backend, spool *Store, key string, write func(io.Writer) error,
	commit func(size int64, sum string) error) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	t, err := spool.Create()
	if err != nil {
		return Unavailable("publish", key, err)
	}
	defer t.Abort()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(t.File, h), 256<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := bw.Flush(); err != nil {
		return Unavailable("publish", key, fmt.Errorf("write spool file: %w", err))
	}
	fi, err := t.File.Stat()
	if err != nil {
		return Unavailable("publish", key, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := b.Put(ctx, key, t.File, sum); err != nil {
		return err
	}
	if err := commit(fi.Size(), sum); err != nil {
		if rmErr := b.Remove(context.WithoutCancel(ctx), key); rmErr != nil {
			return &uncommittedError{err: err, remove: rmErr}
		}
		return err
	}
	return nil
}

// uncommittedError is a failed commit whose object could not be removed:
// it is the commit's error (errors.Is, errors.As and pigp.ErrorCode see
// it), and says which object is left for housekeeping.
type uncommittedError struct{ err, remove error }

func (e *uncommittedError) Error() string {
	return fmt.Sprintf("%v (and the uncommitted object is left for housekeeping: %v)", e.err, e.remove)
}
func (e *uncommittedError) Unwrap() error { return e.err }
