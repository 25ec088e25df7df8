package store

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/pigp/pigp"
)

// The audit trail is append-only and chained: row n carries the link of
// row n-1 (PrevHash) and its own link (Hash). Since the trail is keyed, a
// link is an HMAC-SHA256 under the audit key (pigp.AuditKey.Link), which is
// never in the database; the rows before the anchor row (a trail written
// before keyed links) keep their plain SHA-256 links, locked in by the
// anchor row's keyed link over the last of them. Ids are dense (1, 2, 3, …)
// and given by the chain, so a deleted or inserted row breaks it.
//
// The one-row audit_head table holds the last id and link, the key's id,
// the anchor row's id and an HMAC over them. Every append first updates it,
// which takes SQLite's write lock or PostgreSQL's row lock before the
// previous link is read, so concurrent writers, on one node or several,
// queue up instead of forking the chain. State changes that are audited
// run in the same transaction as their rows (audited).

type auditRow struct {
	ID       int64 `gorm:"primaryKey;autoIncrement:false"`
	At       time.Time
	Action   string
	Outcome  string
	Login    string
	SIRET    string `gorm:"column:siret"`
	IP       string `gorm:"column:ip"`
	Protocol string
	Object   string
	SHA256   string `gorm:"column:sha256"`
	Detail   string
	PrevHash string
	Hash     string
}

func (auditRow) TableName() string { return "audit_events" }

type auditHeadRow struct {
	ID       int64 `gorm:"primaryKey;autoIncrement:false"`
	LastID   int64
	LastHash string
	KeyID    string
	AnchorID int64
	MAC      string `gorm:"column:mac"`
}

func (auditHeadRow) TableName() string { return "audit_head" }

func (h *auditHeadRow) head() *pigp.AuditHead {
	return &pigp.AuditHead{LastID: h.LastID, LastHash: h.LastHash, KeyID: h.KeyID, AnchorID: h.AnchorID, MAC: h.MAC}
}

func (r *auditRow) event() *pigp.AuditEvent {
	return &pigp.AuditEvent{ID: r.ID, Time: r.At.UTC(), Action: r.Action, Outcome: r.Outcome, Login: r.Login,
		SIRET: r.SIRET, IP: r.IP, Protocol: r.Protocol, Object: r.Object, SHA256: r.SHA256, Detail: r.Detail,
		PrevHash: r.PrevHash, Hash: r.Hash}
}

// errNoAuditKey is returned by appends before UseAuditKey.
var errNoAuditKey = errors.New("audit key not set: call UseAuditKey first")

// AuditHead returns the chain's head as stored (KeyID is "" while the
// chain is not anchored under a key).
func (db *DB) AuditHead(ctx context.Context) (*pigp.AuditHead, error) {
	var head auditHeadRow
	if err := db.with(ctx).Where("id = ?", 1).Take(&head).Error; err != nil {
		return nil, fmt.Errorf("read audit head: %w", err)
	}
	return head.head(), nil
}

// UseAuditKey makes k the key of the audit chain; every append and every
// verification needs it. A chain not anchored yet (a new database, or a
// trail written before keyed links) is anchored now, in one transaction:
// its unkeyed rows are verified and a first keyed row (pigp.AuditAnchor)
// records how many there were, their last link and what the verification
// found; that row is returned (nil when the chain was already anchored
// under k). A chain anchored under another key is refused (ECONFLICT):
// appending under a second key would break it.
func (db *DB) UseAuditKey(ctx context.Context, k *pigp.AuditKey) (*pigp.AuditEvent, error) {
	var anchor *pigp.AuditEvent
	err := db.with(ctx).Transaction(func(tx *gorm.DB) error {
		head, err := lockHead(tx)
		if err != nil {
			return err
		}
		switch head.KeyID {
		case k.ID():
			return nil
		case "":
		default:
			return wrongKey(head.KeyID, k)
		}
		rep := &pigp.AuditReport{}
		if err := walkAudit(tx, rep, func(e *pigp.AuditEvent) string { return e.ComputeHash() }, nil); err != nil {
			return err
		}
		if head.LastID != rep.LastID || head.LastHash != rep.LastHash {
			rep.Problems = append(rep.Problems, fmt.Sprintf("la tête de chaîne (ligne %d) ne correspond pas à la dernière ligne (%d)", head.LastID, rep.LastID))
		}
		anchor = &pigp.AuditEvent{Action: pigp.AuditAnchor, Outcome: pigp.AuditOK, Object: "clé " + k.ID(), Time: db.now()}
		switch {
		case rep.Rows == 0:
			anchor.Detail = "journal d'audit ouvert, chaîné par HMAC sous la clé " + k.ID()
		case rep.OK():
			anchor.Detail = fmt.Sprintf("journal ré-ancré sous la clé %s : %d ligne(s) antérieure(s) chaînées par SHA-256 sans clé, vérifiées intègres, dernière empreinte %s",
				k.ID(), rep.Rows, rep.LastHash)
		default:
			anchor.Outcome = pigp.AuditFailed
			anchor.Detail = fmt.Sprintf("journal ré-ancré sous la clé %s : %d ligne(s) antérieure(s) chaînées par SHA-256 sans clé, %d anomalie(s) dont : %s",
				k.ID(), rep.Rows, len(rep.Problems), rep.Problems[0])
		}
		anchor.Normalize()
		anchor.ID, anchor.PrevHash = rep.LastID+1, rep.LastHash
		anchor.Hash = k.Link(anchor)
		if err := tx.Create(rowOf(anchor)).Error; err != nil {
			return fmt.Errorf("append audit anchor: %w", err)
		}
		h := &pigp.AuditHead{LastID: anchor.ID, LastHash: anchor.Hash, KeyID: k.ID(), AnchorID: anchor.ID}
		h.MAC = k.HeadMAC(h)
		return tx.Model(&auditHeadRow{}).Where("id = ?", 1).Updates(map[string]any{
			"last_id": h.LastID, "last_hash": h.LastHash, "key_id": h.KeyID, "anchor_id": h.AnchorID, "mac": h.MAC}).Error
	})
	if err != nil {
		return nil, err
	}
	db.auditKey = k
	return anchor, nil
}

