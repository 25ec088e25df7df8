package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/blob/s3"
	"github.com/pigp/pigp/store"
)

// storageMigrate copies the filesystem store's contents (DATA_DIR/store)
// to the S3 bucket of the storage section. Each object's SHA-256 is
// checked: against its deposit's or response's row where one refers to
// it, else recomputed from the file; the bucket checks it again on
// arrival. Objects already in the bucket with the right size and SHA-256
// are skipped, so an interrupted migration resumes by running it again;
// one in the bucket with other contents is never overwritten. Exit 1 on
// any mismatch or failure.
//
// The server may keep running on the filesystem store meanwhile (kind fs,
// the S3 settings filled in): a second run after stopping it copies only
// what arrived since, then kind s3 switches.
func storageMigrate(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("storage migrate")
	var cf configFlags
	cf.register(fs, false)
	to := fs.String("to", "", "target store: s3 (the bucket of the storage section)")
	jobs := fs.Int("jobs", 4, "objects copied at once")
	every := fs.Duration("progress-every", 10*time.Second, "interval of the progress lines when standard error is not a terminal")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: pigp storage migrate --to s3 [--jobs N] [--config FILE] [--data-dir DIR]\n\n"+
			"Copies the contents of DATA_DIR/store to the S3 bucket of the storage section,\n"+
			"checking every SHA-256; run it again to resume. See docs/stockage.md.")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *to != "s3" {
		return usagef("--to s3 is required (the only target)")
	}
	if *jobs < 1 || *jobs > 64 {
		return usagef("--jobs must be between 1 and 64")
	}
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	// The bucket may be described while the server still runs on the
	// filesystem (kind fs): check the S3 settings as if kind were s3.
	target := c
	target.Storage.Kind = "s3"
	if err := target.Validate(); err != nil {
		return err
	}
	c.LogLevel = "warn"
	logger := newLogger(c, m.Stderr)
	dst, err := s3.New(ctx, s3Config(c.Storage, logger))
	if err != nil {
		return pigp.WrapError(pigp.EINVALID, "configuration refusée : "+err.Error(), err)
	}
	if err := dst.Check(ctx); err != nil {
		return pigp.WrapError(pigp.EUNAVAILABLE, "bucket inaccessible : "+errorCause(err), err)
	}
	src, err := blob.Open(filepath.Join(c.DataDir, "store"))
	if err != nil {
		return err
	}
	dialect, dsn := c.Database()
	db, err := store.Open(ctx, dialect, dsn, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CheckSchema(ctx); err != nil {
		return err
	}
	known := map[string]store.Content{}
	if err := db.EachContent(ctx, func(ct store.Content) error {
		known[ct.Key] = ct
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "migration de %s vers le bucket %s\n", src.Dir(), c.Storage.Bucket)
	mg := &migration{src: src, dst: dst, known: known, jobs: *jobs, out: m.Stdout, every: *every}
	if f, ok := m.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		mg.bar = f
	} else {
		mg.lines = m.Stderr
	}
	return mg.run(ctx)
}

// migration copies the objects of src to dst.
type migration struct {
	src   *blob.Store
	dst   blob.Backend
	known map[string]store.Content // the rows' contents, by key
	jobs  int
	out   io.Writer // per-object problems and the summary

	bar   *os.File  // a terminal: a progress bar
	lines io.Writer // otherwise: a progress line every every
	every time.Duration

	mu    sync.Mutex
	stats migrationStats
}

// migrationStats counts what a migration did.
type migrationStats struct {
	objects, copied, present, recomputed, mismatched, failed int
	bytes, done, copiedBytes                                 int64
	missing                                                  int // required contents in neither store
	vanished                                                 int // removed from the local store during the run
}

// outcome is what became of one object.
type outcome int

const (
	copied outcome = iota
	present
	mismatched
	failed
	vanished
	interrupted
)

