package exchange

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
	// SaveBan records b and its audit rows in one transaction.
	SaveBan(ctx context.Context, b *pigp.Ban, audit ...*pigp.AuditEvent) error
	// FindBan returns ENOTFOUND when ip is not banned at now.
	FindBan(ctx context.Context, ip string, now time.Time) (*pigp.Ban, error)
}

// FailureStore keeps the guard's failure counters. The database's
// (store.DB) is shared by every node, so that N nodes behind a balancer
// give an attacker no more guesses than one; without it the counters stay
// in the node's memory.
type FailureStore interface {
	// CountFailure counts one failure of key at now and returns its new
	// count; a key quiet for longer than forget starts again at 1, its
	// block forgotten. Concurrent calls each get their own count.
	CountFailure(ctx context.Context, key string, now time.Time, forget time.Duration) (int, error)
	// BlockKey blocks key until until, never shortening a longer block.
	BlockKey(ctx context.Context, key string, until time.Time) error
	// BlockedUntil returns the latest end of block among keys after now
	// (the zero time when none is blocked).
	BlockedUntil(ctx context.Context, keys []string, now time.Time) (time.Time, error)
	// ClearFailures forgets key's failures and block.
	ClearFailures(ctx context.Context, key string) error
}

// guardMaxKeys bounds the in-memory maps (an attacker rotating logins or
// addresses cannot grow them without limit).
const guardMaxKeys = 100_000

// Guard throttles failed logins. It is the one implementation used by the
// SSH server and the portal. Counters and blocks live in the FailureStore
// and bans in the BanStore: with the database for both, every node counts
// the same failures, refuses the same blocked addresses and pairs, and
// bans an address once, at the same threshold as a single node would
// (`pigp ban` lists and lifts the bans). Without a BanStore, bans stay in
// memory.
//
// The only state kept in memory besides is a cache of blocks this node
// has seen in the store: a block only grows until its counter is
// forgotten, so a cached block still in force is one the store holds too,
// and refusing from the cache never lets through an attempt the store
// would refuse nor refuses one it would let through. Absent from the
// cache, the store is asked. Bans are always read from the store: an
// operator may lift one at any time.
type Guard struct {
	Policy GuardPolicy
	Bans   BanStore
	// Failures keeps the counters (NewGuard: in memory; serve sets the
	// database).
	Failures FailureStore
	Audit    pigp.Auditor
	Now      pigp.Clock
	Logger   *slog.Logger
	// Flood records the refusals of Throttled with flood control per
	// address (nil: each one is recorded).
	Flood *AuditFlood

	mu     sync.Mutex
	blocks map[string]time.Time // blocks seen in Failures
	bans   map[string]time.Time // only without a BanStore
}

// NewGuard returns a guard with the given policy, counting failures in
// memory until Failures is set.
func NewGuard(p GuardPolicy, bans BanStore, audit pigp.Auditor, now pigp.Clock, logger *slog.Logger) *Guard {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Guard{Policy: p, Bans: bans, Failures: NewMemoryFailures(), Audit: audit, Now: now, Logger: logger,
		blocks: map[string]time.Time{}, bans: map[string]time.Time{}}
}

// Counter keys. Logins are client input: kept valid UTF-8, without NUL
// and at most 256 bytes, so that any database stores them.
func ipKey(ip string) string          { return "ip|" + ip }
func pairKey(ip, login string) string { return "pair|" + ip + "|" + keyLogin(login) }
func loginKey(login string) string    { return "login|" + keyLogin(login) }

func keyLogin(login string) string {
	login = strings.ReplaceAll(strings.ToValidUTF8(login, "?"), "\x00", "?")
	for len(login) > 256 {
		_, size := utf8.DecodeLastRuneInString(login)
		login = login[:len(login)-size]
	}
	return login
}

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
// blocks of ip and of the (ip, login) pair, never the login alone. A
// store error is returned: callers fail closed.
func (g *Guard) Check(ctx context.Context, ip, login string) (time.Duration, error) {
	d, err := g.Banned(ctx, ip)
	if err != nil || d > 0 {
		return d, err
	}
	now := g.Now()
	keys := []string{ipKey(ip), pairKey(ip, login)}
	if until := g.cachedBlock(keys, now); !until.IsZero() {
		return until.Sub(now), nil
	}
	until, err := g.Failures.BlockedUntil(ctx, keys, now)
	if err != nil {
		return 0, err
	}
	if !until.After(now) {
		return 0, nil
	}
	return until.Sub(now), nil
}

// cachedBlock returns the latest cached block of keys in force at now.
func (g *Guard) cachedBlock(keys []string, now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	var until time.Time
	for _, k := range keys {
		if u, ok := g.blocks[k]; ok && u.After(now) && u.After(until) {
			until = u
		}
	}
	return until
}

func (g *Guard) cacheBlock(key string, until, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.blocks) >= guardMaxKeys {
		for k, u := range g.blocks {
			if !u.After(now) {
				delete(g.blocks, k)
			}
		}
		if len(g.blocks) >= guardMaxKeys {
			clear(g.blocks) // only a cache: the store still has them
		}
	}
	if until.After(g.blocks[key]) {
		g.blocks[key] = until
	}
}

