package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/store"
)

// A backup directory holds, with the data directory's layout:
//
//	pigp.db            the SQLite database (VACUUM INTO: one consistent snapshot)
//	store/objects/…    every content the snapshot refers to
//	hostkeys/…         the SSH host keys (clients keep trusting the server)
//	audit.key          the audit trail's key, when the data directory has one
//	audit-checkpoints.log  the checkpoint file (audit_checkpoint_file), as it
//	                   was just before the snapshot, when there is one
//	backup.json        what was saved, by which build, when
//	MANIFEST.sha256    the SHA-256 of every file above, `sha256sum -c` format,
//	                   written last: a backup without it is incomplete
const (
	backupManifest = "MANIFEST.sha256"
	backupInfo     = "backup.json"
	backupDB       = "pigp.db"
	backupFormat   = "pigp-backup-1"
	auditKeyFile   = "audit.key"
	checkpointFile = "audit-checkpoints.log"
	// backupDocs is where the procedures for PostgreSQL and S3 live.
	backupDocs = "docs/exploitation.md, section « Sauvegarde et restauration »"
)

// backupMeta is backup.json.
type backupMeta struct {
	Format        string    `json:"format"`
	Version       string    `json:"version"`
	Commit        string    `json:"commit"`
	GoVersion     string    `json:"go_version"`
	CreatedAt     time.Time `json:"created_at"`
	SchemaVersion int       `json:"schema_version"`
	Contents      int       `json:"contents"`
	ContentBytes  int64     `json:"content_bytes"`
	AuditRows     int       `json:"audit_rows"`
	AuditLastHash string    `json:"audit_last_hash"`
	AuditKey      bool      `json:"audit_key"`
	// AuditCheckpoints counts the checkpoints saved (checkpointFile).
	AuditCheckpoints int `json:"audit_checkpoints"`
}

type backupCommand struct{}

func (backupCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("backup")
	var cf configFlags
	cf.register(fs, false)
	out := fs.String("out", "", "directory to write the backup to (must not exist, or be empty)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: pigp backup --out DIR [--config FILE] [--data-dir DIR]")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	dialect, dsn := c.Database()
	if dialect != store.SQLite {
		return pigp.Errorf(pigp.EINVALID, "pigp backup ne copie que la base SQLite embarquée et le stockage local ; "+
			"avec PostgreSQL, sauvegardez la base avec pg_dump ou par archivage continu (PITR) : voir %s", backupDocs)
	}
	if c.Storage.S3() {
		return pigp.Errorf(pigp.EINVALID, "pigp backup ne copie que la base SQLite embarquée et le stockage local ; "+
			"avec storage.kind s3, les contenus sont dans le bucket %s : sauvegardez-le par les moyens du stockage objet "+
			"(versionnement, réplication) : voir %s", c.Storage.Bucket, backupDocs)
	}
	if _, err := os.Stat(dsn); err != nil {
		return pigp.Errorf(pigp.ENOTFOUND, "aucune base de données à sauvegarder dans %s", dsn)
	}
	if err := prepareEmptyDir(*out); err != nil {
		return err
	}
	c.LogLevel = "warn"
	logger := newLogger(c, m.Stderr)
	db, err := store.Open(ctx, dialect, dsn, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	err = func() error {
		if err := db.CheckSchema(ctx); err != nil {
			return err
		}
		key, err := useAuditKey(ctx, db, c.AuditKey, c.AuditKeyPath())
		if err != nil {
			return err
		}
		meta, err := writeBackup(ctx, c.DataDir, auditKeyPath(c), c.AuditCheckpointPath(), key, db, *out, m.Stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "sauvegarde écrite dans %s : base SQLite (schéma %d), %d contenu(s) (%d octets), "+
			"journal d'audit de %d ligne(s)%s, %d point(s) de contrôle ; manifeste %s\n", *out, meta.SchemaVersion, meta.Contents, meta.ContentBytes,
			meta.AuditRows, map[bool]string{true: ", clé d'audit", false: ""}[meta.AuditKey], meta.AuditCheckpoints, backupManifest)
		return nil
	}()
	if err != nil {
		// Leave nothing that could pass for a backup.
		removeContents(*out)
	}
	auditOperator(ctx, m, &App{DB: db, Logger: logger}, err)
	return err
}

// auditKeyPath is where the audit trail's key file is (audit_key_file,
// default DATA_DIR/audit.key). A backup always holds it as audit.key,
// which restore puts in the new data directory.
func auditKeyPath(c config.Config) string {
	return c.AuditKeyPath()
}

// prepareEmptyDir creates dir, or checks that it is an empty directory.
func prepareEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", dir, err)
	case len(entries) > 0:
		return pigp.Errorf(pigp.EINVALID, "le répertoire %s n'est pas vide : choisissez un répertoire nouveau ou vide", dir)
	}
	return nil
}

