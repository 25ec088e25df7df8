// Package s3 stores contents in S3-compatible object storage (Ceph RGW,
// Scality, OVH or Outscale object storage, MinIO, versitygw, AWS): the
// blob.Backend for nodes that share no disk.
//
// It is built on the AWS SDK for Go v2 (service/s3), which lets each
// request carry exactly what this store needs: the SHA-256 checksum of a
// whole object or part (x-amz-checksum-sha256) as well as the signed payload
// hash, If-None-Match on PutObject and CompleteMultipartUpload, multipart
// parts uploaded by hand (size, concurrency, abort), and a bounded retryer
// with exponential backoff. Its dependencies are AWS's own modules.
//
// Uploads are never streamed from a client: the SFTP edge spools to a local
// file while hashing (writes arrive out of order), and Put sends the
// finished file under its final, server-generated key — one PutObject up to
// MultipartThreshold, a multipart upload with parts in parallel above it.
// Staging names never become objects and nothing is ever renamed
// (CopyObject) or overwritten.
package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
)

// Config says where the objects live and how to reach them. Only Bucket is
// required; zero tuning values take the defaults below.
type Config struct {
	// Endpoint is the server's URL ("https://s3.gra.io.cloud.ovh.net");
	// empty means AWS itself for Region.
	Endpoint string
	// Region is the signing region; empty: AWS_REGION or the AWS config
	// files, else "us-east-1" (what most S3-compatible servers expect).
	Region string
	Bucket string
	// Prefix is prepended to every key ("pigp/"), so that one bucket can
	// hold several installations; a missing final "/" is added.
	Prefix string
	// AccessKey and SecretKey, when set, are the credentials; otherwise the
	// usual AWS chain is used (AWS_ACCESS_KEY_ID…, AWS_PROFILE and
	// ~/.aws/credentials, web identity, instance role).
	AccessKey, SecretKey string
	// PathStyle addresses buckets as https://host/bucket/key instead of
	// https://bucket.host/key (most on-premises servers need it).
	PathStyle bool
	// TLSCA is a PEM file of certificate authorities trusted in addition to
	// the system's (an internal PKI).
	TLSCA string
	// Quota is the space the bucket may use, in bytes; 0: unknown, and
	// FreeSpace says so.
	Quota int64

	MultipartThreshold int64         // objects larger than this are sent in parts (64 MiB)
	PartSize           int64         // size of a part (16 MiB, at least 5 MiB; larger when 10 000 parts would not do)
	Concurrency        int           // parts of one object in flight at once (4)
	ReadChunk          int64         // size of a ranged GET (4 MiB)
	ReadAhead          int           // ranged GETs started ahead of a sequential reader (2)
	MaxAttempts        int           // attempts per request, retries included (4)
	MaxBackoff         time.Duration // longest wait between two attempts (2 s; exponential with jitter below it)
	RequestTimeout     time.Duration // longest a request attempt may take (2 min)
	DeleteBatch        int           // keys per DeleteObjects request (1000, the S3 maximum)
	UsageTTL           time.Duration // how long the used space computed for Quota is reused (5 min)

	// Now is the clock of the usage cache; nil: time.Now.
	Now func() time.Time

	// Logger receives what operators need (aborted uploads, removed
	// objects whose checksum the server reported wrong). nil: discarded.
	Logger *slog.Logger
}

// MinPartSize is the smallest part S3 accepts (but for the last one).
const MinPartSize = 5 << 20

// maxParts is the largest number of parts of one S3 object.
const maxParts = 10000

func (c Config) withDefaults() Config {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MultipartThreshold, 64<<20)
	def(&c.PartSize, 16<<20)
	def(&c.ReadChunk, 4<<20)
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.ReadAhead < 0 {
		c.ReadAhead = 0
	} else if c.ReadAhead == 0 {
		c.ReadAhead = 2
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 4
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 2 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Minute
	}
	if c.DeleteBatch <= 0 || c.DeleteBatch > 1000 {
		c.DeleteBatch = 1000
	}
	if c.UsageTTL <= 0 {
		c.UsageTTL = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Prefix = strings.TrimLeft(c.Prefix, "/")
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	return c
}