func (mg *migration) run(ctx context.Context) error {
	var objects []blob.Info
	if err := blob.NewFS(mg.src).Walk(ctx, "", func(i blob.Info) error {
		objects = append(objects, i)
		mg.stats.bytes += i.Size
		return nil
	}); err != nil {
		return err
	}
	mg.stats.objects = len(objects)
	onDisk := make(map[string]bool, len(objects))
	for _, o := range objects {
		onDisk[o.Key] = true
	}
	fmt.Fprintf(mg.out, "%d objet(s), %s dans le stockage local ; %d contenu(s) référencé(s) en base\n",
		len(objects), humanBytes(mg.stats.bytes), len(mg.known))

	stopProgress := mg.startProgress()
	work := make(chan blob.Info)
	var wg sync.WaitGroup
	for range mg.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				res := mg.migrate(ctx, o)
				mg.mu.Lock()
				switch res {
				case copied:
					mg.stats.copied++
					mg.stats.copiedBytes += o.Size
				case present:
					mg.stats.present++
				case mismatched:
					mg.stats.mismatched++
				case failed:
					mg.stats.failed++
				case vanished:
					mg.stats.vanished++
				}
				if res != interrupted {
					mg.stats.done += o.Size
				}
				mg.mu.Unlock()
			}
		}()
	}
feed:
	for _, o := range objects {
		select {
		case work <- o:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	stopProgress()

	// Contents that rows need but that neither store holds: lost before the
	// migration, reported so that nobody switches without knowing.
	if ctx.Err() == nil {
		for k, ct := range mg.known {
			if !ct.Required || onDisk[k] {
				continue
			}
			if _, err := mg.dst.Stat(ctx, k); pigp.ErrorCode(err) == pigp.ENOTFOUND {
				mg.stats.missing++
				mg.report("ABSENT", k, "référencé en base mais ni dans le stockage local ni dans le bucket")
			}
		}
	}

	s := mg.stats
	fmt.Fprintf(mg.out, "%d objet(s) copié(s) (%s), %d déjà présent(s), %d sans ligne en base (SHA-256 recalculé), "+
		"%d écart(s), %d échec(s), %d absent(s)\n",
		s.copied, humanBytes(s.copiedBytes), s.present, s.recomputed, s.mismatched, s.failed, s.missing)
	if s.vanished > 0 {
		fmt.Fprintf(mg.out, "%d objet(s) supprimé(s) du stockage local pendant la migration (expiration), non copié(s)\n", s.vanished)
	}
	switch {
	case ctx.Err() != nil:
		return pigp.WrapError(pigp.EUNAVAILABLE, "migration interrompue : relancez la même commande pour la reprendre", ctx.Err())
	case s.mismatched > 0:
		return pigp.Errorf(pigp.ECONFLICT, "%d écart(s) de contenu : ces objets n'ont pas été copiés (voir les lignes ÉCART)", s.mismatched)
	case s.failed > 0:
		return pigp.Errorf(pigp.EUNAVAILABLE, "%d objet(s) non copié(s) : relancez la commande pour les reprendre (voir les lignes ÉCHEC)", s.failed)
	}
	fmt.Fprintln(mg.out, "migration terminée : tout le stockage local est dans le bucket, SHA-256 vérifiés")
	return nil
}

// migrate copies one object unless the bucket already holds it.
func (mg *migration) migrate(ctx context.Context, o blob.Info) outcome {
	if ctx.Err() != nil {
		return interrupted
	}
	fail := func(err error) outcome {
		if ctx.Err() != nil {
			return interrupted
		}
		mg.report("ÉCHEC", o.Key, errorCause(err))
		return failed
	}
	f, err := mg.src.Open(o.Key)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed since the walk (expiry, while the server runs): nothing
		// to copy any more.
		return vanished
	} else if err != nil {
		return fail(err)
	}
	defer f.Close()
	sum := ""
	if ct, ok := mg.known[o.Key]; ok {
		if ct.Size != o.Size {
			mg.report("ÉCART", o.Key, fmt.Sprintf("%d octets sur disque, %d enregistrés en base", o.Size, ct.Size))
			return mismatched
		}
		sum = ct.SHA256
	} else {
		if sum, err = hashOpenFile(ctx, f); err != nil {
			return fail(err)
		}
		mg.mu.Lock()
		mg.stats.recomputed++
		mg.mu.Unlock()
	}
	if res, done := mg.inBucket(ctx, o, sum); done {
		return res
	}
	err = mg.dst.Put(ctx, o.Key, f, sum)
	switch {
	case errors.Is(err, blob.ErrSumMismatch):
		mg.report("ÉCART", o.Key, "le fichier local n'a pas le SHA-256 enregistré en base ("+sum+")")
		return mismatched
	case pigp.ErrorCode(err) == pigp.ECONFLICT:
		// Put by someone else meanwhile: judge what is there.
		if res, done := mg.inBucket(ctx, o, sum); done {
			return res
		}
		return fail(err)
	case err != nil:
		return fail(err)
	}
	info, err := mg.dst.Stat(ctx, o.Key)
	if err != nil {
		return fail(err)
	}
	if info.Size != o.Size || info.SHA256 != "" && info.SHA256 != sum {
		mg.report("ÉCART", o.Key, fmt.Sprintf("le bucket décrit %d octets, SHA-256 %s après la copie de %d octets, %s", info.Size, info.SHA256, o.Size, sum))
		return mismatched
	}
	return copied
}