// removeContents empties dir (a backup or restore that failed half-way).
func removeContents(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// snapshotAttempts bounds the snapshots taken when contents vanish between
// the snapshot and their copy (a response expired or removed meanwhile: its
// row had changed first, so the next snapshot no longer needs it).
const snapshotAttempts = 3

// writeBackup reads the checkpoint file, snapshots the database into out,
// then copies the contents the snapshot refers to, the host keys, the
// audit key and the checkpoints, then writes backup.json and the manifest.
func writeBackup(ctx context.Context, dataDir, auditKey, checkpoints string, key *pigp.AuditKey, db *store.DB, out string, warn io.Writer) (*backupMeta, error) {
	sums := map[string]string{} // backup-relative path → hex SHA-256
	meta := &backupMeta{Format: backupFormat, Version: pigp.Version, Commit: pigp.BuildCommit(), GoVersion: runtime.Version(),
		CreatedAt: time.Now().UTC()}
	// The checkpoints before the snapshot: each attests a state of the
	// chain that the snapshot holds, and is verified against it.
	cpData, err := os.ReadFile(checkpoints)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	cps, err := parseCheckpoints(bytes.NewReader(cpData))
	if err != nil {
		return nil, err
	}
	meta.AuditCheckpoints = len(cps)
	var missing []string
	for attempt := 1; ; attempt++ {
		removeContents(out)
		clear(sums)
		meta.Contents, meta.ContentBytes = 0, 0
		snapshot := filepath.Join(out, backupDB)
		if err := db.BackupInto(ctx, snapshot); err != nil {
			return nil, err
		}
		snap, err := store.Open(ctx, store.SQLite, snapshot, nil)
		if err != nil {
			return nil, err
		}
		missing = missing[:0]
		err = func() error {
			defer snap.Close()
			if meta.SchemaVersion, err = snap.SchemaVersion(ctx); err != nil {
				return err
			}
			if _, err := snap.UseAuditKey(ctx, key); err != nil {
				return err
			}
			rep, err := snap.VerifyAudit(ctx, cps...)
			if err != nil {
				return err
			}
			meta.AuditRows, meta.AuditLastHash = rep.Rows, rep.LastHash
			if !rep.OK() {
				fmt.Fprintf(warn, "pigp backup: ATTENTION, journal d'audit altéré (%d anomalie(s)) : la sauvegarde est écrite, "+
					"mais pigp restore la refusera ; lancez pigp audit verify\n", len(rep.Problems))
			}
			return snap.EachContent(ctx, func(ct store.Content) error {
				if !filepath.IsLocal(filepath.FromSlash(ct.Key)) {
					return fmt.Errorf("content key %q escapes the store", ct.Key)
				}
				rel := path.Join("store", "objects", ct.Key)
				if _, done := sums[rel]; done {
					return nil
				}
				sum, n, err := copyFile(filepath.Join(dataDir, filepath.FromSlash(rel)), filepath.Join(out, filepath.FromSlash(rel)), nil)
				if errors.Is(err, fs.ErrNotExist) {
					if ct.Required {
						missing = append(missing, ct.Key)
					}
					return nil
				}
				if err != nil {
					return err
				}
				if sum != ct.SHA256 {
					return pigp.Errorf(pigp.ECONFLICT, "contenu %s altéré dans le stockage : SHA-256 %s au lieu de %s enregistré ; "+
						"sauvegarde interrompue", ct.Key, sum, ct.SHA256)
				}
				sums[rel] = sum
				meta.Contents++
				meta.ContentBytes += n
				return nil
			})
		}()
		if err != nil {
			return nil, err
		}
		if len(missing) == 0 {
			break
		}
		if attempt == snapshotAttempts {
			sort.Strings(missing)
			return nil, pigp.Errorf(pigp.ECONFLICT, "%d contenu(s) référencé(s) par la base introuvable(s) dans %s (par exemple %s) : "+
				"sauvegarde interrompue", len(missing), filepath.Join(dataDir, "store"), missing[0])
		}
	}
	// The database file is hashed once closed: opening it may have
	// touched its header.
	sum, err := hashFile(filepath.Join(out, backupDB))
	if err != nil {
		return nil, err
	}
	sums[backupDB] = sum
	// Host keys and the audit key: small files, kept as they are.
	keys, _ := filepath.Glob(filepath.Join(dataDir, "hostkeys", "*"))
	for _, k := range keys {
		rel := path.Join("hostkeys", filepath.Base(k))
		if sums[rel], _, err = copyFile(k, filepath.Join(out, filepath.FromSlash(rel)), nil); err != nil {
			return nil, err
		}
	}
	sums[auditKeyFile], _, err = copyFile(auditKey, filepath.Join(out, auditKeyFile), nil)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		delete(sums, auditKeyFile)
	case err != nil:
		return nil, err
	default:
		meta.AuditKey = true
	}
	if cpData != nil {
		if sums[checkpointFile], err = writeFileDurable(filepath.Join(out, checkpointFile), cpData); err != nil {
			return nil, err
		}
	}
	b, _ := json.MarshalIndent(meta, "", "  ")
	if sums[backupInfo], err = writeFileDurable(filepath.Join(out, backupInfo), append(b, '\n')); err != nil {
		return nil, err
	}
	if err := syncTree(out); err != nil {
		return nil, err
	}
	// The manifest last: its presence marks a complete backup.
	var manifest strings.Builder
	paths := make([]string, 0, len(sums))
	for p := range sums {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(&manifest, "%s  %s\n", sums[p], p)
	}
	if _, err := writeFileDurable(filepath.Join(out, backupManifest), []byte(manifest.String())); err != nil {
		return nil, err
	}
	return meta, syncDirectory(out)
}

