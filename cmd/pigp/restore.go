package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/store"
)

type restoreCommand struct{}

// Run restores a backup made by `pigp backup` into a new data directory:
// every file is checked against the manifest while it is copied, then the
// restored database's audit chain is verified and every content its rows
// refer to is checked against the SHA-256 they recorded. On any failure the
// new directory is emptied again. `pigp serve --data-dir NEW` then starts
// on it.
func (restoreCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("restore")
	var cf configFlags
	cf.register(fs, false)
	from := fs.String("from", "", "backup directory written by pigp backup")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: pigp restore --from DIR --data-dir NEW [--config FILE]")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *from == "" {
		return usagef("--from is required")
	}
	if cf.dataDir == "" {
		return usagef("--data-dir is required: the new data directory (must not exist, or be empty)")
	}
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	if c.DatabaseURL != "" {
		return pigp.Errorf(pigp.EINVALID, "pigp restore écrit la base SQLite embarquée dans le répertoire de données : "+
			"retirez database_url (PIGP_DATABASE_URL) ; pour PostgreSQL, voir %s", backupDocs)
	}
	manifest, err := readManifest(*from)
	if err != nil {
		return err
	}
	if err := unlisted(*from, manifest); err != nil {
		return err
	}
	var meta backupMeta
	if b, err := os.ReadFile(filepath.Join(*from, backupInfo)); err != nil {
		return err
	} else if err := json.Unmarshal(b, &meta); err != nil || meta.Format != backupFormat {
		return pigp.Errorf(pigp.EINVALID, "%s : format de sauvegarde inconnu", filepath.Join(*from, backupInfo))
	}
	if err := prepareEmptyDir(c.DataDir); err != nil {
		return err
	}
	c.LogLevel = "warn"
	logger := newLogger(c, m.Stderr)
	files, err := restoreInto(ctx, *from, c.DataDir, manifest)
	var rows int
	if err == nil {
		rows, err = checkRestored(ctx, m, c, manifest, logger)
	}
	if err != nil {
		removeContents(c.DataDir)
		return err
	}
	fmt.Fprintf(m.Stdout, "sauvegarde du %s restaurée dans %s : %d fichier(s) vérifié(s), journal d'audit intègre (%d ligne(s)) ; "+
		"démarrez avec pigp serve --data-dir %s\n", meta.CreatedAt.Format("2006-01-02 15:04:05 MST"), c.DataDir, files, rows, c.DataDir)
	return nil
}

// unlisted refuses a backup directory holding files its manifest does not
// list (something was added: it would be restored unchecked).
func unlisted(dir string, manifest map[string]string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel != backupManifest && manifest[rel] == "" {
			return pigp.Errorf(pigp.EINVALID, "%s n'est pas dans %s : sauvegarde modifiée, restauration refusée", rel, backupManifest)
		}
		return nil
	})
}

// restoreInto copies every file of the manifest, checking its SHA-256 as it
// goes, and returns how many there were.
func restoreInto(ctx context.Context, from, to string, manifest map[string]string) (int, error) {
	paths := make([]string, 0, len(manifest))
	for p := range manifest {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		want := manifest[p]
		_, _, err := copyFile(filepath.Join(from, filepath.FromSlash(p)), filepath.Join(to, filepath.FromSlash(p)), &want)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return 0, pigp.Errorf(pigp.EINVALID, "%s manque dans la sauvegarde : restauration refusée", p)
		case errors.Is(err, errChecksum):
			return 0, pigp.Errorf(pigp.ECONFLICT, "%s ne correspond pas à son empreinte SHA-256 du manifeste : "+
				"sauvegarde altérée, restauration refusée", p)
		case err != nil:
			return 0, err
		}
	}
	return len(paths), syncTree(to)
}

