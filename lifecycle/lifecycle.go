// Package lifecycle keeps the exchange within its rules over time: it
// expires responses after the retention period and deletes their content,
// marks expired passwords and sends reminders before expiry, notifies
// départements by e-mail when an answer is available, and removes
// abandoned uploads and orphaned content. Every job takes the time it runs
// "as of", so tests move time instead of sleeping, and every job is
// idempotent: killed half-way and run again, it finishes the work once.
package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
)

// Store is what the jobs need from the database.
type Store interface {
	// ExpireResponses and ExpirePasswords record the audit row of each
	// expiry (audit, when not nil) in the transaction of the change.
	ExpireResponses(ctx context.Context, now time.Time, limit int, audit func(r *pigp.Response) *pigp.AuditEvent) ([]*pigp.Response, error)
	ResponsesToPurge(ctx context.Context, limit int) ([]*pigp.Response, error)
	MarkContentDeleted(ctx context.Context, ids []string, now time.Time) error
	ExpirePasswords(ctx context.Context, now time.Time, audit func(a *pigp.Account) *pigp.AuditEvent) ([]*pigp.Account, error)
	AccountsExpiringBetween(ctx context.Context, from, to time.Time) ([]*pigp.Account, error)
	StorageKeysInUse(ctx context.Context, keys []string) (map[string]bool, error)
	PruneTicks(ctx context.Context, before time.Time) (int64, error)
	// SweepSessions and SweepFailures delete the portal sessions and the
	// login failure counters that have expired at now.
	SweepSessions(ctx context.Context, now time.Time) (int, error)
	SweepFailures(ctx context.Context, now time.Time) (int, error)
	FindAccountByID(ctx context.Context, id int64) (*pigp.Account, error)
	CreateNotification(ctx context.Context, n *pigp.Notification) (bool, error)
	DueNotifications(ctx context.Context, now time.Time, limit int) ([]*pigp.Notification, error)
	UpdateNotification(ctx context.Context, n *pigp.Notification) error
}

// Sender delivers one e-mail. It is nil when no SMTP server is configured.
type Sender interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Lifecycle holds the jobs' settings.
type Lifecycle struct {
	Store Store
	// Blobs holds the contents; Spool is this node's local directory of
	// uploads in progress (nil: none, no temporary file is swept).
	Blobs  blob.Backend
	Spool  *blob.Store
	Sender Sender // nil: notifications are logged and recorded as not sent
	Logger *slog.Logger

	ReminderDays []int         // days before password expiry a reminder goes out (30, 7)
	TempMaxAge   time.Duration // abandoned uploads (and S3 multipart uploads) older than this are removed (1 day)
	OrphanMinAge time.Duration // stored content with no row older than this is removed (1 hour)
	BatchSize    int           // rows per transaction
	MaxAttempts  int           // sending attempts before a notification fails
	PortalURL    string        // named in messages, when set
	// Audit, when true, records each expiry in the audit trail, in the
	// transaction of the change: no expiry without its row.
	Audit bool
}

// expiryEvent is the audit row of an expired response.
func expiryEvent(r *pigp.Response) *pigp.AuditEvent {
	return &pigp.AuditEvent{Action: pigp.AuditExpiry, Outcome: pigp.AuditOK, SIRET: r.SIRET,
		Protocol: "JOB", Object: r.Name, SHA256: r.SHA256, Detail: "réponse " + r.ID}
}

// passwordExpiryEvent is the audit row of an expired password.
func passwordExpiryEvent(a *pigp.Account) *pigp.AuditEvent {
	return &pigp.AuditEvent{Action: pigp.AuditPasswordExpired, Outcome: pigp.AuditOK, Login: a.Login,
		SIRET: strings.Join(a.SIRETs, ","), Protocol: "JOB"}
}

// New returns a Lifecycle with the default settings.
func New(st Store, blobs blob.Backend, spool *blob.Store, logger *slog.Logger) *Lifecycle {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Lifecycle{Store: st, Blobs: blobs, Spool: spool, Logger: logger, ReminderDays: []int{30, 7},
		TempMaxAge: 24 * time.Hour, OrphanMinAge: time.Hour, BatchSize: 1000, MaxAttempts: 8}
}

