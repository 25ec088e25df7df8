// Command process measures the answering of a large call file: validation
// alone on one core (MB/s), then validation, matching and writing of the
// response (records/s, MB/s), with the peak resident memory of each phase.
//
//	go run ./bench/process -demandes 100000
//	go run ./bench/process -demandes 1000000   # 10× bigger: memory stays flat
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/fiscal"
	"github.com/pigp/pigp/places"
	"github.com/pigp/pigp/processing"
	"github.com/pigp/pigp/store"
)

const siret = "22940028800010"

func main() {
	demandes := flag.Int("demandes", 100000, "requests in the call file")
	persons := flag.Int("persons", 50000, "declarants in the reference data")
	dsn := flag.String("postgres", "", "PostgreSQL URL (default: SQLite in a temporary directory)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the processing phase to this file")
	memprofile := flag.String("memprofile", "", "write a heap profile of the processing phase, taken when its live heap peaks, to this file")
	prepare := flag.String("prepare", "", "only prepare a data directory here (reference data and the deposit), "+
		"for measuring `pigp process --data-dir DIR` in its own process")
	flag.Parse()
	if *memprofile != "" {
		// Finer sampling from here on; what package initialisation
		// allocated (1.3 MB, see TestStartupAllocations) was sampled at the
		// default rate.
		runtime.MemProfileRate = 4096
	}
	ctx := context.Background()
	dir := *prepare
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "pigp-bench-process-")
		check(err)
		defer os.RemoveAll(dir)
	}

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
	tab, err := places.Load()
	check(err)

	var ref bytes.Buffer
	_, err = fiscal.Generate(&ref, fiscal.GenerateOptions{Count: *persons, Seed: 1, IncomeYear: 2025})
	check(err)
	data, err := fiscal.ReadCSV(&ref, nil)
	check(err)
	check(db.ImportReferentiel(ctx, data.Persons, data.Resources))
	db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siret, Name: "Bench"})
	now := time.Now().UTC()
	acct := &pigp.Account{Login: "bench-xt", Name: "Bench", Email: "b@example.fr", SIRETs: []string{siret},
		PasswordHash: "x", PasswordSetAt: now, PasswordExpiresAt: now.AddDate(1, 0, 0), State: pigp.AccountActive}
	check(db.CreateAccount(ctx, acct))

	// The call file goes straight into the content store.
	name := apa.CallName{Campaign: 2026, SIRET: siret, Timestamp: now.In(apa.Paris).Add(-time.Hour).Truncate(time.Second)}
	tmp, err := blobs.Create()
	check(err)
	h := sha256.New()
	check(fiscal.GenerateCall(io.MultiWriter(tmp, h), data.Persons, fiscal.SampleAddresses,
		fiscal.CallOptions{Name: name, Count: *demandes, Seed: 2, UnknownPc: 10}))
	fi, err := tmp.Stat()
	check(err)
	size := fi.Size()
	id := pigp.NewID()
	key := blob.Key(blob.KindDeposit, id)
	check(tmp.Commit(key))
	check(db.CreateDeposit(ctx, &pigp.Deposit{ID: id, ExternalName: name.String(), InternalName: name.String() + "." + siret,
		SIRET: siret, AccountID: acct.ID, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Status: pigp.DepositReceived,
		ClientIP: "127.0.0.1", Protocol: pigp.ProtocolCLI, DepositedAt: now, StorageKey: key}))
	if *prepare != "" {
		fmt.Printf("prepared %s: %d demandes (%.1f MB) waiting, %d declarants\n", dir, *demandes, mb(size), len(data.Persons))
		return
	}
	runtime.GC()
	fmt.Printf("call file: %d demandes, %.1f MB; reference data: %d declarants (%s)\n", *demandes, mb(size), len(data.Persons), dialect)
	data, ref = nil, bytes.Buffer{}
	resetPeak()
	fmt.Printf("baseline RSS before the phases (places table, database connection, runtime): %.1f MiB\n", statusMiB("VmRSS:"))

	// Phase 1: validation alone, one core.
	prev := runtime.GOMAXPROCS(1)
	resetPeak()
	f, err := blobs.Open(key)
	check(err)
	start := time.Now()
	cpu0 := cpuTime()
	rep, err := apa.Validate(bufio.NewReaderSize(f, 256<<10), name, apa.Options{Places: tab}, nil)
	check(err)
	el, cpu := time.Since(start), cpuTime()-cpu0
	f.Close()
	fmt.Printf("validation (GOMAXPROCS=1): %.2f s, %.1f MB/s, %.0f records/s, CPU %.2f s, peak RSS %.1f MiB, rejected=%v (%d anomalies)\n",
		el.Seconds(), mb(size)/el.Seconds(), float64(rep.Demandes)/el.Seconds(), cpu.Seconds(), peakMiB(), rep.Rejected(), rep.Total)
	runtime.GOMAXPROCS(prev)

	// Phase 2: the processing job: validation, matching, response.
	p := &processing.Processor{Store: db, Blobs: blob.NewFS(blobs), Spool: blobs, Places: tab, Now: func() time.Time { return time.Now().UTC() },
		Retention: pigp.DefaultRetention, StaleAfter: time.Hour}
	resetPeak()
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		check(err)
		check(pprof.StartCPUProfile(pf))
	}
	stopMem := func() {}
	if *memprofile != "" {
		stopMem = profileLivePeak(*memprofile)
	}
	start = time.Now()
	cpu0 = cpuTime()
	out, err := p.ProcessNext(ctx)
	check(err)
	pprof.StopCPUProfile()
	stopMem()
	el, cpu = time.Since(start), cpuTime()-cpu0
	fmt.Printf("processing: %.2f s, %.1f MB/s, %.0f records/s, CPU %.2f s, peak RSS %.1f MiB; %s %s (%.1f MB): %+v\n",
		el.Seconds(), mb(size)/el.Seconds(), float64(*demandes)/el.Seconds(), cpu.Seconds(), peakMiB(),
		out.Status, out.Response.Name, mb(out.Response.Size), out.Counts)
}

// profileLivePeak reads the live heap (as of the last collection) every
// 100 ms and writes a heap profile to path each time it reaches a new
// maximum, so that the file ends up describing the phase near its largest
// live heap: a peak between two readings is missed, and a heap profile may
// be up to two collections old (runtime/pprof). The returned function stops
// the sampling, writing a profile if none was.
func profileLivePeak(path string) (stop func()) {
	write := func() {
		f, err := os.Create(path)
		check(err)
		check(pprof.Lookup("heap").WriteTo(f, 0))
		check(f.Close())
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	written := false
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if live := sample[0].Value.Uint64(); live > peak {
				peak = live
				write()
				written = true
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		if !written {
			write()
		}
	}
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// resetPeak returns freed memory to the system and resets the kernel's
// peak RSS counter of this process (VmHWM), so that a phase's peak is its own.
func resetPeak() {
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakMiB returns VmHWM, the peak resident set size since the last reset.
func peakMiB() float64 { return statusMiB("VmHWM:") }

// statusMiB returns a memory line of /proc/self/status in MiB.
func statusMiB(key string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, key)), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
