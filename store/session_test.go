package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/store"
)

func TestPortalSessions(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a := mustOrgAndAccount(t, db, "djouffre-xt", siretA, siretB)
		other := mustOrgAndAccount(t, db, "pmartin-xt", siretA)
		now := time.Now().UTC().Truncate(time.Second)
		mk := func(acct *pigp.Account, token string) *pigp.PortalSession {
			s := &pigp.PortalSession{TokenHash: pigp.SessionTokenHash(token),
				Caller: &pigp.Caller{AccountID: acct.ID, Login: acct.Login, Name: acct.Name, SIRETs: acct.SIRETs,
					RemoteIP: "192.0.2.7", Protocol: pigp.ProtocolHTTP, PasswordExpiresAt: acct.PasswordExpiresAt.Truncate(time.Second)},
				CSRFSecret: "secret-" + token, MustChange: true, Flash: "Bienvenue", CreatedAt: now, LastSeenAt: now,
				ExpiresAt: now.Add(15 * time.Minute)}
			if err := db.CreateSession(ctx, s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		s1, s2 := mk(a, "t1"), mk(a, "t2")
		s3 := mk(other, "t3")
		got, err := db.FindSession(ctx, s1.TokenHash)
		if err != nil {
			t.Fatal(err)
		}
		c := got.Caller
		if c.AccountID != a.ID || c.Login != a.Login || c.Name != a.Name || fmt.Sprint(c.SIRETs) != fmt.Sprint(a.SIRETs) ||
			!c.PasswordExpiresAt.Equal(s1.Caller.PasswordExpiresAt) || c.RemoteIP != "" || c.Protocol != "" {
			t.Fatalf("caller read back = %+v, want %+v without address and protocol", c, s1.Caller)
		}
		if got.CSRFSecret != "secret-t1" || !got.MustChange || got.Flash != "Bienvenue" ||
			!got.CreatedAt.Equal(now) || !got.ExpiresAt.Equal(now.Add(15*time.Minute)) {
			t.Fatalf("session read back = %+v", got)
		}
		if _, err := db.FindSession(ctx, pigp.SessionTokenHash("nope")); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("unknown token: %v, want ENOTFOUND", err)
		}

		// Touch, update, take the flash (only if unchanged).
		later := now.Add(2 * time.Minute)
		if err := db.TouchSession(ctx, s1.TokenHash, later, later.Add(15*time.Minute)); err != nil {
			t.Fatal(err)
		}
		got.MustChange, got.Flash = false, "Mot de passe modifié"
		got.Caller.SIRETs = []string{siretA}
		if err := db.UpdateSession(ctx, got); err != nil {
			t.Fatal(err)
		}
		if err := db.TakeFlash(ctx, s1.TokenHash, "Bienvenue"); err != nil {
			t.Fatal(err)
		}
		got, _ = db.FindSession(ctx, s1.TokenHash)
		if !got.LastSeenAt.Equal(later) || got.MustChange || got.Flash != "Mot de passe modifié" || len(got.Caller.SIRETs) != 1 {
			t.Fatalf("after touch and update: %+v", got)
		}
		db.TakeFlash(ctx, s1.TokenHash, "Mot de passe modifié")
		if got, _ = db.FindSession(ctx, s1.TokenHash); got.Flash != "" {
			t.Fatalf("flash after being taken: %q", got.Flash)
		}
		if n, err := db.CountAccountSessions(ctx, a.ID, now); err != nil || n != 2 {
			t.Fatalf("sessions of the account: %d, %v; want 2", n, err)
		}

		// A password change ends every session of the account, not others'.
		if err := db.SetPassword(ctx, a.Login, "$argon2id$y", now, now.AddDate(1, 0, 0), false); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*pigp.PortalSession{s1, s2} {
			if _, err := db.FindSession(ctx, s.TokenHash); pigp.ErrorCode(err) != pigp.ENOTFOUND {
				t.Fatalf("session after a password change: %v, want ENOTFOUND", err)
			}
		}
		if err := db.TouchSession(ctx, s1.TokenHash, later, later); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("touch of a revoked session: %v, want ENOTFOUND", err)
		}
		if _, err := db.FindSession(ctx, s3.TokenHash); err != nil {
			t.Fatalf("another account's session: %v", err)
		}
		// Disabling an account ends its sessions; logout ends them all.
		s4 := mk(other, "t4")
		if err := db.SetAccountState(ctx, other.Login, pigp.AccountDisabled); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindSession(ctx, s4.TokenHash); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("session of a disabled account: %v", err)
		}
		s5, s6 := mk(a, "t5"), mk(a, "t6")
		if n, err := db.DeleteAccountSessions(ctx, a.ID); err != nil || n != 2 {
			t.Fatalf("DeleteAccountSessions = %d, %v; want 2", n, err)
		}
		for _, s := range []*pigp.PortalSession{s5, s6} {
			if _, err := db.FindSession(ctx, s.TokenHash); pigp.ErrorCode(err) != pigp.ENOTFOUND {
				t.Fatalf("session after logout everywhere: %v", err)
			}
		}

		// Eviction keeps the most recently used live sessions.
		e1, e2, e3 := mk(a, "e1"), mk(a, "e2"), mk(a, "e3")
		db.TouchSession(ctx, e1.TokenHash, now.Add(3*time.Minute), now.Add(18*time.Minute))
		db.TouchSession(ctx, e3.TokenHash, now.Add(2*time.Minute), now.Add(17*time.Minute))
		ended, err := db.EvictSessions(ctx, a.ID, 2, now.Add(4*time.Minute))
		if err != nil || len(ended) != 1 || ended[0].TokenHash != e2.TokenHash || ended[0].Caller.Login != a.Login {
			t.Fatalf("EvictSessions = %v, %v; want e2 ended", ended, err)
		}
		for _, s := range []*pigp.PortalSession{e1, e3} {
			if _, err := db.FindSession(ctx, s.TokenHash); err != nil {
				t.Fatalf("recent session evicted: %v", err)
			}
		}
		if ended, _ := db.EvictSessions(ctx, a.ID, 2, now.Add(4*time.Minute)); len(ended) != 0 {
			t.Fatalf("second eviction ended %d sessions", len(ended))
		}
		db.DeleteAccountSessions(ctx, a.ID)

		// The sweep deletes exactly the expired ones.
		s7 := mk(a, "t7")
		s8 := mk(a, "t8")
		db.TouchSession(ctx, s8.TokenHash, now, now.Add(time.Hour))
		if n, err := db.SweepSessions(ctx, now.Add(30*time.Minute)); err != nil || n != 1 {
			t.Fatalf("SweepSessions = %d, %v; want 1", n, err)
		}
		if _, err := db.FindSession(ctx, s7.TokenHash); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("expired session after the sweep: %v", err)
		}
		if _, err := db.FindSession(ctx, s8.TokenHash); err != nil {
			t.Fatalf("live session after the sweep: %v", err)
		}
		if err := db.DeleteSession(ctx, s8.TokenHash); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteSession(ctx, s8.TokenHash); err != nil {
			t.Fatalf("deleting a gone session: %v", err)
		}
	})
}