// Store is a bucket (and prefix) seen as a blob.Backend.
type Store struct {
	cfg    Config
	client *awss3.Client
	log    *slog.Logger

	bufs sync.Pool // *[]byte of ReadChunk bytes, for ranged GETs

	usageMu sync.Mutex
	used    int64
	usedAt  time.Time
}

var _ blob.Backend = (*Store)(nil)

// New checks cfg and returns a Store. It makes no request: Check (or the
// first operation) tells whether the bucket answers.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket configured")
	}
	if cfg.PartSize < MinPartSize {
		return nil, fmt.Errorf("s3: part size %d is below the S3 minimum of %d bytes", cfg.PartSize, MinPartSize)
	}
	if cfg.MultipartThreshold < cfg.PartSize {
		cfg.MultipartThreshold = cfg.PartSize
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3: access key and secret key go together")
	}
	if p := cfg.Prefix; p != "" && !blob.ValidKey(strings.TrimSuffix(p, "/")) {
		return nil, fmt.Errorf("s3: prefix %q: use lower-case letters, digits and / _ . -", p)
	}
	var pool *x509.CertPool
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("s3: read tls_ca: %w", err)
		}
		if pool, err = x509.SystemCertPool(); err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3: tls_ca %s holds no PEM certificate", cfg.TLSCA)
		}
	}
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 15 * time.Second }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = 64
			tr.ResponseHeaderTimeout = cfg.RequestTimeout
			if pool != nil {
				if tr.TLSClientConfig == nil {
					tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
				}
				tr.TLSClientConfig.RootCAs = pool
			}
		})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
				// No client-side retry budget: attempts are bounded per
				// request, and a long outage must not turn into refusals
				// after it ends.
				o.RateLimiter = ratelimit.None
				// A body the server found different from its checksum was
				// damaged on the way: sending it again may well succeed.
				o.Retryables = append(slices.Clone(o.Retryables), retry.RetryableErrorCode{Codes: map[string]struct{}{
					"BadDigest": {}, "XAmzContentSHA256Mismatch": {}, "InvalidDigest": {},
				}})
			})
		}),
		// Checksums are sent explicitly (SHA-256) where pigp wants them;
		// no CRC32 trailers (aws-chunked) that some servers refuse.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	return &Store{cfg: cfg, client: client, log: cfg.Logger}, nil
}

// Config returns the configuration in use, defaults applied.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) objectKey(key string) string { return s.cfg.Prefix + key }

// Check asks whether the bucket exists and the credentials may use it
// (HeadBucket): for /readyz.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.cfg.Bucket}, s.timeout())
	if err != nil {
		return s.fail("check", "", err)
	}
	return nil
}

// Stat describes the object under key, with the SHA-256 recorded at Put.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.CheckKey(key); err != nil {
		return blob.Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.objectKey(key))}, s.timeout())
	if err != nil {
		return blob.Info{}, s.fail("stat", key, err)
	}
	return blob.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), SHA256: out.Metadata[metaSHA256]}, nil
}

// metaSHA256 is the user metadata (x-amz-meta-sha256) holding an object's
// hex SHA-256, for Stat and audits: S3 itself keeps only a composite
// checksum for multipart objects.
const metaSHA256 = "sha256"

// Remove deletes keys with DeleteObjects, DeleteBatch keys at a time.
// Missing keys are not errors; a key the server refused to delete is.
func (s *Store) Remove(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := blob.CheckKey(k); err != nil {
			return err
		}
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), s.cfg.DeleteBatch)]
		keys = keys[len(batch):]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.objectKey(k))}
		}
		out, err := s.client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
			Bucket: &s.cfg.Bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}, s.timeout(), withContentMD5)
		if err != nil {
			return s.fail("remove", "", err)
		}
		var errs []error
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %s %s", strings.TrimPrefix(aws.ToString(e.Key), s.cfg.Prefix), aws.ToString(e.Code), aws.ToString(e.Message)))
		}
		if len(errs) > 0 {
			return blob.Unavailable("remove", "", errors.Join(errs...))
		}
	}
	return nil
}

