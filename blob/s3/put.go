package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
)

// Put sends the finished local file src under key (see blob.Backend.Put):
//
//   - a HEAD first, so that a taken key fails at once (ECONFLICT) instead of
//     after the transfer; If-None-Match: * on the write itself closes the
//     race on servers that honour it;
//   - up to MultipartThreshold: the file is hashed, compared with sum, then
//     sent in one PutObject carrying its SHA-256 as checksum and as signed
//     payload hash;
//   - above: a multipart upload. The file is read once in order, hashing
//     the whole and each part; every part is handed to one of Concurrency
//     senders as soon as it is hashed, with its own SHA-256 checksum and
//     payload hash. The upload is completed only when the whole file's
//     SHA-256 equals sum, and aborted on any failure.
//
// The object carries its hex SHA-256 as x-amz-meta-sha256. When the server
// answers with a checksum, it must be the one sent.
func (s *Store) Put(ctx context.Context, key string, src *os.File, sum string) error {
	if err := blob.CheckKey(key); err != nil {
		return err
	}
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != sha256.Size || strings.ToLower(sum) != sum {
		return fmt.Errorf("blob put %s: %w: %q is not a lower-case hex SHA-256", key, blob.ErrSumMismatch, sum)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("blob put %s: stat source: %w", key, err)
	}
	switch _, err := s.Stat(ctx, key); {
	case err == nil:
		return blob.Exists(key, nil)
	case pigp.ErrorCode(err) == pigp.ENOTFOUND:
	case isForbidden(err):
		// Without s3:ListBucket, S3 answers 403 for a missing key: go on,
		// If-None-Match still guards the write (and a real refusal of the
		// credentials fails it).
	default:
		return err
	}
	if fi.Size() <= s.cfg.MultipartThreshold {
		return s.putSingle(ctx, key, src, fi.Size(), raw)
	}
	return s.putMultipart(ctx, key, src, fi.Size(), raw)
}

func (s *Store) putSingle(ctx context.Context, key string, src *os.File, size int64, raw []byte) error {
	h := sha256.New()
	if _, err := io.Copy(h, &ctxReader{ctx, io.NewSectionReader(src, 0, size)}); err != nil {
		return readError(ctx, key, err)
	}
	if !bytes.Equal(h.Sum(nil), raw) {
		return mismatch(key, h.Sum(nil), raw)
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	out, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:         &s.cfg.Bucket,
		Key:            aws.String(s.objectKey(key)),
		Body:           io.NewSectionReader(src, 0, size),
		ContentLength:  aws.Int64(size),
		ContentType:    aws.String("application/octet-stream"),
		ChecksumSHA256: aws.String(b64),
		IfNoneMatch:    aws.String("*"),
		Metadata:       map[string]string{metaSHA256: hex.EncodeToString(raw)},
	}, s.timeout(), withPayloadHash(hex.EncodeToString(raw)))
	if err != nil {
		return s.fail("put", key, err)
	}
	if got := aws.ToString(out.ChecksumSHA256); got != "" && got != b64 {
		return s.takeBack(ctx, key, fmt.Errorf("the server stored SHA-256 %s, %s was sent", got, b64))
	}
	return nil
}

type part struct {
	n        int32
	off, len int64
	sum      []byte
}