// Failure records a failed login and returns how long the answer should be
// held back (the per-login tarpit). The failure whose count reaches the
// ban threshold bans ip: counts are atomic in the store, so exactly one
// failure, on one node, does.
func (g *Guard) Failure(ctx context.Context, ip, login, protocol string) time.Duration {
	now := g.Now()
	p := g.Policy
	count := func(key string, free int) int {
		n, err := g.Failures.CountFailure(ctx, key, now, p.Forget)
		if err != nil {
			g.Logger.Error("count login failure", "key", key, "error", err)
			return 0
		}
		if over := n - free; free >= 0 && over > 0 {
			until := now.Add(min(p.BaseDelay<<min(over-1, 20), p.MaxDelay))
			if err := g.Failures.BlockKey(ctx, key, until); err != nil {
				g.Logger.Error("block login key", "key", key, "error", err)
			} else {
				g.cacheBlock(key, until, now)
			}
		}
		return n
	}
	count(pairKey(ip, login), p.PairFree)
	failures := count(ipKey(ip), p.IPFree)
	acct := count(loginKey(login), -1)
	tarpit := time.Duration(0)
	if acct == 0 {
		tarpit = p.MaxTarpit // the store failed: hold the answer as long as allowed
	} else if over := acct - p.AccountSlowAfter; p.AccountSlowAfter > 0 && over > 0 {
		tarpit = min(p.BaseTarpit<<min(over-1, 20), p.MaxTarpit)
	}
	if p.IPBanAfter <= 0 || failures != p.IPBanAfter {
		return tarpit
	}
	b := &pigp.Ban{IP: ip, Reason: fmt.Sprintf("%d échecs de connexion", failures), Failures: failures,
		BannedAt: now, Until: now.Add(p.BanTime)}
	ev := &pigp.AuditEvent{Time: now.UTC(), Action: pigp.AuditBan, Outcome: pigp.AuditOK, Login: login, IP: ip,
		Protocol: protocol, Object: ip, Detail: fmt.Sprintf("%s, jusqu'au %s", b.Reason, b.Until.UTC().Format(time.RFC3339))}
	if g.Bans != nil {
		// The ban and its audit row in one transaction. If they cannot be
		// written, the address stays blocked by its counter all the same.
		var evs []*pigp.AuditEvent
		if g.Audit != nil {
			evs = append(evs, ev)
		}
		if err := g.Bans.SaveBan(ctx, b, evs...); err != nil {
			g.Logger.Error("save ban", "ip", ip, "error", err)
			return tarpit
		}
	} else {
		g.mu.Lock()
		g.bans[ip] = b.Until
		g.mu.Unlock()
		g.audit(ctx, ev)
	}
	g.Logger.Warn("address banned", "ip", ip, "failures", failures, "until", b.Until)
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

// Success clears the pair's failures after a correct password. The
// address's and the login's counts stay: a success does not excuse the
// other failures.
func (g *Guard) Success(ctx context.Context, ip, login string) {
	key := pairKey(ip, login)
	if err := g.Failures.ClearFailures(ctx, key); err != nil {
		g.Logger.Error("clear login failures", "key", key, "error", err)
	}
	g.mu.Lock()
	delete(g.blocks, key)
	g.mu.Unlock()
}

// MemoryFailures is a FailureStore in the node's memory (a single node, or
// tests), bounded to guardMaxKeys counters.
type MemoryFailures struct {
	mu sync.Mutex
	m  map[string]*memoryFailure
}

type memoryFailure struct {
	failures     int
	last         time.Time
	blockedUntil time.Time
	forget       time.Duration
}

// NewMemoryFailures returns an empty in-memory FailureStore.
func NewMemoryFailures() *MemoryFailures { return &MemoryFailures{m: map[string]*memoryFailure{}} }

// CountFailure implements FailureStore.
func (m *MemoryFailures) CountFailure(_ context.Context, key string, now time.Time, forget time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= guardMaxKeys {
		for k, e := range m.m {
			if now.Sub(e.last) > e.forget && !e.blockedUntil.After(now) {
				delete(m.m, k)
			}
		}
	}
	e, ok := m.m[key]
	if !ok || now.Sub(e.last) > forget {
		e = &memoryFailure{}
		m.m[key] = e
	}
	e.failures++
	e.last, e.forget = now, forget
	return e.failures, nil
}

// BlockKey implements FailureStore.
func (m *MemoryFailures) BlockKey(_ context.Context, key string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[key]; ok && until.After(e.blockedUntil) {
		e.blockedUntil = until
	}
	return nil
}

// BlockedUntil implements FailureStore.
func (m *MemoryFailures) BlockedUntil(_ context.Context, keys []string, now time.Time) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var until time.Time
	for _, k := range keys {
		if e, ok := m.m[k]; ok && e.blockedUntil.After(now) && e.blockedUntil.After(until) {
			until = e.blockedUntil
		}
	}
	return until, nil
}

// ClearFailures implements FailureStore.
func (m *MemoryFailures) ClearFailures(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, key)
	return nil
}

func (g *Guard) audit(ctx context.Context, e *pigp.AuditEvent) {
	if g.Audit == nil {
		return
	}
	if err := g.Audit.Audit(ctx, e); err != nil {
		g.Logger.Error("audit", "action", e.Action, "error", err)
	}
}
