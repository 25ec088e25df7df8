package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// timeout bounds each attempt of a request by RequestTimeout; an attempt
// that runs out is retried like a network error (the SDK would take the
// expired context for a caller's cancellation and give up). Not for
// GetObject, whose body is read after the attempt returns.
func (s *Store) timeout() func(*awss3.Options) {
	d := s.cfg.RequestTimeout
	return func(o *awss3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("PigpAttemptTimeout",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					actx, cancel := context.WithTimeout(ctx, d)
					defer cancel()
					out, md, err := next.HandleFinalize(actx, in)
					if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
						err = &attemptTimeoutError{d: d, msg: err.Error()}
					}
					return out, md, err
				}), "Retry", middleware.After)
		})
	}
}

// attemptTimeoutError is an attempt that got no answer in time. It does not
// wrap the SDK's cancellation error, which the retryer never retries.
type attemptTimeoutError struct {
	d   time.Duration
	msg string
}

func (e *attemptTimeoutError) Error() string {
	return fmt.Sprintf("no answer within %s: %s", e.d, e.msg)
}

// RetryableError tells the SDK's retryer to try again.
func (e *attemptTimeoutError) RetryableError() bool { return true }

// withPayloadHash signs the request with the hex SHA-256 of its body, known
// beforehand: the SDK does not read the body a second time to compute it,
// and the server, which checks the signed payload hash, verifies the bytes
// it received (even where it ignores x-amz-checksum-sha256).
func withPayloadHash(hexSum string) func(*awss3.Options) {
	return func(o *awss3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("PigpPayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, hexSum), in)
				}), (&v4.ComputePayloadSHA256{}).ID(), middleware.Before)
		})
	}
}

// withContentMD5 adds Content-MD5 to a DeleteObjects request: S3 servers
// older than the flexible checksums (the SDK sends CRC32) require it.
func withContentMD5(o *awss3.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Build.Add(middleware.BuildMiddlewareFunc("PigpContentMD5",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				req, ok := in.Request.(*smithyhttp.Request)
				if ok && req.GetStream() != nil && req.IsStreamSeekable() {
					h := md5.New()
					if _, err := io.Copy(h, req.GetStream()); err != nil {
						return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("content-md5: %w", err)
					}
					if err := req.RewindStream(); err != nil {
						return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("content-md5: %w", err)
					}
					req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	})
}
