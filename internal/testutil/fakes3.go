package testutil

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/pigp/pigp/blob/s3"
)

// FakeS3 is an in-process S3 server (gofakes3, in memory) on 127.0.0.1
// for fast tests, with one bucket and a switch that makes it refuse writes.
type FakeS3 struct {
	URL    string
	Bucket string
	// FailWrites, while set, answers every PUT and POST (objects, parts,
	// multipart uploads) with 503 SlowDown.
	FailWrites atomic.Bool
}

// StartFakeS3 starts a FakeS3, stopped when the test ends.
func StartFakeS3(tb testing.TB) *FakeS3 {
	tb.Helper()
	f := &FakeS3{Bucket: "pigp"}
	backend := s3mem.New()
	if err := backend.CreateBucket(f.Bucket); err != nil {
		tb.Fatal(err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.FailWrites.Load() && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
			return
		}
		faker.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Store returns an S3 store of the fake's bucket, with small parts and
// quick retries; tweaks, if any, change its configuration first.
func (f *FakeS3) Store(tb testing.TB, tweaks ...func(*s3.Config)) *s3.Store {
	tb.Helper()
	cfg := s3.Config{
		Endpoint: f.URL, Region: "us-east-1", Bucket: f.Bucket, PathStyle: true,
		AccessKey: "pigp", SecretKey: "pigp-secret",
		MultipartThreshold: 5 << 20, PartSize: 5 << 20, Concurrency: 2,
		MaxAttempts: 2, MaxBackoff: 10 * time.Millisecond, RequestTimeout: 10 * time.Second,
	}
	for _, tw := range tweaks {
		tw(&cfg)
	}
	st, err := s3.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}
