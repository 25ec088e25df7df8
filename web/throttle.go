package web

import (
	"context"
	"time"
)

// Guard throttles failed logins. The portal uses the same implementation
// as the SSH server (exchange.Guard): per (address, login) pair and per
// address, growing blocks then a ban shared by every node; per login, only
// a tarpit on failures, so an attack on an account cannot lock its owner
// out. Unknown logins are counted like known ones.
type Guard interface {
	// Check returns how long an attempt for login from ip must wait (0: go
	// ahead); bans included.
	Check(ctx context.Context, ip, login string) (time.Duration, error)
	// Failure records a failure and returns how long to hold the answer.
	Failure(ctx context.Context, ip, login, protocol string) time.Duration
	// Success records a correct password.
	Success(ctx context.Context, ip, login string)
	// Throttled records an attempt refused unchecked (blocked or banned).
	Throttled(ctx context.Context, ip, login, protocol string, wait time.Duration)
}
