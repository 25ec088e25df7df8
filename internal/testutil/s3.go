package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersityGWVersion is the versitygw that .ci/versitygw.sh builds; keep the
// two in step.
const VersityGWVersion = "v1.8.0"

// VersityGWBinary returns the path of the versitygw binary: PIGP_VERSITYGW,
// or where .ci/versitygw.sh caches it. Without it the test is skipped,
// unless CI=true, where it fails.
func VersityGWBinary(tb testing.TB) string {
	tb.Helper()
	bin := os.Getenv("PIGP_VERSITYGW")
	if bin == "" {
		dir := os.Getenv("PIGP_TOOLS_DIR")
		if dir == "" {
			home, _ := os.UserHomeDir()
			dir = filepath.Join(home, ".cache", "pigp-tools")
		}
		bin = filepath.Join(dir, "versitygw-"+VersityGWVersion, "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("versitygw not found at %s: run .ci/versitygw.sh", bin)
		}
		tb.Skipf("versitygw not found at %s (run .ci/versitygw.sh)", bin)
	}
	return bin
}

// S3Server is a real S3 server started for a test: versitygw with its
// posix backend on a temporary directory, on 127.0.0.1.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Dir       string // the posix backend's root: one directory per bucket

	client *awss3.Client
}

// StartVersityGW starts versitygw on a free port of 127.0.0.1 and stops it
// when the test ends.
func StartVersityGW(tb testing.TB) *S3Server {
	tb.Helper()
	bin := VersityGWBinary(tb)
	var b [8]byte
	rand.Read(b[:])
	s := &S3Server{Region: "us-east-1", AccessKey: "pigptest", SecretKey: hex.EncodeToString(b[:]), Dir: tb.TempDir()}
	var lastErr error
	for range 5 { // the free port may be taken between its discovery and versitygw's bind
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var out bytes.Buffer
		cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
			"--port", addr, "--quiet", "posix", s.Dir)
		cmd.Env = append(os.Environ(), "VGW_LOG_LEVEL=silent")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		s.Endpoint = "http://" + addr
		s.client = awss3.New(awss3.Options{
			Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		})
		if lastErr = waitListening(addr, exited); lastErr == nil {
			// Our own secret is accepted: this is our server, not another
			// test's versitygw that took the port first.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, lastErr = s.client.ListBuckets(ctx, &awss3.ListBucketsInput{})
			cancel()
		}
		if lastErr == nil {
			tb.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return s
		}
		cmd.Process.Kill()
		<-exited
		lastErr = fmt.Errorf("%w; output: %s", lastErr, out.String())
	}
	tb.Fatalf("versitygw did not start: %v", lastErr)
	return nil
}

// waitListening waits until the versitygw just started answers on addr. A
// server that answers but is not versitygw (another process took the
// port first) is an error, so that the caller tries another port.
func waitListening(addr string, exited <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited: %v", err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		if resp.Header.Get("Server") != "VERSITYGW" {
			return fmt.Errorf("%s is answered by another server (%q)", addr, resp.Header.Get("Server"))
		}
		return nil
	}
	return fmt.Errorf("nothing answers on %s after 30 s", addr)
}

// NewBucket creates an empty bucket with a fresh name and returns it.
func (s *S3Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "pigp-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: &name}); err != nil {
		tb.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Client returns an S3 client of the server's root user, for tests that
// look behind the store's back.
func (s *S3Server) Client() *awss3.Client { return s.client }