// Walk lists the keys under prefix with ListObjectsV2, in lexical order.
// Objects whose key pigp could not have made are skipped.
func (s *Store) Walk(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: &s.cfg.Bucket, Prefix: aws.String(s.objectKey(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, s.timeout())
		if err != nil {
			return s.fail("walk", prefix, err)
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.cfg.Prefix)
			if !ok || !blob.ValidKey(key) || !strings.HasPrefix(key, prefix) {
				continue
			}
			if err := fn(blob.Info{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// AbortIncomplete aborts the multipart uploads under the prefix that were
// initiated before before: what a crash or a failed abort left behind. The
// bucket's lifecycle rule AbortIncompleteMultipartUpload is the backstop.
func (s *Store) AbortIncomplete(ctx context.Context, before time.Time) (int, error) {
	in := &awss3.ListMultipartUploadsInput{Bucket: &s.cfg.Bucket, Prefix: aws.String(s.cfg.Prefix)}
	n := 0
	for {
		out, err := s.client.ListMultipartUploads(ctx, in, s.timeout())
		if apiCode(err) == "NoSuchUpload" {
			return n, nil // some servers (gofakes3) say so of a bucket that never had one
		}
		if err != nil {
			return n, s.fail("list uploads", "", err)
		}
		for _, u := range out.Uploads {
			if u.Initiated == nil || !u.Initiated.Before(before) {
				continue
			}
			_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
				Bucket: &s.cfg.Bucket, Key: u.Key, UploadId: u.UploadId,
			}, s.timeout())
			if err != nil && apiCode(err) != "NoSuchUpload" {
				return n, s.fail("abort upload", strings.TrimPrefix(aws.ToString(u.Key), s.cfg.Prefix), err)
			}
			if err == nil {
				n++
				s.log.Warn("incomplete multipart upload aborted", "key", aws.ToString(u.Key), "initiated", aws.ToTime(u.Initiated))
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return n, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// FreeSpace is the configured quota less what the prefix holds (listed at
// most once per UsageTTL), or unknown without a quota.
func (s *Store) FreeSpace(ctx context.Context) (blob.Space, error) {
	if s.cfg.Quota <= 0 {
		return blob.Space{}, nil
	}
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	now := s.cfg.Now()
	if s.usedAt.IsZero() || now.Sub(s.usedAt) > s.cfg.UsageTTL {
		var used int64
		p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: aws.String(s.cfg.Prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx, s.timeout())
			if err != nil {
				return blob.Space{}, s.fail("usage", "", err)
			}
			for _, o := range page.Contents {
				used += aws.ToInt64(o.Size)
			}
		}
		s.used, s.usedAt = used, now
	}
	quota := uint64(s.cfg.Quota)
	free := uint64(0)
	if s.used < s.cfg.Quota {
		free = quota - uint64(s.used)
	}
	return blob.Space{Known: true, Total: quota, Free: free}, nil
}

// fail classifies an SDK error on key: ENOTFOUND for a missing object,
// ECONFLICT for a failed If-None-Match, EUNAVAILABLE (French message, cause
// for the logs) for everything else — network, timeouts, throttling, 5xx,
// refused credentials, missing bucket, bad digest.
func (s *Store) fail(op, key string, err error) error {
	var pe *pigp.Error
	if errors.As(err, &pe) {
		return err // already classified (a nested call)
	}
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		if key != "" {
			return blob.NotFound(op, key, err)
		}
	case "PreconditionFailed", "ConditionalRequestConflict":
		if op == "put" {
			return blob.Exists(key, err)
		}
	case "NoSuchBucket":
	default:
		var re *awshttp.ResponseError
		if key != "" && errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && apiCode(err) == "" {
			return blob.NotFound(op, key, err)
		}
	}
	return blob.Unavailable(op, key, err)
}

// isForbidden reports a 403 answer.
func isForbidden(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}

// apiCode returns the S3 error code of err ("" when the server gave none).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// ctxReader stops a long local read when ctx is done.
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