func wrongKey(stored string, k *pigp.AuditKey) error {
	return pigp.Errorf(pigp.ECONFLICT, "clé d'audit incorrecte : le journal est chaîné sous la clé %s, la clé fournie est %s "+
		"(mauvais fichier audit_key_file ou PIGP_AUDIT_KEY, ou identifiant de clé modifié dans la base)", stored, k.ID())
}

func rowOf(e *pigp.AuditEvent) *auditRow {
	return &auditRow{ID: e.ID, At: e.Time, Action: e.Action, Outcome: e.Outcome, Login: e.Login, SIRET: e.SIRET,
		IP: e.IP, Protocol: e.Protocol, Object: e.Object, SHA256: e.SHA256, Detail: e.Detail,
		PrevHash: e.PrevHash, Hash: e.Hash}
}

// Audit appends e to the audit trail and sets its ID, time (when zero),
// PrevHash and Hash. It implements pigp.Auditor.
func (db *DB) Audit(ctx context.Context, e *pigp.AuditEvent) error {
	return db.AuditMany(ctx, []*pigp.AuditEvent{e})
}

// AuditMany appends events to the audit trail in one transaction, in order,
// chaining each to the previous one (batch jobs: one lock and one commit
// for many rows).
func (db *DB) AuditMany(ctx context.Context, events []*pigp.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	return db.audited(ctx, events, nil)
}

// prepare sets the time of events that have none and normalises them.
func (db *DB) prepare(events []*pigp.AuditEvent) {
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = db.now()
		}
		e.Normalize()
	}
}

// audited runs fn and appends the audit rows events, plus those fn
// returns, in one transaction: the state change and its rows are committed
// together or not at all. fn may be nil.
//
// When the chain's lock is taken depends on the database. SQLite has one
// writer at a time anyway and wants the transaction's first statement to
// be a write (a read first makes the later upgrade fail when another
// process wrote meanwhile): the lock is taken first. PostgreSQL locks rows:
// the lock is taken last, once fn's changes are made, so that it is held
// for the append only; as no transaction waits for another lock while it
// holds the chain's, this order cannot deadlock.
func (db *DB) audited(ctx context.Context, events []*pigp.AuditEvent, fn func(tx *gorm.DB) ([]*pigp.AuditEvent, error)) error {
	if len(events) > 0 && db.auditKey == nil {
		return errNoAuditKey
	}
	db.prepare(events)
	err := db.with(ctx).Transaction(func(tx *gorm.DB) error {
		var head *auditHeadRow
		if db.dialect != Postgres {
			h, err := lockHead(tx)
			if err != nil {
				return err
			}
			head = h
		}
		all := events
		if fn != nil {
			more, err := fn(tx)
			if err != nil {
				return err
			}
			more = slices.DeleteFunc(more, func(e *pigp.AuditEvent) bool { return e == nil })
			db.prepare(more)
			all = append(append([]*pigp.AuditEvent(nil), events...), more...)
		}
		if len(all) == 0 {
			return nil
		}
		if head == nil {
			h, err := lockHead(tx)
			if err != nil {
				return err
			}
			head = h
		}
		return db.appendHead(tx, head, all)
	})
	if err != nil && len(events) > 0 && fn == nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	return err
}