func (s *Store) putMultipart(ctx context.Context, key string, src *os.File, size int64, raw []byte) error {
	partSize := s.partSize(size)
	nParts := int((size + partSize - 1) / partSize)
	created, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket:            &s.cfg.Bucket,
		Key:               aws.String(s.objectKey(key)),
		ContentType:       aws.String("application/octet-stream"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		Metadata:          map[string]string{metaSHA256: hex.EncodeToString(raw)},
	}, s.timeout())
	if err != nil {
		return s.fail("put", key, err)
	}
	uploadID := created.UploadId
	completed := false
	defer func() {
		if !completed {
			s.abort(ctx, key, uploadID)
		}
	}()

	completedParts := make([]types.CompletedPart, nParts)
	partSums := make([][]byte, nParts)
	g, gctx := errgroup.WithContext(ctx)
	parts := make(chan part)
	g.Go(func() error {
		defer close(parts)
		whole := sha256.New()
		buf := make([]byte, 1<<20)
		for i := range nParts {
			off := int64(i) * partSize
			l := min(partSize, size-off)
			ph := sha256.New()
			if _, err := io.CopyBuffer(io.MultiWriter(whole, ph), &ctxReader{gctx, io.NewSectionReader(src, off, l)}, buf); err != nil {
				return readError(gctx, key, err)
			}
			select {
			case parts <- part{n: int32(i + 1), off: off, len: l, sum: ph.Sum(nil)}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		if got := whole.Sum(nil); !bytes.Equal(got, raw) {
			return mismatch(key, got, raw)
		}
		return nil
	})
	for range min(s.cfg.Concurrency, nParts) {
		g.Go(func() error {
			for p := range parts {
				b64 := base64.StdEncoding.EncodeToString(p.sum)
				out, err := s.client.UploadPart(gctx, &awss3.UploadPartInput{
					Bucket:         &s.cfg.Bucket,
					Key:            aws.String(s.objectKey(key)),
					UploadId:       uploadID,
					PartNumber:     aws.Int32(p.n),
					Body:           io.NewSectionReader(src, p.off, p.len),
					ContentLength:  aws.Int64(p.len),
					ChecksumSHA256: aws.String(b64),
				}, s.timeout(), withPayloadHash(hex.EncodeToString(p.sum)))
				if err != nil {
					return s.fail("put part", key, err)
				}
				if got := aws.ToString(out.ChecksumSHA256); got != "" && got != b64 {
					return blob.Unavailable("put part", key, fmt.Errorf("part %d: the server stored SHA-256 %s, %s was sent", p.n, got, b64))
				}
				completedParts[p.n-1] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(p.n), ChecksumSHA256: aws.String(b64)}
				partSums[p.n-1] = p.sum
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}

	out, err := s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          &s.cfg.Bucket,
		Key:             aws.String(s.objectKey(key)),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completedParts},
		IfNoneMatch:     aws.String("*"),
	}, s.timeout())
	if err != nil {
		return s.fail("put", key, err)
	}
	completed = true
	// The composite checksum: SHA-256 of the parts' SHA-256s, "-N".
	if got := aws.ToString(out.ChecksumSHA256); got != "" {
		c := sha256.New()
		for _, ps := range partSums {
			c.Write(ps)
		}
		want := base64.StdEncoding.EncodeToString(c.Sum(nil))
		if base, _, _ := strings.Cut(got, "-"); base != want {
			return s.takeBack(ctx, key, fmt.Errorf("the server's composite SHA-256 is %s, the parts give %s", got, want))
		}
	}
	return nil
}

// partSize is PartSize, or more for an object that 10 000 parts of it
// would not hold (rounded up to a MiB).
func (s *Store) partSize(size int64) int64 {
	ps := s.cfg.PartSize
	if need := (size + maxParts - 1) / maxParts; need > ps {
		ps = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return ps
}

// abort discards a multipart upload that will not be completed, even when
// the caller's context is done. A failure is only logged: AbortIncomplete
// (housekeeping) and the bucket's lifecycle rule take it later.
func (s *Store) abort(ctx context.Context, key string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(s.objectKey(key)), UploadId: uploadID,
	}, s.timeout())
	if err != nil && apiCode(err) != "NoSuchUpload" {
		s.log.Warn("abort multipart upload", "key", key, "upload", aws.ToString(uploadID), "error", err)
	}
}

// takeBack removes an object the server reports stored wrongly, and
// returns the Put's error.
func (s *Store) takeBack(ctx context.Context, key string, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel()
	if _, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.objectKey(key))}, s.timeout()); err != nil {
		s.log.Error("remove object stored with a wrong checksum", "key", key, "error", err)
	}
	return blob.Unavailable("put", key, cause)
}

func mismatch(key string, got, want []byte) error {
	return fmt.Errorf("blob put %s: %w (file %x, caller %x)", key, blob.ErrSumMismatch, got, want)
}

// readError is a failure to read the local source file.
func readError(ctx context.Context, key string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("blob put %s: read source: %w", key, err)
}
