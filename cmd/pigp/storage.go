package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pigp/pigp"
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

// describeStorage says in one line where contents live (never a secret).
func describeStorage(c config.Config) string {
	st := c.Storage
	if !st.S3() {
		return "stockage fs : " + filepath.Join(c.DataDir, "store")
	}
	endpoint := st.Endpoint
	if endpoint == "" {
		endpoint = "AWS"
	}
	creds := "chaîne AWS (variables AWS_*, AWS_PROFILE et ~/.aws, rôle)"
	if st.AccessKey != "" {
		creds = "clé d'accès " + st.AccessKey
	}
	prefix := ""
	if st.Prefix != "" {
		prefix = ", préfixe " + st.Prefix
	}
	return fmt.Sprintf("stockage s3 : bucket %s%s, point d'accès %s, identifiants : %s", st.Bucket, prefix, endpoint, creds)
}

type storageCommand struct{}

const storageUsage = "usage: pigp storage check | migrate --to s3 [--jobs N]"

func (storageCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		return usagef("%s", storageUsage)
	}
	switch args[0] {
	case "check":
		return storageCheck(ctx, m, args[1:])
	case "migrate":
		return storageMigrate(ctx, m, args[1:])
	}
	return usagef("unknown subcommand %q; %s", args[0], storageUsage)
}

// storageCheck verifies the configured content store with what the server
// does: it reaches the store, puts a probe object (and, on S3, a multipart
// one), describes, lists, reads and removes it, lists unfinished multipart
// uploads, and says how much room is left. Exit 1 at the first failure.
func storageCheck(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("storage check")
	var cf configFlags
	cf.register(fs, false)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: pigp storage check [--config FILE] [--data-dir DIR]\n\n"+
			"Puts, reads, lists and removes a probe object in the configured content store\n"+
			"(storage.kind fs or s3), to check the settings and the permissions.")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	c.LogLevel = "warn"
	logger := newLogger(c, m.Stderr)
	fmt.Fprintln(m.Stdout, describeStorage(c))
	var b, multipart blob.Backend
	if c.Storage.S3() {
		if b, err = s3.New(ctx, s3Config(c.Storage, logger)); err != nil {
			return pigp.WrapError(pigp.EINVALID, "configuration refusée : "+err.Error(), err)
		}
		// The same bucket, with the smallest parts: the probe exercises
		// multipart uploads without sending 64 MiB.
		sc := s3Config(c.Storage, logger)
		sc.PartSize, sc.MultipartThreshold = s3.MinPartSize, s3.MinPartSize
		if multipart, err = s3.New(ctx, sc); err != nil {
			return err
		}
	} else {
		st, err := blob.Open(filepath.Join(c.DataDir, "store"))
		if err != nil {
			return pigp.WrapError(pigp.EUNAVAILABLE, "stockage local inutilisable : "+err.Error(), err)
		}
		b = blob.NewFS(st)
	}
	if err := probeBackend(ctx, m.Stdout, b, multipart); err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, "stockage utilisable")
	return nil
}

