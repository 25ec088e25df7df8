package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/store"
)

// openAudit gives the database the audit chain's key and anchors a chain
// that is not anchored yet. The key comes from PIGP_AUDIT_KEY, else from
// the key file, which is created (0600, a new random key) only when the
// chain has never been anchored: a missing key for an anchored chain is an
// error, never a reason to start a second one.
func (a *App) openAudit(ctx context.Context) error {
	head, err := a.DB.AuditHead(ctx)
	if err != nil {
		return err
	}
	key, err := loadAuditKey(a.Config.AuditKey, a.Config.AuditKeyPath(), head.KeyID != "")
	if err != nil {
		return err
	}
	if head.KeyID == "" {
		// A chain that was anchored once is never anchored again: its
		// checkpoints outside the database show it, whatever the database
		// now says (wiped, or replaced by an older copy).
		cps, err := readCheckpoints(a.Config.AuditCheckpointPath())
		if err != nil {
			return err
		}
		if len(cps) > 0 {
			return pigp.Errorf(pigp.ECONFLICT, "le journal d'audit de la base n'est pas ancré, mais %s contient %d point(s) de contrôle "+
				"(le dernier atteste %d lignes) : la base a été vidée ou remplacée. Restaurez-la, ou déplacez ce fichier pour ouvrir un nouveau journal",
				a.Config.AuditCheckpointPath(), len(cps), cps[len(cps)-1].Rows)
		}
	}
	anchor, err := a.DB.UseAuditKey(ctx, key)
	if err != nil {
		return err
	}
	if anchor != nil {
		a.Logger.Warn("audit trail anchored under the audit key", "audit_key", key.ID(), "row", anchor.ID, "detail", anchor.Detail)
	}
	return nil
}

// useAuditKey gives db its audit key, for commands that open the database
// themselves (backup, restore): PIGP_AUDIT_KEY (text) or the file at path,
// created only for a chain never anchored.
func useAuditKey(ctx context.Context, db *store.DB, text, path string) (*pigp.AuditKey, error) {
	head, err := db.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	key, err := loadAuditKey(text, path, head.KeyID != "")
	if err != nil {
		return nil, err
	}
	if _, err := db.UseAuditKey(ctx, key); err != nil {
		return nil, err
	}
	return key, nil
}

// auditOperator records the operator action m ran, for commands that open
// the database themselves (backup, restore) and change nothing in it but
// this row; a.DB must have its audit key. A failure is logged.
func auditOperator(ctx context.Context, m *Main, a *App, runErr error) {
	a.op = operatorEvent(m)
	a.finishOperator(ctx, runErr)
}

// loadAuditKey returns the key given in text (PIGP_AUDIT_KEY) or read from
// path. When neither exists and the chain is not anchored yet, a new key
// is written to path with mode 0600.
func loadAuditKey(text, path string, anchored bool) (*pigp.AuditKey, error) {
	if text != "" {
		k, err := pigp.ParseAuditKey(text)
		if err != nil {
			return nil, fmt.Errorf("PIGP_AUDIT_KEY: %w", err)
		}
		return k, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := pigp.ParseAuditKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read audit key: %w", err)
	case anchored:
		return nil, pigp.Errorf(pigp.EUNAVAILABLE, "clé d'audit introuvable (%s) alors que le journal d'audit est ancré sous une clé : "+
			"restaurez le fichier (sauvegarde) ou donnez la clé par PIGP_AUDIT_KEY", path)
	}
	return createAuditKey(path)
}

// createAuditKey writes a new key to path (mode 0600) atomically: a
// temporary file is written and synced, then linked to path, which fails
// if another process created it meanwhile; that one's key is then used.
func createAuditKey(path string) (*pigp.AuditKey, error) {
	k, err := pigp.GenerateAuditKey()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".audit.key-*")
	if err != nil {
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	_, err = tmp.WriteString(k.Text() + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write audit key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadAuditKey("", path, true)
		}
		return nil, fmt.Errorf("install audit key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return k, nil
}

// readCheckpoints returns the checkpoints of the file at path, oldest
// first (none when it does not exist). Lines that hold no checkpoint are
// skipped.
func readCheckpoints(path string) ([]*pigp.AuditCheckpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	defer f.Close()
	return parseCheckpoints(f)
}

// parseCheckpoints returns the checkpoints of the lines of r, in order;
// lines that hold no checkpoint are skipped.
func parseCheckpoints(r io.Reader) ([]*pigp.AuditCheckpoint, error) {
	var out []*pigp.AuditCheckpoint
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if c, err := pigp.ParseAuditCheckpoint(sc.Text()); err == nil {
			out = append(out, c)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}

// checkpointAhead returns the first checkpoint of cps that c does not
// extend: one that attests more rows, or another link for as many (nil:
// c extends them all). Every checkpoint counts, not only the last line:
// an older checkpoint appended again to the file (to an append-only file,
// that is all an intruder can do) cannot re-anchor the chain on the
// older state it attests.
func checkpointAhead(cps []*pigp.AuditCheckpoint, c *pigp.AuditCheckpoint) *pigp.AuditCheckpoint {
	for _, p := range cps {
		if p.Rows > c.Rows || (p.Rows == c.Rows && p.Last != c.Last) {
			return p
		}
	}
	return nil
}

// writeCheckpoint seals a checkpoint of the chain as of now, appends it to
// the checkpoint file (0600, synced) and logs it: the log line and the file
// are copies outside the database an operator can keep. A chain that went
// back behind any checkpoint of the file (fewer rows, or another link for
// the same row count) is not attested: that is an alarm.
func (a *App) writeCheckpoint(ctx context.Context, now time.Time) (*pigp.AuditCheckpoint, error) {
	c, err := a.DB.AuditCheckpoint(ctx, now)
	if err != nil {
		a.Logger.Error("audit checkpoint refused", "error", err)
		return nil, err
	}
	path := a.Config.AuditCheckpointPath()
	cps, err := readCheckpoints(path)
	if err != nil {
		return nil, err
	}
	if p := checkpointAhead(cps, c); p != nil {
		err := pigp.Errorf(pigp.ECONFLICT, "journal d'audit raccourci ou réécrit : le point de contrôle du %s attestait %d lignes, il en a %d ; "+
			"lancez `pigp audit verify`", p.Time.Format(time.RFC3339), p.Rows, c.Rows)
		a.Logger.Error("audit checkpoint refused: the trail went back", "previous_rows", p.Rows, "rows", c.Rows)
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write audit checkpoint: %w", err)
	}
	_, err = fmt.Fprintln(f, c.String())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write audit checkpoint: %w", err)
	}
	a.Logger.Info("audit checkpoint", "checkpoint", c.String())
	return c, nil
}

// checkpointsFrom reads checkpoints given on the command line: each value
// is a checkpoint line, or the path of a file of them.
func checkpointsFrom(values []string) ([]*pigp.AuditCheckpoint, error) {
	var out []*pigp.AuditCheckpoint
	for _, v := range values {
		if strings.Contains(v, "pigp-audit-checkpoint/") {
			c, err := pigp.ParseAuditCheckpoint(v)
			if err != nil {
				return nil, usagef("--checkpoint: %v", err)
			}
			out = append(out, c)
			continue
		}
		if _, err := os.Stat(v); err != nil {
			return nil, usagef("--checkpoint %q: neither a checkpoint line nor a readable file", v)
		}
		cps, err := readCheckpoints(v)
		if err != nil {
			return nil, err
		}
		if len(cps) == 0 {
			return nil, usagef("--checkpoint %s: no checkpoint in the file", v)
		}
		out = append(out, cps...)
	}
	return out, nil
}