// ExpireResponses hides the responses whose retention period is over and
// deletes their content (and that of responses removed by their
// département), in small batches: each row changes before its content is
// deleted, so a run killed half-way is finished by the next one without
// error and without deleting anything twice.
func (l *Lifecycle) ExpireResponses(ctx context.Context, now time.Time) (expired, deleted int, err error) {
	var audit func(r *pigp.Response) *pigp.AuditEvent
	if l.Audit {
		audit = expiryEvent
	}
	for {
		batch, err := l.Store.ExpireResponses(ctx, now, l.BatchSize, audit)
		if err != nil {
			return expired, deleted, err
		}
		for _, r := range batch {
			l.Logger.Info("response expired", "response", r.ID, "name", r.Name, "siret", r.SIRET, "expires", r.ExpiresAt)
		}
		expired += len(batch)
		if len(batch) < l.BatchSize {
			break
		}
	}
	for {
		batch, err := l.Store.ResponsesToPurge(ctx, l.BatchSize)
		if err != nil {
			return expired, deleted, err
		}
		keys := make([]string, len(batch))
		ids := make([]string, len(batch))
		for i, r := range batch {
			keys[i], ids[i] = r.StorageKey, r.ID
		}
		// Contents first, then the rows: killed in between, the next run
		// finds the rows again and the deletions are no-ops.
		if err := l.Blobs.Remove(ctx, keys...); err != nil {
			return expired, deleted, fmt.Errorf("delete contents: %w", err)
		}
		if err := l.Store.MarkContentDeleted(ctx, ids, now); err != nil {
			return expired, deleted, err
		}
		deleted += len(batch)
		if len(batch) < l.BatchSize {
			return expired, deleted, ctx.Err()
		}
	}
}

// ExpirePasswords marks the passwords that expired at now and queues the
// reminders due ReminderDays before expiry (each once per password).
func (l *Lifecycle) ExpirePasswords(ctx context.Context, now time.Time) (expired, reminded int, err error) {
	var audit func(a *pigp.Account) *pigp.AuditEvent
	if l.Audit {
		audit = passwordExpiryEvent
	}
	accounts, err := l.Store.ExpirePasswords(ctx, now, audit)
	if err != nil {
		return 0, 0, err
	}
	for _, a := range accounts {
		l.Logger.Info("password expired", "login", a.Login, "expired", a.PasswordExpiresAt)
		key := fmt.Sprintf("pwd-expired-%d-%d", a.ID, a.PasswordExpiresAt.Unix())
		if _, err := l.queue(ctx, now, pigp.NotifyPasswordExpired, key, a.Email, passwordExpiredMessage(a)); err != nil {
			return len(accounts), reminded, err
		}
	}
	for _, days := range l.ReminderDays {
		// Accounts whose expiry day (Paris) is at most days calendar days
		// away, as the portal counts them; the dedup key sends each
		// reminder once per password.
		list, err := l.Store.AccountsExpiringBetween(ctx, now, pigp.StartOfDay(now, days+1))
		if err != nil {
			return len(accounts), reminded, err
		}
		for _, a := range list {
			if smaller := l.smallerWindow(days, pigp.DaysUntil(now, a.PasswordExpiresAt)); smaller {
				continue // a closer reminder is the one due
			}
			key := fmt.Sprintf("pwd-reminder-%d-%d-%d", days, a.ID, a.PasswordExpiresAt.Unix())
			queued, err := l.queue(ctx, now, pigp.NotifyPasswordReminder, key, a.Email, passwordReminderMessage(a, now, l.PortalURL))
			if err != nil {
				return len(accounts), reminded, err
			}
			if queued {
				reminded++
				l.Logger.Info("password reminder queued", "login", a.Login, "days", days, "expires", a.PasswordExpiresAt)
			}
		}
	}
	return len(accounts), reminded, nil
}

