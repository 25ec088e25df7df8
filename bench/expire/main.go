// Command expire measures the response-expiry job on many responses: the
// time to hide them and delete their content, and the peak resident memory.
//
//	go run ./bench/expire -responses 100000
//	go run ./bench/expire -responses 100000 -postgres postgres://…/db
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/lifecycle"
	"github.com/pigp/pigp/store"
)

const siret = "22940028800010"

func main() {
	n := flag.Int("responses", 100000, "responses to expire")
	dsn := flag.String("postgres", "", "PostgreSQL URL of an empty database (default: SQLite in a temporary directory)")
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pigp-bench-expire-")
	check(err)
	defer os.RemoveAll(dir)
	dialect, path := store.SQLite, filepath.Join(dir, "pigp.db")
	if *dsn != "" {
		dialect, path = store.Postgres, *dsn
	}
	db, err := store.Open(ctx, dialect, path, nil)
	check(err)
	_, err = db.Migrate(ctx)
	check(err)
	blobs, err := blob.Open(filepath.Join(dir, "store"))
	check(err)
	check(db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siret, Name: "Bench"}))

	// Setup (not measured): n responses available 22 days ago, content
	// written straight into the store.
	t0 := time.Now().UTC().Add(-22 * 24 * time.Hour)
	setup := time.Now()
	batch := make([]*pigp.Response, 0, 5000)
	for i := 0; i < *n; i++ {
		id := pigp.NewID()
		key := blob.Key(blob.KindResponse, id)
		p := filepath.Join(blobs.Dir(), "objects", filepath.FromSlash(key))
		os.MkdirAll(filepath.Dir(p), 0o700)
		check(os.WriteFile(p, []byte("<ReponseAPA/>"), 0o600))
		batch = append(batch, &pigp.Response{ID: id, Name: fmt.Sprintf("2026_%s_%014d_REP.xml", siret, i), SIRET: siret,
			DocType: pigp.DocResponse, Size: 13, SHA256: "x", State: pigp.ResponseAvailable,
			AvailableAt: t0, ExpiresAt: t0.Add(pigp.DefaultRetention), StorageKey: key})
		if len(batch) == cap(batch) || i == *n-1 {
			check(db.CreateResponses(ctx, batch))
			batch = batch[:0]
		}
	}
	fmt.Printf("setup: %d responses in %.1f s (%s)\n", *n, time.Since(setup).Seconds(), dialect)

	l := lifecycle.New(db, blob.NewFS(blobs), blobs, nil)
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	base := status("VmRSS:")
	start := time.Now()
	expired, deleted, err := l.ExpireResponses(ctx, time.Now().UTC())
	check(err)
	el := time.Since(start)
	fmt.Printf("expiry: %d expired, %d contents deleted in %.1f s (%.0f responses/s); RSS before %.1f MiB, peak %.1f MiB\n",
		expired, deleted, el.Seconds(), float64(expired)/el.Seconds(), base, status("VmHWM:"))
	if expired != *n || deleted != *n {
		log.Fatalf("expected %d expired and deleted", *n)
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func status(key string) float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, key)), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}
