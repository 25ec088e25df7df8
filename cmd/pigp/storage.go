package main

import (
	"context"
	"log/slog"

	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/blob/s3"
	"github.com/pigp/pigp/config"
)

// openBackend returns the content store the configuration names: fsStore
// (DATA_DIR/store) seen as a Backend for kind fs, the S3 bucket for kind
// s3. It makes no request: Backend.Check tells whether the bucket answers.
func openBackend(ctx context.Context, c config.Config, fsStore *blob.Store, logger *slog.Logger) (blob.Backend, error) {
	if !c.Storage.S3() {
		return blob.NewFS(fsStore), nil
	}
	return s3.New(ctx, s3Config(c.Storage, logger))
}

// s3Config translates the storage section into the S3 store's settings;
// the tuning the section does not name keeps blob/s3's defaults.
func s3Config(st config.Storage, logger *slog.Logger) s3.Config {
	return s3.Config{
		Endpoint: st.Endpoint, Region: st.Region, Bucket: st.Bucket, Prefix: st.Prefix,
		AccessKey: st.AccessKey, SecretKey: st.SecretKey, PathStyle: st.PathStyle, TLSCA: st.TLSCA,
		Quota: int64(st.Quota), MultipartThreshold: int64(st.MultipartThreshold), PartSize: int64(st.PartSize),
		Concurrency: st.Concurrency, MaxAttempts: st.MaxAttempts, RequestTimeout: st.RequestTimeout.Std(),
		Logger: logger.With("component", "s3"),
	}
}