// smallerWindow reports whether a reminder window smaller than days also
// contains left (calendar days), so that a 30-day reminder is not sent on
// the day the 7-day one is due (a password set 10 days before expiry gets
// only the latter).
func (l *Lifecycle) smallerWindow(days, left int) bool {
	for _, d := range l.ReminderDays {
		if d < days && left <= d {
			return true
		}
	}
	return false
}

// ResponseAvailable queues the notices that a response or report is
// available: to the call file's contact address and to the depositing
// account. The message names the file and its expiry date and nothing of
// the file's content.
func (l *Lifecycle) ResponseAvailable(ctx context.Context, now time.Time, d *pigp.Deposit, r *pigp.Response, contact string) error {
	subject, body := responseMessage(r, l.PortalURL)
	recipients := []string{}
	if contact != "" {
		recipients = append(recipients, contact)
	}
	if a, err := l.Store.FindAccountByID(ctx, d.AccountID); err == nil {
		recipients = append(recipients, a.Email)
	} else {
		l.Logger.Warn("depositing account not found for notification", "deposit", d.ID, "error", err)
	}
	seen := map[string]bool{}
	for _, to := range recipients {
		to = strings.ToLower(strings.TrimSpace(to))
		if to == "" || seen[to] {
			continue
		}
		seen[to] = true
		key := "resp-" + r.ID + "-" + to
		if _, err := l.queue(ctx, now, pigp.NotifyResponseAvailable, key, to, message{subject, body}); err != nil {
			return err
		}
	}
	return nil
}

type message struct{ subject, body string }

// queue records a notification; without a sender it is logged and marked
// not sent. It returns false when the notification existed already.
func (l *Lifecycle) queue(ctx context.Context, now time.Time, kind, key, to string, m message) (bool, error) {
	n := &pigp.Notification{Kind: kind, DedupKey: key, Recipient: to, Subject: m.subject, Body: m.body,
		Status: pigp.NotificationPending, NextAttemptAt: now}
	if l.Sender == nil {
		n.Status = pigp.NotificationNotSent
		n.LastError = "aucun serveur SMTP configuré"
	}
	created, err := l.Store.CreateNotification(ctx, n)
	if err != nil {
		return false, err
	}
	if created && l.Sender == nil {
		// Never the address: logs carry no personal data.
		l.Logger.Info("notification not sent: no SMTP server configured", "notification", n.ID, "kind", kind, "subject", m.subject)
	}
	return created, nil
}

// SendNotifications sends the due notifications. A failure is retried with
// an exponential backoff (1, 2, 4… minutes, at most 6 hours) until
// MaxAttempts; it never blocks other work.
func (l *Lifecycle) SendNotifications(ctx context.Context, now time.Time) (sent, failed int, err error) {
	if l.Sender == nil {
		return 0, 0, nil
	}
	due, err := l.Store.DueNotifications(ctx, now, l.BatchSize)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range due {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		serr := l.Sender.Send(sctx, n.Recipient, n.Subject, n.Body)
		cancel()
		n.Attempts++
		if serr == nil {
			t := now
			n.Status, n.SentAt, n.LastError = pigp.NotificationSent, &t, ""
			sent++
		} else {
			n.LastError = serr.Error()
			backoff := time.Minute << min(n.Attempts-1, 9)
			n.NextAttemptAt = now.Add(min(backoff, 6*time.Hour))
			if n.Attempts >= l.MaxAttempts {
				n.Status = pigp.NotificationFailed
				failed++
			}
			l.Logger.Warn("notification not sent", "notification", n.ID, "kind", n.Kind, "attempt", n.Attempts,
				"error", redactAddresses(serr.Error()))
		}
		if err := l.Store.UpdateNotification(ctx, n); err != nil {
			return sent, failed, err
		}
	}
	return sent, failed, nil
}