// checkRestored opens the restored database (bringing its schema up to
// date), verifies its audit chain and checks every content its rows refer
// to against the SHA-256 they recorded. The restore is then recorded in
// the restored audit trail.
func checkRestored(ctx context.Context, m *Main, c config.Config, manifest map[string]string, logger *slog.Logger) (int, error) {
	dataDir := c.DataDir
	db, err := store.Open(ctx, store.SQLite, filepath.Join(dataDir, backupDB), logger)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return 0, err
	}
	if v > store.LatestVersion() {
		return 0, pigp.Errorf(pigp.EINVALID, "sauvegarde d'une version plus récente de pigp (schéma %d, celle-ci connaît %d) : "+
			"restaurez avec la version qui l'a faite", v, store.LatestVersion())
	}
	if _, err := db.Migrate(ctx); err != nil {
		return 0, err
	}
	// The key restored with the backup (or PIGP_AUDIT_KEY): without it the
	// chain cannot be verified, and the restore is refused.
	keyPath := filepath.Join(dataDir, auditKeyFile)
	if _, err := os.Stat(keyPath); err != nil {
		keyPath = c.AuditKeyPath()
	}
	if _, err := useAuditKey(ctx, db, c.AuditKey, keyPath); err != nil {
		return 0, err
	}
	// The checkpoints saved with the backup attest states of its chain.
	cps, err := readCheckpoints(filepath.Join(dataDir, checkpointFile))
	if err != nil {
		return 0, err
	}
	rep, err := db.VerifyAudit(ctx, cps...)
	if err != nil {
		return 0, err
	}
	if !rep.OK() {
		for _, p := range rep.Problems {
			fmt.Fprintln(m.Stderr, p)
		}
		return 0, pigp.Errorf(pigp.ECONFLICT, "journal d'audit de la sauvegarde altéré : %d anomalie(s) sur %d ligne(s), restauration refusée",
			len(rep.Problems), rep.Rows)
	}
	err = db.EachContent(ctx, func(ct store.Content) error {
		sum, ok := manifest[path.Join("store", "objects", ct.Key)]
		switch {
		case !ok && ct.Required:
			return pigp.Errorf(pigp.ECONFLICT, "le contenu %s, enregistré dans la base, manque dans la sauvegarde : restauration refusée", ct.Key)
		case ok && sum != ct.SHA256:
			return pigp.Errorf(pigp.ECONFLICT, "le contenu %s ne correspond pas au SHA-256 enregistré dans la base : restauration refusée", ct.Key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := restoreCheckpoints(m, c, rep.Rows); err != nil {
		return 0, err
	}
	auditOperator(ctx, m, &App{DB: db, Logger: logger}, nil)
	return rep.Rows, nil
}

// restoreCheckpoints puts the backup's checkpoints, restored under the new
// data directory, where audit_checkpoint_file says when that is elsewhere:
// they are appended to that file, whose lines all stay (a restore never
// takes a checkpoint away). A checkpoint there that attests more rows than
// the restored chain (kept since the backup) is reported: the procedure
// after restoring an older copy follows (docs/exploitation.md, 3.5).
func restoreCheckpoints(m *Main, c config.Config, rows int) error {
	restored := filepath.Join(c.DataDir, checkpointFile)
	target := c.AuditCheckpointPath()
	if filepath.Clean(target) != filepath.Clean(restored) {
		b, err := os.ReadFile(restored)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := appendMissingLines(target, b); err != nil {
			return fmt.Errorf("restore audit checkpoints into %s: %w", target, err)
		}
	}
	cps, err := readCheckpoints(target)
	if err != nil {
		return err
	}
	for _, p := range cps {
		if p.Rows > int64(rows) {
			fmt.Fprintf(m.Stderr, "pigp restore: ATTENTION, %s atteste %d ligne(s) du journal d'audit (point de contrôle du %s), "+
				"la base restaurée en a %d : de nouveaux points de contrôle seront refusés. Consignez la restauration, déplacez ce fichier "+
				"(gardez-le) puis lancez pigp audit checkpoint --new\n", target, p.Rows, p.Time.Format(time.RFC3339), rows)
			break
		}
	}
	return nil
}

// appendMissingLines appends to the file at path (created 0600) the
// non-empty lines of b it does not hold yet, and syncs it.
func appendMissingLines(path string, b []byte) error {
	have := map[string]bool{}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, l := range strings.Split(string(old), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var add strings.Builder
	if len(old) > 0 && old[len(old)-1] != '\n' {
		add.WriteString("\n")
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !have[l] {
			have[l] = true
			add.WriteString(l + "\n")
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(add.String())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
