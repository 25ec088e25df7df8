package exchange

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pigp/pigp"
)

// GuardPolicy holds the brute-force thresholds. Failures are counted over
// Forget: a key quiet for that long starts again from zero.
//
//   - per (address, login) pair: PairFree failures are free, then each new
//     failure blocks the pair for BaseDelay, doubling up to MaxDelay;
//   - per address (every login): IPFree failures are free, then the address
//     is blocked the same way; at IPBanAfter failures it is banned for
//     BanTime on every node (the ban is stored and audited);
//   - per login (every address): never a block, so that an attack on an
//     account from elsewhere cannot lock its owner out; past AccountSlowAfter
//     failures each failed answer is held back (tarpit), doubling from
//     BaseTarpit up to MaxTarpit. A correct password is never held back.
//
// Unknown and known logins are counted alike: the guard never reveals
// which logins exist.
type GuardPolicy struct {
	PairFree         int
	IPFree           int
	IPBanAfter       int
	BaseDelay        time.Duration
	MaxDelay         time.Duration
	BanTime          time.Duration
	AccountSlowAfter int
	BaseTarpit       time.Duration
	MaxTarpit        time.Duration
	Forget           time.Duration
}

// DefaultGuardPolicy returns the default thresholds.
func DefaultGuardPolicy() GuardPolicy {
	return GuardPolicy{
		PairFree: 3, IPFree: 10, IPBanAfter: 30,
		BaseDelay: 2 * time.Second, MaxDelay: 15 * time.Minute, BanTime: 30 * time.Minute,
		AccountSlowAfter: 10, BaseTarpit: 250 * time.Millisecond, MaxTarpit: 3 * time.Second,
		Forget: time.Hour,
	}
}

// BanStore keeps the bans where every node sees them.
type BanStore interface {
	SaveBan(ctx context.Context, b *pigp.Ban) error
	// FindBan returns ENOTFOUND when ip is not banned at now.
	FindBan(ctx context.Context, ip string, now time.Time) (*pigp.Ban, error)
}

// guardMaxKeys bounds the in-memory counters (an attacker rotating logins
// or addresses cannot grow them without limit).
const guardMaxKeys = 100_000

type guardEntry struct {
	failures     int
	last         time.Time
	blockedUntil time.Time
}

// Guard throttles failed logins. It is the one implementation used by the
// SSH server and the portal. Counters live in memory on each node; bans go
// to the BanStore (the database), so every node refuses a banned address
// and `pigp ban` lists and lifts them. Without a BanStore, bans stay in
// memory.
type Guard struct {
	Policy GuardPolicy
	Bans   BanStore
	Audit  pigp.Auditor
	Now    pigp.Clock
	Logger *slog.Logger
	// Flood records the refusals of Throttled with flood control per
	// address (nil: each one is recorded).
	Flood *AuditFlood

	mu   sync.Mutex
	m    map[string]*guardEntry
	bans map[string]time.Time // only without a BanStore
}

// NewGuard returns a guard with the given policy.
func NewGuard(p GuardPolicy, bans BanStore, audit pigp.Auditor, now pigp.Clock, logger *slog.Logger) *Guard {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Guard{Policy: p, Bans: bans, Audit: audit, Now: now, Logger: logger,
		m: map[string]*guardEntry{}, bans: map[string]time.Time{}}
}

func ipKey(ip string) string          { return "ip\x00" + ip }
func pairKey(ip, login string) string { return "pair\x00" + ip + "\x00" + login }
func loginKey(login string) string    { return "login\x00" + login }

// Banned returns how long ip stays banned (0: not banned). A database
// error is returned as is: callers fail closed.
func (g *Guard) Banned(ctx context.Context, ip string) (time.Duration, error) {
	now := g.Now()
	if g.Bans == nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if until, ok := g.bans[ip]; ok && until.After(now) {
			return until.Sub(now), nil
		}
		return 0, nil
	}
	b, err := g.Bans.FindBan(ctx, ip, now)
	if err != nil {
		if pigp.ErrorCode(err) == pigp.ENOTFOUND {
			return 0, nil
		}
		return 0, err
	}
	return b.Until.Sub(now), nil
}