// copyFile copies src to dst (created, mode 0600, parents 0700), fsyncs it
// and returns the SHA-256 of the bytes written. When want is not nil, the
// hash must equal *want.
func copyFile(src, dst string, want *string) (string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("copy %s: %w", src, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != nil && sum != *want {
		return sum, n, errChecksum
	}
	return sum, n, nil
}

var errChecksum = errors.New("checksum mismatch")

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFileDurable writes b to a new file p, fsynced, and returns its SHA-256.
func writeFileDurable(p string, b []byte) (string, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// syncTree fsyncs every directory under root, so that the new entries are durable.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return syncDirectory(p)
	})
}

func syncDirectory(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// readManifest parses MANIFEST.sha256: "<64 hex>  <relative path>" lines.
func readManifest(dir string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(dir, backupManifest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, pigp.Errorf(pigp.EINVALID, "%s n'est pas une sauvegarde complète de pigp : %s manquant", dir, backupManifest)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		sum, rel, ok := strings.Cut(sc.Text(), "  ")
		if b, err := hex.DecodeString(sum); !ok || err != nil || len(b) != sha256.Size || strings.ToLower(sum) != sum ||
			!filepath.IsLocal(filepath.FromSlash(rel)) || rel == backupManifest || out[rel] != "" {
			return nil, pigp.Errorf(pigp.EINVALID, "%s, ligne %d : ligne invalide", backupManifest, n)
		}
		out[rel] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, need := range []string{backupDB, backupInfo} {
		if out[need] == "" {
			return nil, pigp.Errorf(pigp.EINVALID, "%s ne mentionne pas %s : sauvegarde incomplète", backupManifest, need)
		}
	}
	return out, nil
}