// withAudit runs fn in a transaction, audited when events are given (a
// plain transaction otherwise, for callers that record no audit row).
func (db *DB) withAudit(ctx context.Context, events []*pigp.AuditEvent, fn func(tx *gorm.DB) error) error {
	if len(events) == 0 {
		return db.with(ctx).Transaction(fn)
	}
	return db.audited(ctx, events, func(tx *gorm.DB) ([]*pigp.AuditEvent, error) { return nil, fn(tx) })
}

// lockHead takes the chain's lock (SQLite's write lock, PostgreSQL's row
// lock on the head, held until the transaction ends) and reads the head,
// in one statement.
func lockHead(tx *gorm.DB) (*auditHeadRow, error) {
	var heads []auditHeadRow
	err := tx.Raw("UPDATE audit_head SET last_id = last_id WHERE id = 1 RETURNING id, last_id, last_hash, key_id, anchor_id, mac").
		Scan(&heads).Error
	if err != nil {
		return nil, fmt.Errorf("lock audit chain: %w", err)
	}
	if len(heads) != 1 {
		return nil, errors.New("lock audit chain: head row missing")
	}
	return &heads[0], nil
}

// appendLocked chains events after the head, within tx, taking the
// chain's lock itself: for a transaction that did its work first.
func (db *DB) appendLocked(tx *gorm.DB, events []*pigp.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	head, err := lockHead(tx)
	if err != nil {
		return err
	}
	return db.appendHead(tx, head, events)
}

// appendHead chains events after head, which tx holds locked.
func (db *DB) appendHead(tx *gorm.DB, head *auditHeadRow, events []*pigp.AuditEvent) error {
	k := db.auditKey
	if k == nil {
		return errNoAuditKey
	}
	if head.KeyID != k.ID() {
		return wrongKey(head.KeyID, k)
	}
	rows := make([]auditRow, len(events))
	last, prev := head.LastID, head.LastHash
	for i, e := range events {
		last++
		e.ID, e.PrevHash = last, prev
		e.Hash = k.Link(e)
		prev = e.Hash
		rows[i] = *rowOf(e)
	}
	if err := tx.CreateInBatches(rows, 200).Error; err != nil {
		return fmt.Errorf("append audit rows: %w", err)
	}
	h := &pigp.AuditHead{LastID: last, LastHash: prev, KeyID: head.KeyID, AnchorID: head.AnchorID}
	h.MAC = k.HeadMAC(h)
	return tx.Model(&auditHeadRow{}).Where("id = ?", 1).
		Updates(map[string]any{"last_id": h.LastID, "last_hash": h.LastHash, "mac": h.MAC}).Error
}