// Check returns how long the caller must wait before an attempt with login
// from ip is even looked at (0: go ahead). It covers the ban of ip and the
// blocks of ip and of the (ip, login) pair, never the login alone.
func (g *Guard) Check(ctx context.Context, ip, login string) (time.Duration, error) {
	d, err := g.Banned(ctx, ip)
	if err != nil || d > 0 {
		return d, err
	}
	now := g.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range []string{ipKey(ip), pairKey(ip, login)} {
		if e, ok := g.m[k]; ok && e.blockedUntil.After(now) {
			d = max(d, e.blockedUntil.Sub(now))
		}
	}
	return d, nil
}

// Failure records a failed login and returns how long the answer should be
// held back (the per-login tarpit). Reaching the ban threshold bans ip.
func (g *Guard) Failure(ctx context.Context, ip, login, protocol string) time.Duration {
	now := g.Now()
	p := g.Policy
	g.mu.Lock()
	if len(g.m) >= guardMaxKeys {
		for k, e := range g.m {
			if now.Sub(e.last) > p.Forget && !e.blockedUntil.After(now) {
				delete(g.m, k)
			}
		}
	}
	g.bump(pairKey(ip, login), p.PairFree, now)
	ipEntry := g.bump(ipKey(ip), p.IPFree, now)
	acct := g.bump(loginKey(login), -1, now)
	ban := p.IPBanAfter > 0 && ipEntry.failures == p.IPBanAfter
	failures := ipEntry.failures
	var tarpit time.Duration
	if over := acct.failures - p.AccountSlowAfter; p.AccountSlowAfter > 0 && over > 0 {
		tarpit = min(p.BaseTarpit<<min(over-1, 20), p.MaxTarpit)
	}
	if ban && g.Bans == nil {
		g.bans[ip] = now.Add(p.BanTime)
	}
	g.mu.Unlock()
	if ban {
		b := &pigp.Ban{IP: ip, Reason: fmt.Sprintf("%d échecs de connexion", failures), Failures: failures,
			BannedAt: now, Until: now.Add(p.BanTime)}
		if g.Bans != nil {
			if err := g.Bans.SaveBan(ctx, b); err != nil {
				g.Logger.Error("save ban", "ip", ip, "error", err)
			}
		}
		g.Logger.Warn("address banned", "ip", ip, "failures", failures, "until", b.Until)
		g.audit(ctx, &pigp.AuditEvent{Action: pigp.AuditBan, Outcome: pigp.AuditOK, Login: login, IP: ip,
			Protocol: protocol, Object: ip, Detail: fmt.Sprintf("%s, jusqu'au %s", b.Reason, b.Until.UTC().Format(time.RFC3339))})
	}
	return tarpit
}

// Throttled records an attempt refused without being looked at, because
// ip (or the pair of ip and login) is blocked or banned for wait. Such
// refusals are recorded with flood control per address: the first ones
// one by one, then a count.
func (g *Guard) Throttled(ctx context.Context, ip, login, protocol string, wait time.Duration) {
	if g.Audit == nil {
		return
	}
	e := &pigp.AuditEvent{Time: g.Now().UTC(), Action: pigp.AuditLogin, Outcome: pigp.AuditRefused, Login: login, IP: ip,
		Protocol: protocol, Detail: fmt.Sprintf("tentative refusée sans vérification : trop d'échecs, nouvel essai possible dans %d s", int(wait.Seconds()+0.999))}
	var err error
	if g.Flood != nil {
		err = g.Flood.Record(ctx, "ip:"+ip, e)
	} else {
		err = g.Audit.Audit(ctx, e)
	}
	if err != nil {
		g.Logger.Error("audit", "action", e.Action, "error", err)
	}
}

// bump counts one failure for key; free < 0 never blocks.
func (g *Guard) bump(key string, free int, now time.Time) *guardEntry {
	e, ok := g.m[key]
	if !ok || now.Sub(e.last) > g.Policy.Forget {
		e = &guardEntry{}
		g.m[key] = e
	}
	e.failures++
	e.last = now
	if over := e.failures - free; free >= 0 && over > 0 {
		e.blockedUntil = now.Add(min(g.Policy.BaseDelay<<min(over-1, 20), g.Policy.MaxDelay))
	}
	return e
}

// Success clears the pair's failures after a correct password. The
// address's and the login's counts stay: a success does not excuse the
// other failures.
func (g *Guard) Success(_ context.Context, ip, login string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.m, pairKey(ip, login))
}

func (g *Guard) audit(ctx context.Context, e *pigp.AuditEvent) {
	if g.Audit == nil {
		return
	}
	if err := g.Audit.Audit(ctx, e); err != nil {
		g.Logger.Error("audit", "action", e.Action, "error", err)
	}
}
