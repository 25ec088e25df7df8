package s3_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/pigp/pigp/blob/s3"
)

// fake is an in-process S3 server (gofakes3 in memory) behind a handler
// that records requests and injects faults.
type fake struct {
	srv     *httptest.Server
	backend *s3mem.Backend

	stop chan struct{} // closed when the test ends: hanging handlers return

	mu     sync.Mutex
	faults []fault
	seen   []seenRequest
}

// fault answers the requests that match instead of the server, times
// times (0: always).
type fault struct {
	match  func(r *http.Request) bool
	handle func(w http.ResponseWriter, r *http.Request, next http.Handler)
	times  int
	hits   int
}

type seenRequest struct {
	Method, Path string
	Query        map[string][]string
	Header       http.Header
}

const bucket = "pigp"

func newFake(t *testing.T) *fake {
	return newFakeServer(t, false)
}

func newFakeServer(t *testing.T, tls bool) *fake {
	t.Helper()
	f := &fake{backend: s3mem.New(), stop: make(chan struct{})}
	faker := gofakes3.New(f.backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	h := f.wrap(faker.Server())
	if tls {
		f.srv = httptest.NewTLSServer(h)
	} else {
		f.srv = httptest.NewServer(h)
	}
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.stop) }) // runs first
	return f
}

// newProxy puts the recording, fault-injecting handler in front of
// another S3 server (versitygw).
func newProxy(t *testing.T, endpoint string) *fake {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{stop: make(chan struct{})}
	// The Host header is kept: requests are signed for the proxy's address.
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // requests the client gave up on
	f.srv = httptest.NewServer(f.wrap(proxy))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.stop) })
	return f
}

func (f *fake) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, seenRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()})
		var hit *fault
		for i := range f.faults {
			ft := &f.faults[i]
			if (ft.times == 0 || ft.hits < ft.times) && ft.match(r) {
				ft.hits++
				hit = ft
				break
			}
		}
		f.mu.Unlock()
		if hit != nil {
			hit.handle(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// inject adds a fault; times 0 means every matching request.
func (f *fake) inject(match func(*http.Request) bool, times int, handle func(http.ResponseWriter, *http.Request, http.Handler)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fault{match: match, handle: handle, times: times})
}

func (f *fake) clearFaults() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// requests returns the requests seen that match.
func (f *fake) requests(match func(seenRequest) bool) []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []seenRequest
	for _, r := range f.seen {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// Request kinds, from the S3 REST API's shapes.
func isPutObject(r *http.Request) bool {
	return r.Method == http.MethodPut && !r.URL.Query().Has("uploadId") && r.Header.Get("X-Amz-Copy-Source") == ""
}
func isUploadPart(n string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPut && r.URL.Query().Has("uploadId") && (n == "" || r.URL.Query().Get("partNumber") == n)
	}
}
func isGet(r *http.Request) bool { return r.Method == http.MethodGet && r.Header.Get("Range") != "" }
func isHead(r *http.Request) bool {
	return r.Method == http.MethodHead && strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1
}

func seenPutObject(r seenRequest) bool {
	_, part := r.Query["uploadId"]
	return r.Method == http.MethodPut && !part
}
func seenUploadPart(r seenRequest) bool {
	_, part := r.Query["uploadId"]
	return r.Method == http.MethodPut && part
}
func seenComplete(r seenRequest) bool {
	_, part := r.Query["uploadId"]
	return r.Method == http.MethodPost && part
}
func seenAbort(r seenRequest) bool {
	_, part := r.Query["uploadId"]
	return r.Method == http.MethodDelete && part
}

// s3Error answers with an S3 error document.
func s3Error(status int, code string) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>injected</Message></Error>`))
	}
}

// hang takes the request's body and never answers: the client gives up
// (its attempt timeout) and the connection closes.
func (f *fake) hang(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-f.stop:
	}
}

// cutBody sends the headers and half of a ranged GET's body, then drops the
// connection.
func cutBody(w http.ResponseWriter, r *http.Request, next http.Handler) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	body := rec.Body.Bytes()
	w.Write(body[:len(body)/2])
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
		}
	}
}

// config returns a store configuration for the fake, small sizes so that
// tests cross part and chunk boundaries.
func (f *fake) config() s3.Config {
	return s3.Config{
		Endpoint: f.srv.URL, Region: "us-east-1", Bucket: bucket, PathStyle: true,
		AccessKey: "test", SecretKey: "test",
		MultipartThreshold: 5 << 20, PartSize: 5 << 20, Concurrency: 3,
		ReadChunk: 256 << 10, ReadAhead: 2,
		MaxAttempts: 3, MaxBackoff: 20 * time.Millisecond, RequestTimeout: 10 * time.Second,
	}
}

func (f *fake) store(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	st, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// corrupt flips one byte of the request body on its way to the server.
func corrupt(w http.ResponseWriter, r *http.Request, next http.Handler) {
	r.Body = &flipReader{r: r.Body, at: 1000}
	next.ServeHTTP(w, r)
}

type flipReader struct {
	r   io.ReadCloser
	at  int64
	off int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.off && f.at < f.off+int64(n) {
		p[f.at-f.off] ^= 0x55
	}
	f.off += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }
