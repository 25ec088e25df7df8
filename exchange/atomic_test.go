package exchange_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/internal/testutil"
)

// TestAuditRowFailureFailsTheChange injects a failure into the audit
// insert of each kind of change: the change does not happen.
func TestAuditRowFailureFailsTheChange(t *testing.T) {
	ctx := context.Background()
	t.Run("deposit", func(t *testing.T) {
		e := MustOpen(t)
		e.svc.Audit = e.db
		restore := testutil.FailAuditInserts(t, "sqlite", e.dsn, pigp.AuditUpload)
		u, err := e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now.Add(-time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		mustWriteAt(t, u, []byte("<DemandeAPA/>"), 0)
		if _, err := u.Commit(ctx); err == nil {
			t.Fatal("deposit committed without its audit row")
		}
		if ds := e.deposits(t, siretA); len(ds) != 0 {
			t.Fatalf("deposits without audit row: %+v", ds)
		}
		if f := append(e.files(t, "objects"), e.files(t, "tmp")...); len(f) != 0 {
			t.Fatalf("content left behind: %v", f)
		}
		restore()
		u, _ = e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now.Add(-time.Hour)))
		mustWriteAt(t, u, []byte("<DemandeAPA/>"), 0)
		if _, err := u.Commit(ctx); err != nil {
			t.Fatalf("after the failure: %v", err)
		}
	})
	t.Run("download", func(t *testing.T) {
		e := MustOpen(t)
		e.svc.Audit = e.db
		mustPublish(t, e, siretA, respName, []byte("réponse"))
		restore := testutil.FailAuditInserts(t, "sqlite", e.dsn, pigp.AuditDownload)
		defer restore()
		rr, err := e.svc.OpenResponse(ctx, e.callerA(), respName)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(rr)
		if err := rr.Close(); err == nil {
			t.Fatal("download recorded without its audit row")
		}
		if ds := e.downloads(t, siretA); len(ds) != 0 {
			t.Fatalf("download rows without audit row: %+v", ds)
		}
		r, _ := e.db.FindAvailableResponse(ctx, e.callerA().SIRETs, respName, e.now)
		if r.FirstDownloadAt != nil {
			t.Fatal("first download date set without audit row")
		}
	})
	t.Run("removal", func(t *testing.T) {
		e := MustOpen(t)
		e.svc.Audit = e.db
		mustPublish(t, e, siretA, respName, []byte("réponse"))
		readAll(t, e, e.callerA(), respName)
		restore := testutil.FailAuditInserts(t, "sqlite", e.dsn, pigp.AuditRemove)
		defer restore()
		if err := e.svc.RemoveResponse(ctx, e.callerA(), respName); err == nil {
			t.Fatal("removal without its audit row")
		}
		if _, err := e.db.FindAvailableResponse(ctx, e.callerA().SIRETs, respName, e.now); err != nil {
			t.Fatalf("response gone although its removal failed: %v", err)
		}
	})
	t.Run("password change", func(t *testing.T) {
		e := MustOpen(t)
		e.svc.Audit = e.db
		restore := testutil.FailAuditInserts(t, "sqlite", e.dsn, pigp.AuditPasswordChange)
		defer restore()
		if _, err := e.svc.ChangePassword(ctx, e.callerA(), password, "Nouveau-Secret-2027!"); err == nil {
			t.Fatal("password changed without its audit row")
		}
		if _, err := e.svc.Login(ctx, "192.0.2.1", e.a.Login, password, pigp.ProtocolSFTP); err != nil {
			t.Fatalf("old password lost: %v", err)
		}
	})
}

// TestLoginAuditFailureIsUnavailable: a correct password whose audit row
// cannot be written is answered "service unavailable", never "wrong
// password".
func TestLoginAuditFailureIsUnavailable(t *testing.T) {
	e := MustOpen(t)
	e.svc.Audit = e.db
	defer testutil.FailAuditInserts(t, "sqlite", e.dsn, pigp.AuditLogin)()
	_, err := e.svc.Login(context.Background(), "192.0.2.1", e.a.Login, password, pigp.ProtocolSFTP)
	if pigp.ErrorCode(err) != pigp.EUNAVAILABLE || pigp.ErrorMessage(err) != "Service momentanément indisponible, réessayez plus tard." {
		t.Fatalf("login without its audit row: %v", err)
	}
	_, err = e.svc.Login(context.Background(), "192.0.2.1", e.a.Login, "wrong-password-1A", pigp.ProtocolSFTP)
	if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestUploadRefusedBelowMinFreeSpace: below the minimum free space an
// upload is refused at open with the French message, after the name check.
func TestUploadRefusedBelowMinFreeSpace(t *testing.T) {
	e := MustOpen(t)
	free, total, err := e.blobs.FreeSpace()
	if err != nil {
		t.Skip(err)
	}
	e.svc.MinFreeSpace = exchange.SpacePolicy{Bytes: int64(free) + 1<<40}
	_, err = e.svc.BeginDeposit(context.Background(), e.callerA(), callName(siretA, e.now.Add(-time.Hour)))
	if pigp.ErrorCode(err) != pigp.EUNAVAILABLE || !strings.Contains(pigp.ErrorMessage(err), "le serveur manque d'espace disque") {
		t.Fatalf("upload below the minimum: %v", err)
	}
	if _, err := e.svc.BeginDeposit(context.Background(), e.callerA(), "x.xml"); pigp.ErrorCode(err) != pigp.EINVALID {
		t.Fatalf("a bad name gets its own message first: %v", err)
	}
	if _, _, ok, _ := e.svc.SpaceStatus(); ok {
		t.Fatal("SpaceStatus ok below the minimum")
	}
	e.svc.MinFreeSpace = exchange.SpacePolicy{Percent: 100 * float64(free/2) / float64(total)}
	if _, _, ok, _ := e.svc.SpaceStatus(); !ok {
		t.Fatal("SpaceStatus not ok above a percentage")
	}
	u, err := e.svc.BeginDeposit(context.Background(), e.callerA(), callName(siretA, e.now.Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	u.Abort()
}
