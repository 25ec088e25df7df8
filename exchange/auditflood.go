package exchange

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/pigp/pigp"
)

// AuditFlood keeps a hostile client from growing the audit trail without
// bound. Within one scope — an SSH connection or portal session
// (pigp.Caller.Session), or a client address for refusals before login —
// the first Detailed refusals of each kind (action and outcome) are
// recorded as they come; the next ones are only counted, and one summary
// row gives their number when the scope ends (End) or after Quiet without
// another refusal in it. Successful events never go through it.
type AuditFlood struct {
	audit    pigp.Auditor
	detailed int
	quiet    time.Duration
	now      pigp.Clock
	logger   *slog.Logger

	mu     sync.Mutex
	scopes map[string]*floodScope
	closed bool
}

type floodScope struct {
	kinds map[string]*floodKind // action + "\x00" + outcome
	last  time.Time             // last refusal, by the wall clock
	timer *time.Timer
}

type floodKind struct {
	seen        int
	suppressed  int
	first, last time.Time       // times of the suppressed events
	sample      pigp.AuditEvent // the last suppressed event
}

// floodMaxScopes bounds the scopes tracked; beyond, refusals share one
// overflow scope (still counted, still bounded).
const floodMaxScopes = 50_000

const floodOverflow = "\x00overflow"

// NewAuditFlood returns a flood control writing to audit.
func NewAuditFlood(audit pigp.Auditor, detailed int, quiet time.Duration, now pigp.Clock, logger *slog.Logger) *AuditFlood {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &AuditFlood{audit: audit, detailed: max(detailed, 1), quiet: quiet, now: now, logger: logger,
		scopes: map[string]*floodScope{}}
}

// Record appends e to the trail unless it is a refusal beyond the first
// Detailed of its kind in scope, which is only counted. Without a scope
// (or a flood control), e is recorded.
func (f *AuditFlood) Record(ctx context.Context, scope string, e *pigp.AuditEvent) error {
	if f == nil || scope == "" || e.Outcome == pigp.AuditOK {
		if f == nil {
			return nil
		}
		return f.audit.Audit(ctx, e)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return f.audit.Audit(ctx, e)
	}
	sc := f.scopes[scope]
	if sc == nil {
		if len(f.scopes) >= floodMaxScopes {
			scope = floodOverflow
			sc = f.scopes[scope]
		}
		if sc == nil {
			sc = &floodScope{kinds: map[string]*floodKind{}}
			f.scopes[scope] = sc
		}
	}
	sc.last = time.Now()
	key := e.Action + "\x00" + e.Outcome
	k := sc.kinds[key]
	if k == nil {
		k = &floodKind{}
		sc.kinds[key] = k
	}
	k.seen++
	if k.seen <= f.detailed {
		f.mu.Unlock()
		return f.audit.Audit(ctx, e)
	}
	if k.suppressed == 0 {
		k.first = e.Time
	}
	k.suppressed++
	k.last = e.Time
	k.sample = *e
	if sc.timer == nil {
		sc.timer = time.AfterFunc(f.quiet, func() { f.expire(scope) })
	}
	f.mu.Unlock()
	return nil
}

// End ends scope: the counted refusals are recorded as summary rows.
func (f *AuditFlood) End(ctx context.Context, scope string) {
	if f == nil || scope == "" {
		return
	}
	f.mu.Lock()
	sc := f.scopes[scope]
	delete(f.scopes, scope)
	if sc != nil && sc.timer != nil {
		sc.timer.Stop()
	}
	f.mu.Unlock()
	f.summarise(ctx, sc)
}

// Close records the summaries of every scope; later refusals are recorded
// one by one.
func (f *AuditFlood) Close(ctx context.Context) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.closed = true
	scopes := f.scopes
	f.scopes = map[string]*floodScope{}
	for _, sc := range scopes {
		if sc.timer != nil {
			sc.timer.Stop()
		}
	}
	f.mu.Unlock()
	for _, sc := range scopes {
		f.summarise(ctx, sc)
	}
}

// expire ends scope if it stayed quiet, or waits again.
func (f *AuditFlood) expire(scope string) {
	f.mu.Lock()
	sc := f.scopes[scope]
	if sc == nil {
		f.mu.Unlock()
		return
	}
	if rest := f.quiet - time.Since(sc.last); rest > 0 {
		sc.timer = time.AfterFunc(rest, func() { f.expire(scope) })
		f.mu.Unlock()
		return
	}
	delete(f.scopes, scope)
	f.mu.Unlock()
	f.summarise(context.Background(), sc)
}

// summarise writes one row per kind of sc with suppressed refusals.
func (f *AuditFlood) summarise(ctx context.Context, sc *floodScope) {
	if sc == nil {
		return
	}
	keys := make([]string, 0, len(sc.kinds))
	for k := range sc.kinds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		k := sc.kinds[key]
		if k.suppressed == 0 {
			continue
		}
		e := k.sample
		e.ID, e.PrevHash, e.Hash = 0, "", ""
		e.Time = f.now().UTC()
		e.Object, e.SHA256 = "", ""
		last := k.sample.Detail
		if k.sample.Object != "" {
			last = k.sample.Object + " : " + last
		}
		e.Detail = fmt.Sprintf("%d refus supplémentaires de même nature non détaillés (après les %d premiers), du %s au %s ; dernier : %s",
			k.suppressed, f.detailed, k.first.UTC().Format(time.RFC3339), k.last.UTC().Format(time.RFC3339), last)
		if err := f.audit.Audit(ctx, &e); err != nil {
			f.logger.Error("audit refusal summary", "action", e.Action, "refusals", k.suppressed, "error", err)
		}
	}
}