// probeBackend runs the checks of storage check on b; multipart, when not
// nil, is the same store set to send the probe in parts.
func probeBackend(ctx context.Context, out io.Writer, b, multipart blob.Backend) error {
	step := func(what string, err error) error {
		if err != nil {
			fmt.Fprintf(out, "ÉCHEC  %s : %s\n", what, errorCause(err))
			return pigp.WrapError(pigp.EUNAVAILABLE, "stockage inutilisable : "+what+" : "+errorCause(err), err)
		}
		fmt.Fprintf(out, "ok     %s\n", what)
		return nil
	}
	if err := step("accès au stockage", b.Check(ctx)); err != nil {
		return err
	}
	probes := []struct {
		what string
		b    blob.Backend
		size int64
	}{{"objet de sonde", b, 4096}}
	if multipart != nil {
		probes = append(probes, struct {
			what string
			b    blob.Backend
			size int64
		}{"objet de sonde en plusieurs parties (multipart)", multipart, s3.MinPartSize + 4096})
	}
	for _, p := range probes {
		if err := probeObject(ctx, p.b, p.what, p.size, step); err != nil {
			return err
		}
	}
	if multipart != nil {
		_, err := b.AbortIncomplete(ctx, time.Time{}) // lists, aborts nothing
		if err := step("liste des envois multipart inachevés", err); err != nil {
			return err
		}
	}
	sp, err := b.FreeSpace(ctx)
	if err := step("espace libre", err); err != nil {
		return err
	}
	if sp.Known {
		fmt.Fprintf(out, "espace : %s libres sur %s\n", humanBytes(int64(sp.Free)), humanBytes(int64(sp.Total)))
	} else {
		fmt.Fprintln(out, "espace : inconnu (aucun quota configuré, storage.quota) : les envois ne sont pas limités par l'espace libre")
	}
	return nil
}

// probeObject puts a probe of size bytes under a fresh key of check/, then
// describes, lists, reads and removes it, each step reported by step.
func probeObject(ctx context.Context, b blob.Backend, what string, size int64, step func(string, error) error) error {
	var rnd [12]byte
	rand.Read(rnd[:])
	key := "check/" + hex.EncodeToString(rnd[:])
	data := make([]byte, size)
	rand.Read(data)
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	f, err := os.CreateTemp("", "pigp-storage-check-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := step(fmt.Sprintf("écriture : %s de %d octets (%s)", what, size, key), b.Put(ctx, key, f, sum)); err != nil {
		return err
	}
	// Whatever fails next, the probe does not stay.
	removed := false
	defer func() {
		if !removed {
			b.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	info, err := b.Stat(ctx, key)
	if err == nil && (info.Size != size || info.SHA256 != "" && info.SHA256 != sum) {
		err = fmt.Errorf("the store describes %d bytes, SHA-256 %q; %d bytes, %s were put", info.Size, info.SHA256, size, sum)
	}
	if err := step("description de l'objet (taille, SHA-256)", err); err != nil {
		return err
	}
	listed := false
	err = b.Walk(ctx, "check/", func(i blob.Info) error {
		listed = listed || i.Key == key
		return nil
	})
	if err == nil && !listed {
		err = errors.New("the probe is not listed")
	}
	if err := step("liste des objets", err); err != nil {
		return err
	}
	err = readBack(ctx, b, key, data)
	if err := step("lecture (SHA-256 relu conforme)", err); err != nil {
		return err
	}
	err = b.Remove(ctx, key)
	if err == nil {
		if _, serr := b.Stat(ctx, key); pigp.ErrorCode(serr) != pigp.ENOTFOUND {
			err = fmt.Errorf("the probe is still there after its removal (%v)", serr)
		}
	}
	removed = err == nil
	return step("suppression", err)
}

// readBack reads key at a few offsets and whole, and compares with data.
func readBack(ctx context.Context, b blob.Backend, key string, data []byte) error {
	o, err := b.Open(ctx, key)
	if err != nil {
		return err
	}
	defer o.Close()
	if o.Size() != int64(len(data)) {
		return fmt.Errorf("opened object has %d bytes, %d were put", o.Size(), len(data))
	}
	got := make([]byte, len(data))
	if _, err := o.ReadAt(got, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if !bytes.Equal(got, data) {
		return errors.New("the bytes read differ from the bytes put")
	}
	tail := make([]byte, 100)
	if n, err := o.ReadAt(tail, int64(len(data))-50); n != 50 || !errors.Is(err, io.EOF) || !bytes.Equal(tail[:n], data[len(data)-50:]) {
		return fmt.Errorf("a read across the end returned %d bytes, %v", n, err)
	}
	return nil
}

// humanBytes writes n in binary units ("1.5 Gio").
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d o", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cio", float64(n)/float64(div), "KMGTPE"[exp])
}
