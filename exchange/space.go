package exchange

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
)

// SpacePolicy is the free space the content store must keep: Bytes, or
// Percent of the filesystem's size when Percent is set. The zero value
// checks nothing.
type SpacePolicy struct {
	Bytes   int64
	Percent float64
}

// Required returns the free bytes the policy asks for on a filesystem of
// total bytes.
func (p SpacePolicy) Required(total uint64) uint64 {
	if p.Percent > 0 {
		return uint64(float64(total) * p.Percent / 100)
	}
	return uint64(max(p.Bytes, 0))
}

// msgNoSpace is what a user reads when the server's disk is (nearly) full,
// whether the upload is refused at open or cut by a full disk mid-way.
const msgNoSpace = "Dépôt refusé : le serveur manque d'espace disque pour recevoir des fichiers. Réessayez plus tard ; si le problème persiste, contactez l'assistance."

// msgUnavailable answers a login the server cannot complete for a reason
// of its own (its database or disk): never "wrong password".
const msgUnavailable = "Service momentanément indisponible, réessayez plus tard."

// errNoSpace returns the error of a full disk, keeping its cause for the log.
func errNoSpace(cause error) error {
	return pigp.WrapError(pigp.EUNAVAILABLE, msgNoSpace, cause)
}

// noSpace maps a write error of the content store: a full disk becomes
// errNoSpace, anything else is returned as is.
func noSpace(err error) error {
	if blob.IsNoSpace(err) {
		return errNoSpace(err)
	}
	return err
}

// spaceTimeout bounds the free-space question asked of the content store
// (an S3 store with a quota may have to list the bucket).
const spaceTimeout = 10 * time.Second

// FreeSpace tells how much more the content store can take
// (statvfs@openssh.com): blob.Space.Known is false for a store without a
// known limit (S3 without a quota).
func (s *Service) FreeSpace(ctx context.Context) (blob.Space, error) {
	ctx, cancel := context.WithTimeout(ctx, spaceTimeout)
	defer cancel()
	return s.Blobs.FreeSpace(ctx)
}

// SpaceStatus tells whether the content store has the free space the
// policy asks for: free and required bytes, and ok. A store whose free
// space cannot be read is taken as ok (err says why); one without a known
// limit is ok, with errors.ErrUnsupported.
func (s *Service) SpaceStatus() (free, required uint64, ok bool, err error) {
	if s.MinFreeSpace == (SpacePolicy{}) {
		return 0, 0, true, nil
	}
	sp, err := s.FreeSpace(context.Background())
	if err != nil {
		return 0, 0, true, err
	}
	if !sp.Known {
		return 0, 0, true, errors.ErrUnsupported
	}
	required = s.MinFreeSpace.Required(sp.Total)
	return sp.Free, required, sp.Free >= required, nil
}

// CheckSpace returns an EUNAVAILABLE error with a French message when the
// content store is below its minimum free space: new uploads are refused
// at open rather than cut off by a full disk.
func (s *Service) CheckSpace() error {
	free, required, ok, err := s.SpaceStatus()
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		s.Logger.Warn("free space of the content store unknown", "error", err)
	}
	if ok {
		return nil
	}
	s.Logger.Warn("upload refused: content store below its minimum free space", "free", free, "required", required)
	return errNoSpace(fmt.Errorf("free space %d bytes, below the minimum of %d", free, required))
}