// ListAudit returns the audit rows of the filter in chain order, all in
// memory (tests, small windows); EachAudit streams them.
func (db *DB) ListAudit(ctx context.Context, f pigp.AuditFilter) ([]*pigp.AuditEvent, error) {
	if f.SIRETs != nil && len(f.SIRETs) == 0 {
		return nil, nil
	}
	var rows []auditRow
	if err := auditWhere(db.with(ctx).Order("id"), f).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	out := make([]*pigp.AuditEvent, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// auditWindow is how many consecutive ids EachAudit reads at once: a
// page is a range of the chain, so that each query walks a bounded range
// of the primary key whatever the share of the rows the filter keeps (a
// LIMIT over a selective filter makes the database scan and sort the rest
// of the trail for each page).
const auditWindow = 1000

// EachAudit calls fn with each audit row of the filter, in chain order,
// reading the chain auditWindow ids at a time (no transaction held between
// reads), so that an export of a long trail never holds it in memory. It
// reads the rows committed when it starts, up to the chain's head of that
// moment: rows appended meanwhile are left out. The period first narrows
// the ids read (the first row at or after From, the last before To: row
// times need not grow with ids, nodes' clocks differ). It stops at the
// first error of fn and returns it.
func (db *DB) EachAudit(ctx context.Context, f pigp.AuditFilter, fn func(e *pigp.AuditEvent) error) error {
	if f.SIRETs != nil && len(f.SIRETs) == 0 {
		return nil
	}
	head, err := db.AuditHead(ctx)
	if err != nil {
		return err
	}
	first, last := int64(1), head.LastID
	bound := func(agg, cond string, t time.Time) (int64, bool, error) {
		var id sql.NullInt64
		err := db.with(ctx).Model(&auditRow{}).Select(agg).Where("id <= ?", last).Where(cond, utc(t)).Scan(&id).Error
		if err != nil {
			return 0, false, fmt.Errorf("read audit events: %w", err)
		}
		return id.Int64, id.Valid, nil
	}
	if !f.From.IsZero() {
		id, ok, err := bound("MIN(id)", "at >= ?", f.From)
		if !ok || err != nil {
			return err
		}
		first = id
	}
	if !f.To.IsZero() {
		id, ok, err := bound("MAX(id)", "at < ?", f.To)
		if !ok || err != nil {
			return err
		}
		last = id
	}
	for lo := first; lo <= last; lo += auditWindow {
		var rows []auditRow
		q := auditWhere(db.with(ctx).Where("id >= ? AND id <= ?", lo, min(lo+auditWindow-1, last)), f).Order("id")
		if err := q.Find(&rows).Error; err != nil {
			return fmt.Errorf("read audit events: %w", err)
		}
		for i := range rows {
			if err := fn(rows[i].event()); err != nil {
				return err
			}
		}
	}
	return nil
}

// auditWhere restricts q to the rows of f. A row's SIRET field holds one
// SIRET or several separated by commas (an operator's --siret may hold
// spaces too): it is matched as a list, so that a SIRET never matches
// part of another.
func auditWhere(q *gorm.DB, f pigp.AuditFilter) *gorm.DB {
	if !f.From.IsZero() {
		q = q.Where("at >= ?", utc(f.From))
	}
	if !f.To.IsZero() {
		q = q.Where("at < ?", utc(f.To))
	}
	if f.SIRETs != nil {
		if len(f.SIRETs) == 0 {
			return q.Where("1 = 0")
		}
		conds := make([]string, len(f.SIRETs))
		args := make([]any, len(f.SIRETs))
		for i, s := range f.SIRETs {
			conds[i] = `(',' || REPLACE(siret, ' ', '') || ',') LIKE ? ESCAPE '\'`
			args[i] = "%," + likeEscaper.Replace(s) + ",%"
		}
		q = q.Where("("+strings.Join(conds, " OR ")+")", args...)
	}
	return q
}

// likeEscaper escapes the wildcards of a LIKE pattern (ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// maxAuditProblems bounds the problems a verification lists.
const maxAuditProblems = 20

// walkAudit reads every row in id order within tx and checks the chain:
// dense ids, each previous link equal to the link of the row before, each
// link equal to link(row). It fills rep's Rows, LastID and LastHash and
// calls visit for every row.
func walkAudit(tx *gorm.DB, rep *pigp.AuditReport, link func(e *pigp.AuditEvent) string, visit func(e *pigp.AuditEvent)) error {
	var rows []auditRow
	prevID, prevHash := int64(0), ""
	err := tx.Order("id").FindInBatches(&rows, 1000, func(_ *gorm.DB, _ int) error {
		for i := range rows {
			e := rows[i].event()
			rep.Rows++
			if e.ID != prevID+1 {
				problem(rep, "ligne %d : rupture de séquence après la ligne %d (ligne supprimée, insérée ou déplacée)", e.ID, prevID)
			}
			if e.PrevHash != prevHash {
				problem(rep, "ligne %d : le lien précédent ne correspond pas à la ligne %d (ligne supprimée, insérée ou déplacée)", e.ID, prevID)
			}
			if h := link(e); !hmac.Equal([]byte(h), []byte(e.Hash)) {
				problem(rep, "ligne %d : contenu modifié ou lien recalculé sans la clé (lien attendu %.12s…, enregistré %.12s…)", e.ID, h, e.Hash)
			}
			if visit != nil {
				visit(e)
			}
			prevID, prevHash = e.ID, e.Hash
		}
		return nil
	}).Error
	if err != nil {
		return fmt.Errorf("read audit events: %w", err)
	}
	rep.LastID, rep.LastHash = prevID, prevHash
	return nil
}

func problem(rep *pigp.AuditReport, format string, args ...any) {
	if len(rep.Problems) < maxAuditProblems {
		rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
	}
}

// VerifyAudit walks the whole chain in one read snapshot (a read-only
// REPEATABLE READ transaction on PostgreSQL, one read transaction on
// SQLite), so that rows appended meanwhile never look like a break. It
// needs the key (UseAuditKey) and refuses another one. It reports:
//
//   - a row whose link does not match its content under the key (edited,
//     or the chain recomputed without the key), and before the anchor a row
//     whose SHA-256 does not match;
//   - a gap in the ids or a previous link that does not match (a row
//     deleted, inserted or moved);
//   - a head whose HMAC, last id or last link does not match (a tail cut
//     and the head fixed up without the key);
//   - a checkpoint (sealed with the key) whose row is missing or has
//     another link (a tail cut back to an older, genuine head; a rewrite).
//
// Checkpoints sealed with another key or not at all are reported too.
func (db *DB) VerifyAudit(ctx context.Context, checkpoints ...*pigp.AuditCheckpoint) (*pigp.AuditReport, error) {
	k := db.auditKey
	if k == nil {
		return nil, errNoAuditKey
	}
	rep := &pigp.AuditReport{KeyID: k.ID()}
	byRow := map[int64][]*pigp.AuditCheckpoint{}
	for _, c := range checkpoints {
		if !k.CheckCheckpoint(c) {
			problem(rep, "point de contrôle du %s (%d lignes) : sceau invalide ou autre clé (%s) : ce point de contrôle ne prouve rien",
				c.Time.Format(auditTimeFormatFR), c.Rows, c.KeyID)
			continue
		}
		byRow[c.Rows] = append(byRow[c.Rows], c)
		rep.Checkpoints++
	}
	var opts *sql.TxOptions
	if db.dialect == Postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	err := db.with(ctx).Transaction(func(tx *gorm.DB) error {
		var head auditHeadRow
		if err := tx.Where("id = ?", 1).Take(&head).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				problem(rep, "tête de chaîne absente")
				return nil
			}
			return fmt.Errorf("read audit head: %w", err)
		}
		if head.KeyID != k.ID() {
			return wrongKey(head.KeyID, k)
		}
		rep.AnchorID = head.AnchorID
		anchorSeen := false
		link := func(e *pigp.AuditEvent) string {
			if e.ID < head.AnchorID {
				return e.ComputeHash()
			}
			return k.Link(e)
		}
		visit := func(e *pigp.AuditEvent) {
			if e.ID == head.AnchorID {
				anchorSeen = true
				if e.Action != pigp.AuditAnchor {
					problem(rep, "ligne %d : la ligne d'ancrage a été remplacée (action %q)", e.ID, e.Action)
				}
			}
			for _, c := range byRow[e.ID] {
				if !hmac.Equal([]byte(c.Last), []byte(e.Hash)) {
					problem(rep, "ligne %d : ne correspond pas au point de contrôle du %s (journal réécrit)", e.ID, c.Time.Format(auditTimeFormatFR))
				}
			}
		}
		if err := walkAudit(tx, rep, link, visit); err != nil {
			return err
		}
		if !anchorSeen {
			problem(rep, "ligne d'ancrage %d absente", head.AnchorID)
		}
		h := head.head()
		switch {
		case !hmac.Equal([]byte(h.MAC), []byte(k.HeadMAC(h))):
			problem(rep, "tête de chaîne (ligne %d) falsifiée : son sceau ne correspond pas (fin de journal supprimée et tête recalée sans la clé ?)", head.LastID)
		case head.LastID != rep.LastID || head.LastHash != rep.LastHash:
			problem(rep, "la tête de chaîne (ligne %d) ne correspond pas à la dernière ligne (%d) : fin de journal supprimée ?", head.LastID, rep.LastID)
		}
		for rows, cs := range byRow {
			if rows > rep.LastID {
				for _, c := range cs {
					problem(rep, "fin de journal supprimée : le point de contrôle du %s atteste %d ligne(s), il n'en reste que %d",
						c.Time.Format(auditTimeFormatFR), c.Rows, rep.LastID)
				}
			}
		}
		return nil
	}, opts)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// auditTimeFormatFR writes times in the problems of a verification.
const auditTimeFormatFR = "2006-01-02 15:04:05Z"

// AuditCheckpoint returns a checkpoint of the chain as of now, sealed with
// the key: the head's last id and link. A head whose seal does not verify
// is not attested (its tail may have been cut): ECONFLICT.
func (db *DB) AuditCheckpoint(ctx context.Context, now time.Time) (*pigp.AuditCheckpoint, error) {
	k := db.auditKey
	if k == nil {
		return nil, errNoAuditKey
	}
	h, err := db.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	if h.KeyID != k.ID() {
		return nil, wrongKey(h.KeyID, k)
	}
	if !hmac.Equal([]byte(h.MAC), []byte(k.HeadMAC(h))) {
		return nil, pigp.Errorf(pigp.ECONFLICT, "tête du journal d'audit falsifiée (ligne %d) : point de contrôle refusé, lancez `pigp audit verify`", h.LastID)
	}
	c := &pigp.AuditCheckpoint{Time: now, Rows: h.LastID, Last: h.LastHash}
	k.SignCheckpoint(c)
	return c, nil
}