// inBucket judges the object already under o's key in the bucket, if any:
// done is false when there is none (copy it).
func (mg *migration) inBucket(ctx context.Context, o blob.Info, sum string) (res outcome, done bool) {
	info, err := mg.dst.Stat(ctx, o.Key)
	switch {
	case pigp.ErrorCode(err) == pigp.ENOTFOUND:
		return 0, false
	case err != nil:
		if ctx.Err() != nil {
			return interrupted, true
		}
		mg.report("ÉCHEC", o.Key, errorCause(err))
		return failed, true
	}
	got := info.SHA256
	if got == "" && info.Size == o.Size {
		// A store that keeps no SHA-256 (an object put by another tool):
		// read it back.
		if got, err = hashObject(ctx, mg.dst, o.Key); err != nil {
			if ctx.Err() != nil {
				return interrupted, true
			}
			mg.report("ÉCHEC", o.Key, errorCause(err))
			return failed, true
		}
	}
	if info.Size != o.Size || got != sum {
		mg.report("ÉCART", o.Key, fmt.Sprintf("déjà dans le bucket avec un autre contenu (%d octets, SHA-256 %s ; attendu %d octets, %s) : laissé tel quel",
			info.Size, got, o.Size, sum))
		return mismatched, true
	}
	return present, true
}

// report writes one problem line (the key, never a user's file name).
func (mg *migration) report(kind, key, msg string) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	fmt.Fprintf(mg.out, "%-6s %s : %s\n", kind, key, msg)
}

// startProgress shows the progress until the returned function is called:
// a bar on a terminal, a line every mg.every otherwise.
func (mg *migration) startProgress() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	if mg.bar != nil {
		bar := progressbar.NewOptions64(mg.stats.bytes, progressbar.OptionSetWriter(mg.bar), progressbar.OptionSetDescription("migration"),
			progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(mg.bar) }))
		bar.RenderBlank()
		go func() {
			defer wg.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					mg.mu.Lock()
					n := mg.stats.done
					mg.mu.Unlock()
					if n >= mg.stats.bytes {
						bar.Finish() // full, and a line break
					} else {
						bar.Set64(n)
						bar.Exit() // where it stopped, and a line break
					}
					return
				case <-t.C:
					mg.mu.Lock()
					n := mg.stats.done
					mg.mu.Unlock()
					bar.Set64(n)
				}
			}
		}()
	} else {
		line := func() {
			mg.mu.Lock()
			s := mg.stats
			mg.mu.Unlock()
			fmt.Fprintf(mg.lines, "migration : %d/%d objet(s), %s / %s\n", s.copied+s.present+s.mismatched+s.failed,
				s.objects, humanBytes(s.done), humanBytes(s.bytes))
		}
		go func() {
			defer wg.Done()
			t := time.NewTicker(mg.every)
			defer t.Stop()
			for {
				select {
				case <-done:
					line() // where it ended
					return
				case <-t.C:
					line()
				}
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// hashOpenFile returns the hex SHA-256 of f from its start.
func hashOpenFile(ctx context.Context, f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, blob.ContextReader(ctx, io.NewSectionReader(f, 0, 1<<62))); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashObject returns the hex SHA-256 of the object under key.
func hashObject(ctx context.Context, b blob.Backend, key string) (string, error) {
	o, err := b.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer o.Close()
	h := sha256.New()
	if _, err := io.Copy(h, blob.ContextReader(ctx, io.NewSectionReader(o, 0, o.Size()))); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