// Housekeeping removes uploads abandoned for more than TempMaxAge (this
// node's spool files and the store's incomplete multipart uploads), stored
// content that no row refers to (a crash between the put and the commit)
// once older than OrphanMinAge, old tick claims, and the expired portal
// sessions and login failure counters. Files are aged on the real clock,
// never past it: run as of a future date, the job must not take a running
// upload, or a deposit between its put and its commit, for something
// abandoned. The temporary files of a running process of this node are
// never removed.
func (l *Lifecycle) Housekeeping(ctx context.Context, now time.Time) (temps, orphans int, err error) {
	if l.Spool != nil {
		if temps, err = l.Spool.RemoveStaleTemps(l.TempMaxAge); err != nil {
			return 0, 0, fmt.Errorf("remove stale uploads: %w", err)
		}
	}
	fileNow := now
	if real := time.Now(); fileNow.After(real) {
		fileNow = real
	}
	aborted, err := l.Blobs.AbortIncomplete(ctx, fileNow.Add(-l.TempMaxAge))
	if err != nil {
		return temps, 0, fmt.Errorf("abort incomplete uploads: %w", err)
	}
	if aborted > 0 {
		l.Logger.Warn("incomplete multipart uploads aborted", "count", aborted)
	}
	temps += aborted
	if orphans, err = l.sweepOrphans(ctx, fileNow); err != nil {
		return temps, orphans, err
	}
	if _, err := l.Store.PruneTicks(ctx, now.Add(-7*24*time.Hour)); err != nil {
		return temps, orphans, err
	}
	sessions, err := l.Store.SweepSessions(ctx, now)
	if err != nil {
		return temps, orphans, err
	}
	counters, err := l.Store.SweepFailures(ctx, now)
	if err != nil {
		return temps, orphans, err
	}
	if sessions > 0 || counters > 0 {
		l.Logger.Info("expired portal sessions and login failure counters removed", "sessions", sessions, "counters", counters)
	}
	return temps, orphans, nil
}

// sweepOrphans removes the stored objects older than OrphanMinAge (on the
// real clock fileNow) that no row refers to, walking the store and checking
// the rows in batches.
func (l *Lifecycle) sweepOrphans(ctx context.Context, fileNow time.Time) (int, error) {
	removed := 0
	batch := make([]blob.Info, 0, max(l.BatchSize, 1))
	sweep := func() error {
		if len(batch) == 0 {
			return nil
		}
		keys := make([]string, len(batch))
		for i, o := range batch {
			keys[i] = o.Key
		}
		used, err := l.Store.StorageKeysInUse(ctx, keys)
		if err != nil {
			return err
		}
		var orphans []string
		for _, o := range batch {
			if !used[o.Key] {
				orphans = append(orphans, o.Key)
			}
		}
		if err := l.Blobs.Remove(ctx, orphans...); err != nil {
			return fmt.Errorf("remove orphans: %w", err)
		}
		for _, o := range batch {
			if !used[o.Key] {
				l.Logger.Warn("orphaned content removed", "key", o.Key, "modified", o.ModTime, "size", o.Size)
			}
		}
		removed += len(orphans)
		batch = batch[:0]
		return nil
	}
	err := l.Blobs.Walk(ctx, "", func(o blob.Info) error {
		if fileNow.Sub(o.ModTime) < l.OrphanMinAge {
			return nil
		}
		batch = append(batch, o)
		if len(batch) < cap(batch) {
			return nil
		}
		return sweep()
	})
	if err == nil {
		err = sweep()
	}
	if err != nil {
		return removed, fmt.Errorf("sweep orphaned content: %w", err)
	}
	return removed, nil
}

// frenchDate writes t as "23 septembre 2027" ("1er décembre 2027"), in Paris time.
func frenchDate(t time.Time) string { return pigp.FrenchDate(t) }

// addressPattern matches e-mail addresses, which SMTP servers quote in
// their refusals ("550 <x@y.fr>: Recipient address rejected").
var addressPattern = regexp.MustCompile(`[^\s<>"'(),;:]+@[^\s<>"'(),;:]+`)

// redactAddresses hides the e-mail addresses of s, for the logs.
func redactAddresses(s string) string {
	return addressPattern.ReplaceAllString(s, "<adresse masquée>")
}
