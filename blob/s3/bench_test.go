package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/blob/s3"
	"github.com/pigp/pigp/internal/testutil"
)

// BenchmarkBlobMemory puts a large object (PIGP_BENCH_BLOB_SIZE bytes,
// 1 GiB by default: a sparse file, so that the local disk is not what is
// measured) through each backend, then reads it back the way the SFTP edge
// does (256 KiB reads at increasing offsets, 16 in flight), and reports
// the throughput and this process's peak memory of each phase: the heap
// (sampled every 10 ms) and the resident set (VmHWM, reset before each
// phase). Flat memory means the peaks do not grow with the size.
//
//	go test -run '^$' -bench BlobMemory -benchtime 1x ./blob/s3/
//	bench/blob-memory.sh   # the same, at 256 MiB and 1 GiB
//
// The S3 store runs with its default sizes against versitygw (posix
// backend on a temporary directory) on 127.0.0.1.
func BenchmarkBlobMemory(b *testing.B) {
	size := int64(1 << 30)
	if v := os.Getenv("PIGP_BENCH_BLOB_SIZE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("PIGP_BENCH_BLOB_SIZE: %v", err)
		}
		size = n
	}
	sum := zeroSum(b, size)

	b.Run("fs", func(b *testing.B) {
		st, err := blob.Open(filepath.Join(b.TempDir(), "store"))
		if err != nil {
			b.Fatal(err)
		}
		benchBackend(b, blob.NewFS(st), size, sum, func() *os.File {
			t, err := st.Create()
			if err != nil {
				b.Fatal(err)
			}
			return t.File
		})
	})
	b.Run("s3-versitygw", func(b *testing.B) {
		srv := testutil.StartVersityGW(b)
		st, err := s3.New(context.Background(), s3.Config{
			Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.NewBucket(b), PathStyle: true,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		})
		if err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		benchBackend(b, st, size, sum, func() *os.File {
			f, err := os.CreateTemp(dir, "spool-")
			if err != nil {
				b.Fatal(err)
			}
			return f
		})
	})
}

func benchBackend(b *testing.B, be blob.Backend, size int64, sum string, spool func() *os.File) {
	ctx := context.Background()
	b.SetBytes(2 * size)
	var putMBs, getMBs, putHeap, getHeap, putRSS, getRSS float64
	for i := 0; i < b.N; i++ {
		f := spool()
		if err := f.Truncate(size); err != nil { // sparse: zeros
			b.Fatal(err)
		}
		key := fmt.Sprintf("depots/be/bench-%d", i)

		p := startPeaks(b)
		start := time.Now()
		if err := be.Put(ctx, key, f, sum); err != nil {
			b.Fatal(err)
		}
		putMBs = float64(size) / 1e6 / time.Since(start).Seconds()
		putHeap, putRSS = p.stop()
		f.Close()
		os.Remove(f.Name())

		p = startPeaks(b)
		start = time.Now()
		if err := readLikeSFTP(be, key, size); err != nil {
			b.Fatal(err)
		}
		getMBs = float64(size) / 1e6 / time.Since(start).Seconds()
		getHeap, getRSS = p.stop()

		if err := be.Remove(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(putMBs, "put-MB/s")
	b.ReportMetric(getMBs, "get-MB/s")
	b.ReportMetric(putHeap, "put-peak-heap-MiB")
	b.ReportMetric(getHeap, "get-peak-heap-MiB")
	b.ReportMetric(putRSS, "put-peak-RSS-MiB")
	b.ReportMetric(getRSS, "get-peak-RSS-MiB")
}

// readLikeSFTP reads the object in 256 KiB requests at increasing offsets,
// 16 in flight, and checks that every byte is zero.
func readLikeSFTP(be blob.Backend, key string, size int64) error {
	o, err := be.Open(context.Background(), key)
	if err != nil {
		return err
	}
	defer o.Close()
	if o.Size() != size {
		return fmt.Errorf("size %d, want %d", o.Size(), size)
	}
	const req = 256 << 10
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	zero := make([]byte, req)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, req)
			for {
				off := next.Add(req) - req
				if off >= size {
					return
				}
				n, err := o.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if int64(n) != min(req, size-off) || !bytes.Equal(buf[:n], zero[:n]) {
					errs <- fmt.Errorf("read at %d: %d bytes, or not the zeros put", off, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// peaks samples the heap until stop, and resets the process's peak RSS.
type peaks struct {
	done chan struct{}
	max  chan uint64
	b    *testing.B
}

func startPeaks(b *testing.B) *peaks {
	runtime.GC()
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS: %v", err)
	}
	p := &peaks{done: make(chan struct{}), max: make(chan uint64, 1), b: b}
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-p.done:
				p.max <- peak
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// stop returns the peak heap and the peak RSS in MiB.
func (p *peaks) stop() (heap, rss float64) {
	close(p.done)
	heap = float64(<-p.max) / (1 << 20)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return heap, 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			rss = kb / 1024
		}
	}
	return heap, rss
}

// zeroSum is the hex SHA-256 of size zero bytes.
func zeroSum(b *testing.B, size int64) string {
	h := sha256.New()
	if _, err := io.CopyN(h, zeroReader{}, size); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