func TestLoginFailureCounters(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		forget := time.Hour
		for i := 1; i <= 3; i++ {
			if n, err := db.CountFailure(ctx, "ip|192.0.2.1", now.Add(time.Duration(i)*time.Second), forget); err != nil || n != i {
				t.Fatalf("failure %d: count %d, %v", i, n, err)
			}
		}
		// Concurrent failures (as from several nodes) each get their own count.
		var wg sync.WaitGroup
		counts := make(chan int, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := db.CountFailure(ctx, "ip|192.0.2.2", now, forget)
				if err != nil {
					t.Error(err)
				}
				counts <- n
			}()
		}
		wg.Wait()
		close(counts)
		seen := map[int]bool{}
		for n := range counts {
			if seen[n] {
				t.Fatalf("count %d returned twice", n)
			}
			seen[n] = true
		}
		for i := 1; i <= 20; i++ {
			if !seen[i] {
				t.Fatalf("count %d never returned: %v", i, seen)
			}
		}

		// Blocks: never shortened, read back as the latest of the keys.
		if u, err := db.BlockedUntil(ctx, []string{"ip|192.0.2.1", "pair|192.0.2.1|x"}, now); err != nil || !u.IsZero() {
			t.Fatalf("blocked before any block: %v, %v", u, err)
		}
		until := now.Add(10 * time.Second).Truncate(time.Microsecond)
		db.BlockKey(ctx, "ip|192.0.2.1", until)
		db.BlockKey(ctx, "ip|192.0.2.1", now.Add(2*time.Second))
		if u, err := db.BlockedUntil(ctx, []string{"ip|192.0.2.1", "pair|192.0.2.1|x"}, now); err != nil || !u.Equal(until) {
			t.Fatalf("blocked until %v, %v; want %v", u, err, until)
		}
		if u, _ := db.BlockedUntil(ctx, []string{"ip|192.0.2.1"}, until.Add(time.Millisecond)); !u.IsZero() {
			t.Fatalf("block after its end: %v", u)
		}
		// A key quiet for longer than forget starts again, unblocked.
		if n, _ := db.CountFailure(ctx, "ip|192.0.2.1", now.Add(2*forget), forget); n != 1 {
			t.Fatalf("count after a quiet hour: %d, want 1", n)
		}
		if u, _ := db.BlockedUntil(ctx, []string{"ip|192.0.2.1"}, now); !u.IsZero() {
			t.Fatalf("old block kept after the reset: %v", u)
		}
		// Clear and sweep.
		db.CountFailure(ctx, "pair|192.0.2.3|x", now, forget)
		if err := db.ClearFailures(ctx, "pair|192.0.2.3|x"); err != nil {
			t.Fatal(err)
		}
		if n, _ := db.CountFailure(ctx, "pair|192.0.2.3|x", now, forget); n != 1 {
			t.Fatalf("count after clear: %d, want 1", n)
		}
		db.BlockKey(ctx, "pair|192.0.2.3|x", now.Add(3*forget))
		n, err := db.SweepFailures(ctx, now.Add(forget+time.Minute))
		if err != nil || n != 1 { // 192.0.2.2; .1 was counted at now+2h; .3 is blocked for 3h
			t.Fatalf("SweepFailures = %d, %v; want 1", n, err)
		}
		if n, _ := db.CountFailure(ctx, "ip|192.0.2.2", now.Add(forget+time.Minute), forget); n != 1 {
			t.Fatalf("swept key counted %d, want 1", n)
		}
	})
}
