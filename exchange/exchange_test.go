package exchange_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/exchange"
	"github.com/pigp/pigp/internal/testutil"
	"github.com/pigp/pigp/store"
)

const (
	siretA   = "22940028800010" // Val-de-Marne
	siretB   = "22750001100019"
	password = "Correct-Horse-42"
)

// winter is the tests' "now": 12:00 in Paris (UTC+1).
var winter = time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)

// env is a service on a real SQLite database and blob store, with a clock
// the test moves, and one account per organisation.
type env struct {
	svc   *exchange.Service
	db    *store.DB
	dsn   string // the SQLite file, for fault injection
	blobs *blob.Store
	now   time.Time
	a, b  *pigp.Account
}

func (e *env) callerA() *pigp.Caller {
	return &pigp.Caller{AccountID: e.a.ID, Login: e.a.Login, SIRETs: e.a.SIRETs, RemoteIP: "192.0.2.10", Protocol: pigp.ProtocolSFTP}
}

func (e *env) callerB() *pigp.Caller {
	return &pigp.Caller{AccountID: e.b.ID, Login: e.b.Login, SIRETs: e.b.SIRETs, RemoteIP: "198.51.100.7", Protocol: pigp.ProtocolSFTP}
}

// MustOpen returns a fresh environment.
func MustOpen(tb testing.TB) *env {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	db, err := store.Open(ctx, store.SQLite, filepath.Join(dir, "pigp.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.UseAuditKey(ctx, testutil.AuditKey()); err != nil {
		tb.Fatal(err)
	}
	blobs, err := blob.Open(filepath.Join(dir, "store"))
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{db: db, dsn: filepath.Join(dir, "pigp.db"), blobs: blobs, now: winter}
	e.svc = exchange.New(db, blob.NewFS(blobs), blobs, nil)
	e.svc.Now = func() time.Time { return e.now }
	for _, s := range []string{siretA, siretB} {
		if err := db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: s, Name: "Org " + s}); err != nil {
			tb.Fatal(err)
		}
	}
	e.a = e.mustAccount(tb, "agent-a", siretA)
	e.b = e.mustAccount(tb, "agent-b", siretB)
	return e
}

func (e *env) mustAccount(tb testing.TB, login string, sirets ...string) *pigp.Account {
	tb.Helper()
	hash, err := pigp.HashPassword(password)
	if err != nil {
		tb.Fatal(err)
	}
	a := &pigp.Account{
		Login: login, Name: "Agent " + login, Email: login + "@example.fr", SIRETs: sirets,
		PasswordHash: hash, PasswordSetAt: e.now, PasswordExpiresAt: pigp.PasswordExpiry(e.now, 12),
		State: pigp.AccountActive,
	}
	if err := e.db.CreateAccount(context.Background(), a); err != nil {
		tb.Fatal(err)
	}
	return a
}

// callName returns a valid call-file name of siret stamped at t.
func callName(siret string, t time.Time) string {
	return fmt.Sprintf("%d_%s_%s.xml", t.Year(), siret, t.In(paris()).Format("20060102150405"))
}

func paris() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	return loc
}

func randomBytes(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// stored returns the content of a committed object, from the service's
// content store.
func (e *env) stored(tb testing.TB, key string) []byte {
	tb.Helper()
	o, err := e.svc.Blobs.Open(context.Background(), key)
	if err != nil {
		tb.Fatalf("open %s: %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// files returns the regular files under the store's dir/sub.
func (e *env) files(tb testing.TB, sub string) []string {
	tb.Helper()
	var out []string
	root := filepath.Join(e.blobs.Dir(), sub)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func (e *env) deposits(tb testing.TB, sirets ...string) []*pigp.Deposit {
	tb.Helper()
	ds, err := e.db.ListDeposits(context.Background(), pigp.DepositFilter{SIRETs: sirets})
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

// --- authentication ---

func TestLogin(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	disabled := e.mustAccount(t, "agent-off", siretA)
	if err := e.db.SetAccountState(ctx, disabled.Login, pigp.AccountDisabled); err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		c, err := e.svc.Login(ctx, "192.0.2.1", "agent-a", password, pigp.ProtocolSFTP)
		if err != nil {
			t.Fatal(err)
		}
		if c.AccountID != e.a.ID || c.Login != "agent-a" || len(c.SIRETs) != 1 || c.SIRETs[0] != siretA ||
			c.RemoteIP != "192.0.2.1" || c.Protocol != pigp.ProtocolSFTP {
			t.Fatalf("caller = %+v", c)
		}
	})

	var messages []string
	for _, tt := range []struct{ name, login, password string }{
		{"WrongPassword", "agent-a", "Wrong-Horse-42"},
		{"EmptyPassword", "agent-a", ""},
		{"UnknownLogin", "nobody", password},
		{"Disabled", "agent-off", password},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.svc.Login(ctx, "192.0.2.1", tt.login, tt.password, pigp.ProtocolSFTP)
			if c != nil || pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
				t.Fatalf("got %+v, %v; want EUNAUTHORIZED", c, err)
			}
			messages = append(messages, pigp.ErrorMessage(err))
		})
	}
	t.Run("SameMessage", func(t *testing.T) {
		for _, m := range messages {
			if m != messages[0] {
				t.Fatalf("failure messages differ: %q", messages)
			}
		}
		if strings.Contains(messages[0], "inconnu") || strings.Contains(messages[0], "désactivé") {
			t.Fatalf("message %q reveals why", messages[0])
		}
	})

	t.Run("Expired", func(t *testing.T) {
		e.now = e.a.PasswordExpiresAt
		defer func() { e.now = winter }()
		_, err := e.svc.Login(ctx, "192.0.2.1", "agent-a", password, pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EEXPIRED {
			t.Fatalf("got %v, want EEXPIRED", err)
		}
		if msg := pigp.ErrorMessage(err); !strings.Contains(msg, "paierie") || !strings.Contains(msg, "expiré") {
			t.Fatalf("message %q, want a French message mentioning the paierie", msg)
		}
		// Only a caller who knows the password learns that it expired.
		_, err = e.svc.Login(ctx, "192.0.2.1", "agent-a", "Wrong-Horse-42", pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
			t.Fatalf("wrong password on expired account: got %v, want EUNAUTHORIZED", err)
		}
	})

	t.Run("JustBeforeExpiry", func(t *testing.T) {
		e.now = e.a.PasswordExpiresAt.Add(-time.Second)
		defer func() { e.now = winter }()
		if _, err := e.svc.Login(ctx, "", "agent-a", password, pigp.ProtocolSFTP); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})
}

func TestAuthenticateKey(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ssh.NewPublicKey(pub)
	key, err := pigp.ParseSSHKey(ssh.MarshalAuthorizedKey(pk))
	if err != nil {
		t.Fatal(err)
	}
	key.AccountID = e.a.ID
	if err := e.db.AddSSHKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	fp := ssh.FingerprintSHA256(pk)

	t.Run("OK", func(t *testing.T) {
		c, err := e.svc.AuthenticateKey(ctx, "agent-a", fp, "192.0.2.1", pigp.ProtocolSFTP)
		if err != nil {
			t.Fatal(err)
		}
		if c.AccountID != e.a.ID || c.Login != "agent-a" || c.RemoteIP != "192.0.2.1" {
			t.Fatalf("caller = %+v", c)
		}
	})
	t.Run("KeyOfAnotherAccount", func(t *testing.T) {
		_, err := e.svc.AuthenticateKey(ctx, "agent-b", fp, "", pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
			t.Fatalf("got %v, want EUNAUTHORIZED", err)
		}
	})
	t.Run("UnknownKey", func(t *testing.T) {
		_, err := e.svc.AuthenticateKey(ctx, "agent-a", "SHA256:nope", "", pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
			t.Fatalf("got %v, want EUNAUTHORIZED", err)
		}
	})
	t.Run("UnknownLogin", func(t *testing.T) {
		_, err := e.svc.AuthenticateKey(ctx, "nobody", fp, "", pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
			t.Fatalf("got %v, want EUNAUTHORIZED", err)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		e.now = e.a.PasswordExpiresAt.Add(time.Hour)
		defer func() { e.now = winter }()
		_, err := e.svc.AuthenticateKey(ctx, "agent-a", fp, "", pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EEXPIRED {
			t.Fatalf("got %v, want EEXPIRED", err)
		}
	})
	t.Run("Disabled", func(t *testing.T) {
		if err := e.db.SetAccountState(ctx, "agent-a", pigp.AccountDisabled); err != nil {
			t.Fatal(err)
		}
		defer e.db.SetAccountState(ctx, "agent-a", pigp.AccountActive)
		_, err := e.svc.AuthenticateKey(ctx, "agent-a", fp, "", pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
			t.Fatalf("got %v, want EUNAUTHORIZED", err)
		}
	})
}

// --- deposit names ---

func TestCheckDepositName(t *testing.T) {
	e := MustOpen(t)
	caller := e.callerA()
	valid := "2026_" + siretA + "_20261128101500.xml"

	t.Run("OK", func(t *testing.T) {
		n, err := e.svc.CheckDepositName(caller, valid)
		if err != nil {
			t.Fatal(err)
		}
		if n.SIRET != siretA || n.Campaign != 2026 {
			t.Fatalf("CallName = %+v", n)
		}
	})
	t.Run("OtherSIRET", func(t *testing.T) {
		_, err := e.svc.CheckDepositName(caller, "2026_"+siretB+"_20261128101500.xml")
		if pigp.ErrorCode(err) != pigp.EFORBIDDEN {
			t.Fatalf("got %v, want EFORBIDDEN", err)
		}
		if msg := pigp.ErrorMessage(err); !strings.Contains(msg, siretB) || !strings.Contains(msg, "habilité") {
			t.Fatalf("message %q, want it to name the SIRET and say the account is not habilité", msg)
		}
	})

	for _, tt := range []struct{ name, file, want string }{
		{"Empty", "", "vide"},
		{"UppercaseExtension", "2026_" + siretA + "_20261128101500.XML", "minuscules"},
		{"WinSCPPart", valid + ".filepart", "extension"},
		{"Text", "notes.txt", "extension"},
		{"TwoParts", "2026_" + siretA + ".xml", "AAAA_SIRET_AAAAMMJJhhmmss.xml"},
		{"CampaignLetters", "20a6_" + siretA + "_20261128101500.xml", "campagne"},
		{"CampaignTooOld", "1999_" + siretA + "_20261128101500.xml", "campagne"},
		{"CampaignTooFar", "2028_" + siretA + "_20261128101500.xml", "campagne"},
		{"SIRETShort", "2026_2294002880001_20261128101500.xml", "14 chiffres"},
		{"SIRETChecksum", "2026_22940028800011_20261128101500.xml", "clé de contrôle"},
		{"NotADate", "2026_" + siretA + "_20261131101500.xml", "date"},
		{"StampShort", "2026_" + siretA + "_202611281015.xml", "horodatage"},
		{"Future", "2026_" + siretA + "_20261130101500.xml", "futur"},
		{"Traversal", "../2026_" + siretA + "_20261128101500.xml", "séparateurs"},
		{"NonASCII", "2026_" + siretA + "_20261128101500é.xml", "caractère"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.CheckDepositName(caller, tt.file)
			if pigp.ErrorCode(err) != pigp.EINVALID {
				t.Fatalf("CheckDepositName(%q) = %v, want EINVALID", tt.file, err)
			}
			if msg := pigp.ErrorMessage(err); !strings.Contains(msg, tt.want) {
				t.Fatalf("message %q, want it to mention %q", msg, tt.want)
			}
		})
	}

	t.Run("BeginDepositRefusesAndCreatesNothing", func(t *testing.T) {
		for _, name := range []string{"2026_" + siretB + "_20261128101500.xml", "x.txt"} {
			if u, err := e.svc.BeginDeposit(context.Background(), caller, name); err == nil {
				u.Abort()
				t.Fatalf("BeginDeposit(%q) = nil error", name)
			}
		}
		if got := e.files(t, "tmp"); len(got) != 0 {
			t.Fatalf("tmp/ holds %v, want nothing", got)
		}
	})
}

// --- uploads ---

// upload begins a deposit, runs write on it, commits it and checks that
// the recorded size and SHA-256 are those of want and of the stored bytes.
func upload(t *testing.T, e *env, write func(t *testing.T, u *exchange.Upload), want []byte) *pigp.Deposit {
	t.Helper()
	ctx := context.Background()
	u, err := e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now.Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	write(t, u)
	if got, err := u.Size(); err != nil || got != int64(len(want)) {
		t.Fatalf("Upload.Size() = %d, %v before commit, want %d", got, err, len(want))
	}
	d, err := u.Commit(ctx)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	onDisk := e.stored(t, d.StorageKey)
	if !bytes.Equal(onDisk, want) {
		t.Fatalf("stored content (%d bytes) differs from the bytes written (%d bytes)", len(onDisk), len(want))
	}
	if d.Size != int64(len(want)) {
		t.Fatalf("deposit Size = %d, want %d", d.Size, len(want))
	}
	if got := sum(onDisk); d.SHA256 != got {
		t.Fatalf("deposit SHA256 = %s, want %s (sha256 of the stored bytes)", d.SHA256, got)
	}
	if got := e.files(t, "tmp"); len(got) != 0 {
		t.Fatalf("tmp/ holds %v after commit, want nothing", got)
	}
	return d
}

func mustWriteAt(t *testing.T, u *exchange.Upload, p []byte, off int64) {
	t.Helper()
	n, err := u.WriteAt(p, off)
	if err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
	}
}

func shuffled(t *testing.T, n int) []int {
	t.Helper()
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		order[i], order[j.Int64()] = order[j.Int64()], order[i]
	}
	return order
}

func TestUpload(t *testing.T) {
	const chunk = 32 << 10
	e := MustOpen(t)
	data := randomBytes(t, 64*chunk)

	t.Run("Sequential", func(t *testing.T) {
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			for off := 0; off < len(data); off += chunk {
				mustWriteAt(t, u, data[off:off+chunk], int64(off))
			}
		}, data)
	})

	t.Run("SequentialOddSizes", func(t *testing.T) {
		want := data[:100_003]
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			for off := 0; off < len(want); off += 7919 {
				end := min(off+7919, len(want))
				mustWriteAt(t, u, want[off:end], int64(off))
			}
		}, want)
	})

	t.Run("ConcurrentOutOfOrder", func(t *testing.T) {
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for _, i := range shuffled(t, 64) {
				wg.Go(func() {
					off := int64(i * chunk)
					if _, err := u.WriteAt(data[off:off+chunk], off); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		}, data)
	})

	t.Run("ReverseOrder", func(t *testing.T) {
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			for i := 63; i >= 0; i-- {
				mustWriteAt(t, u, data[i*chunk:(i+1)*chunk], int64(i*chunk))
			}
		}, data)
	})

	t.Run("OverlappingPendingExtents", func(t *testing.T) {
		want := data[:300]
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, want[100:200], 100)
			mustWriteAt(t, u, want[150:300], 150)
			mustWriteAt(t, u, want[0:100], 0)
		}, want)
	})

	t.Run("PendingExtentRewritten", func(t *testing.T) {
		want := bytes.Clone(data[:300])
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, bytes.Repeat([]byte{'x'}, 100), 200) // superseded below
			mustWriteAt(t, u, want[200:300], 200)
			mustWriteAt(t, u, want[100:200], 100)
			mustWriteAt(t, u, want[0:100], 0)
		}, want)
	})

	t.Run("OverlappingRewrite", func(t *testing.T) {
		want := bytes.Clone(data[:10*chunk])
		patch := randomBytes(t, 10_000)
		copy(want[50_000:], patch)
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			for off := 0; off < 10*chunk; off += chunk {
				mustWriteAt(t, u, data[off:off+chunk], int64(off))
			}
			mustWriteAt(t, u, patch, 50_000)
		}, want)
	})

	t.Run("ConcurrentSameRegion", func(t *testing.T) {
		// Two writers race on the same bytes with the same content.
		want := data[:4*chunk]
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			var wg sync.WaitGroup
			for range 2 {
				for _, i := range shuffled(t, 4) {
					wg.Go(func() { u.WriteAt(want[i*chunk:(i+1)*chunk], int64(i*chunk)) })
				}
			}
			wg.Wait()
		}, want)
	})

	t.Run("TruncateShrink", func(t *testing.T) {
		want := data[:60_000]
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, data[:100_000], 0)
			if err := u.Truncate(60_000); err != nil {
				t.Fatal(err)
			}
		}, want)
	})

	t.Run("TruncateToZeroThenWrite", func(t *testing.T) {
		want := data[chunk : 2*chunk]
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, data[:chunk], 0)
			if err := u.Truncate(0); err != nil {
				t.Fatal(err)
			}
			mustWriteAt(t, u, want, 0)
		}, want)
	})

	t.Run("TruncateExtend", func(t *testing.T) {
		want := append(bytes.Clone(data[:1000]), make([]byte, 500)...)
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, data[:1000], 0)
			if err := u.Truncate(1500); err != nil {
				t.Fatal(err)
			}
		}, want)
	})

	t.Run("TruncateExtendThenFill", func(t *testing.T) {
		want := data[:2000]
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			if err := u.Truncate(2000); err != nil { // scp announces the size first
				t.Fatal(err)
			}
			mustWriteAt(t, u, data[:1000], 0)
			mustWriteAt(t, u, data[1000:2000], 1000)
		}, want)
	})

	t.Run("TruncateWithPendingExtent", func(t *testing.T) {
		want := make([]byte, 250)
		copy(want, data[:100])
		copy(want[200:], data[200:250])
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, data[200:300], 200)
			mustWriteAt(t, u, data[:100], 0)
			if err := u.Truncate(250); err != nil {
				t.Fatal(err)
			}
		}, want)
	})

	t.Run("Sparse", func(t *testing.T) {
		want := append(make([]byte, 1000), data[:500]...)
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, data[:500], 1000)
		}, want)
	})

	t.Run("Gap", func(t *testing.T) {
		want := make([]byte, 3000)
		copy(want, data[:1000])
		copy(want[2000:], data[1000:2000])
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, data[:1000], 0)
			mustWriteAt(t, u, data[1000:2000], 2000)
		}, want)
	})

	t.Run("Empty", func(t *testing.T) {
		d := upload(t, e, func(t *testing.T, u *exchange.Upload) {}, nil)
		if d.SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
			t.Fatalf("SHA256 of an empty deposit = %s", d.SHA256)
		}
	})

	t.Run("ReadBack", func(t *testing.T) {
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, data[:5000], 0)
			got := make([]byte, 1000)
			if n, err := u.ReadAt(got, 2000); err != nil || n != 1000 || !bytes.Equal(got, data[2000:3000]) {
				t.Fatalf("ReadAt = %d, %v, equal %v", n, err, bytes.Equal(got, data[2000:3000]))
			}
		}, data[:5000])
	})

	// Offsets and sizes out of range (a client's 64-bit unsigned values
	// arrive as negative int64 from 2^63) are refused before any
	// arithmetic, and the upload can then only be aborted.
	for _, tc := range []struct {
		name string
		do   func(u *exchange.Upload) error
	}{
		{"NegativeOffset", func(u *exchange.Upload) error { _, err := u.WriteAt([]byte("x"), -1); return err }},
		{"OverflowingOffset", func(u *exchange.Upload) error { _, err := u.WriteAt(make([]byte, 10), math.MaxInt64-4); return err }},
		{"NegativeSize", func(u *exchange.Upload) error { return u.Truncate(math.MinInt64) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := e.svc.BeginDeposit(context.Background(), e.callerA(), callName(siretA, e.now))
			if err != nil {
				t.Fatal(err)
			}
			defer u.Abort()
			if _, err := u.WriteAt([]byte("<x/>"), 0); err != nil {
				t.Fatal(err)
			}
			err = tc.do(u)
			if pigp.ErrorCode(err) != pigp.ETOOLARGE || !strings.Contains(pigp.ErrorMessage(err), "dépasse la taille maximale") {
				t.Fatalf("got %v, want ETOOLARGE naming the size limit", err)
			}
			if u.Failed() == nil {
				t.Fatal("the upload can still be committed after a refused write")
			}
			if _, err := u.Commit(context.Background()); pigp.ErrorCode(err) != pigp.ETOOLARGE {
				t.Fatalf("Commit after the refusal = %v, want the refusal", err)
			}
		})
	}
}

func TestUpload_Deposit(t *testing.T) {
	e := MustOpen(t)
	e.svc.Audit = e.db
	ctx := context.Background()
	name := callName(siretA, e.now.Add(-time.Hour))
	caller := e.callerA()
	caller.RemoteIP, caller.Protocol = "203.0.113.9", pigp.ProtocolSFTP
	u, err := e.svc.BeginDeposit(ctx, caller, name)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name() != name {
		t.Fatalf("Name() = %q, want %q", u.Name(), name)
	}
	content := []byte("<DemandeAPA/>\n")
	mustWriteAt(t, u, content, 0)
	d, err := u.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, d *pigp.Deposit) {
		t.Helper()
		if !pigp.IsID(d.ID) {
			t.Errorf("ID = %q, want 32 lowercase hex", d.ID)
		}
		if d.ExternalName != name {
			t.Errorf("ExternalName = %q, want %q", d.ExternalName, name)
		}
		if want := name + "." + siretA; d.InternalName != want {
			t.Errorf("InternalName = %q, want %q", d.InternalName, want)
		}
		if d.SIRET != siretA || d.AccountID != e.a.ID || d.Login != "agent-a" {
			t.Errorf("SIRET, AccountID, Login = %s, %d, %s", d.SIRET, d.AccountID, d.Login)
		}
		if d.Status != "RECU" {
			t.Errorf("Status = %q, want RECU", d.Status)
		}
		if d.ClientIP != "203.0.113.9" || d.Protocol != pigp.ProtocolSFTP {
			t.Errorf("ClientIP, Protocol = %q, %q", d.ClientIP, d.Protocol)
		}
		if !d.DepositedAt.Equal(e.now) {
			t.Errorf("DepositedAt = %v, want %v", d.DepositedAt, e.now)
		}
		if d.Size != int64(len(content)) || d.SHA256 != sum(content) {
			t.Errorf("Size, SHA256 = %d, %s; want %d, %s", d.Size, d.SHA256, len(content), sum(content))
		}
		if !e.blobs.Exists(d.StorageKey) {
			t.Errorf("StorageKey %q does not exist", d.StorageKey)
		}
	}
	t.Run("Returned", func(t *testing.T) { check(t, d) })
	t.Run("Recorded", func(t *testing.T) {
		ds, err := e.svc.PendingDeposits(ctx, caller)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].ID != d.ID {
			t.Fatalf("PendingDeposits = %+v, want the one deposit", ds)
		}
		check(t, ds[0])
	})
	t.Run("NotVisibleToOtherOrganisation", func(t *testing.T) {
		ds, err := e.svc.PendingDeposits(ctx, e.callerB())
		if err != nil || len(ds) != 0 {
			t.Fatalf("PendingDeposits(B) = %+v, %v; want none", ds, err)
		}
	})
	t.Run("CommitTwice", func(t *testing.T) {
		if _, err := u.Commit(ctx); err == nil {
			t.Fatal("second Commit = nil error")
		}
		if got := len(e.deposits(t, siretA)); got != 1 {
			t.Fatalf("%d deposits, want 1", got)
		}
	})
	again := func(t *testing.T, data []byte) *pigp.Deposit {
		t.Helper()
		u, err := e.svc.BeginDeposit(ctx, caller, name)
		if err != nil {
			t.Fatal(err)
		}
		mustWriteAt(t, u, data, 0)
		d2, err := u.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d2
	}
	t.Run("SameFileAgainIsTheSameDeposit", func(t *testing.T) {
		// A client whose OK was lost sends the file again: answered OK
		// with the first deposit, nothing new recorded, nothing stored.
		d2 := again(t, content)
		if d2.ID != d.ID || !d2.Duplicate || d2.SHA256 != d.SHA256 {
			t.Fatalf("retry gave %+v, want deposit %s marked duplicate", d2, d.ID)
		}
		if got := len(e.deposits(t, siretA)); got != 1 {
			t.Fatalf("%d deposits after a retry, want 1", got)
		}
		if got := objectCount(t, e); got != 1 {
			t.Fatalf("%d stored objects after a retry, want 1", got)
		}
		evs, _ := e.db.ListAudit(ctx, pigp.AuditFilter{})
		last := evs[len(evs)-1]
		if last.Action != pigp.AuditUploadDuplicate || last.Object != name || !strings.Contains(last.Detail, d.ID) {
			t.Fatalf("retry not audited as a duplicate: %+v", last)
		}
	})
	t.Run("OtherContentSameNameIsANewDeposit", func(t *testing.T) {
		other := append([]byte(nil), content...)
		other[len(other)-2] ^= 1
		d2 := again(t, other)
		if d2.ID == d.ID || d2.StorageKey == d.StorageKey || d2.Duplicate {
			t.Fatalf("second deposit reuses id or key: %s %s", d2.ID, d2.StorageKey)
		}
		if got := len(e.deposits(t, siretA)); got != 2 {
			t.Fatalf("%d deposits, want 2", got)
		}
	})
	t.Run("SameFileAfterTheWindowIsANewDeposit", func(t *testing.T) {
		e.now = e.now.Add(e.svc.DuplicateWindow + time.Minute)
		defer func() { e.now = e.now.Add(-e.svc.DuplicateWindow - time.Minute) }()
		d2 := again(t, content)
		if d2.ID == d.ID || d2.Duplicate {
			t.Fatalf("upload after the window answered as a duplicate: %+v", d2)
		}
		if got := len(e.deposits(t, siretA)); got != 3 {
			t.Fatalf("%d deposits, want 3", got)
		}
	})
}

// objectCount counts the committed objects of the content store.
func objectCount(t *testing.T, e *env) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(e.blobs.Dir(), "objects"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestUpload_TooLarge(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	e.svc.MaxUploadSize = 1000
	data := randomBytes(t, 2000)

	t.Run("AtLimit", func(t *testing.T) {
		upload(t, e, func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, data[:600], 0)
			mustWriteAt(t, u, data[600:1000], 600)
		}, data[:1000])
	})
	before := len(e.deposits(t, siretA))

	for _, tt := range []struct {
		name  string
		write func(u *exchange.Upload) error
	}{
		{"WriteAt", func(u *exchange.Upload) error {
			if _, err := u.WriteAt(data[:600], 0); err != nil {
				t.Fatal(err)
			}
			_, err := u.WriteAt(data[600:1001], 600)
			return err
		}},
		{"SparseWriteAt", func(u *exchange.Upload) error {
			_, err := u.WriteAt(data[:10], 995)
			return err
		}},
		{"Truncate", func(u *exchange.Upload) error { return u.Truncate(1001) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now))
			if err != nil {
				t.Fatal(err)
			}
			err = tt.write(u)
			if pigp.ErrorCode(err) != pigp.ETOOLARGE {
				t.Fatalf("got %v, want ETOOLARGE", err)
			}
			if msg := pigp.ErrorMessage(err); !strings.Contains(msg, "taille maximale") {
				t.Fatalf("message %q, want it to mention the taille maximale", msg)
			}
			if pigp.ErrorCode(u.Failed()) != pigp.ETOOLARGE {
				t.Fatalf("Failed() = %v, want ETOOLARGE", u.Failed())
			}
			// Later writes under the limit do not make the upload usable again.
			u.WriteAt([]byte("x"), 0)
			d, err := u.Commit(ctx)
			if err == nil || d != nil {
				t.Fatalf("Commit = %+v, %v; want an error", d, err)
			}
			if pigp.ErrorCode(err) != pigp.ETOOLARGE {
				t.Fatalf("Commit error = %v, want ETOOLARGE", err)
			}
			if got := len(e.deposits(t, siretA)); got != before {
				t.Fatalf("%d deposits, want %d (nothing recorded)", got, before)
			}
			if got := e.files(t, "tmp"); len(got) != 0 {
				t.Fatalf("tmp/ holds %v, want nothing", got)
			}
		})
	}
	if got := len(e.files(t, "objects")); got != before {
		t.Fatalf("%d objects stored, want %d", got, before)
	}
}

func TestUpload_Abort(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	u, err := e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now))
	if err != nil {
		t.Fatal(err)
	}
	mustWriteAt(t, u, []byte("half a file"), 0)
	if got := e.files(t, "tmp"); len(got) != 1 {
		t.Fatalf("tmp/ holds %v while uploading, want one file", got)
	}
	u.Abort()
	if got := e.files(t, "tmp"); len(got) != 0 {
		t.Fatalf("tmp/ holds %v after Abort, want nothing", got)
	}
	if d, err := u.Commit(ctx); err == nil {
		t.Fatalf("Commit after Abort = %+v, nil; want an error", d)
	}
	if got := e.deposits(t, siretA); len(got) != 0 {
		t.Fatalf("deposits = %+v, want none", got)
	}
	if got := e.files(t, "objects"); len(got) != 0 {
		t.Fatalf("objects = %v, want none", got)
	}
}

// TestUpload_SizeError: when the upload's file fails under it, Size
// returns the error (never a size of 0 with a nil error), both when the
// stat fails and when the chunks held back in memory cannot be written;
// Commit then fails and records nothing.
func TestUpload_SizeError(t *testing.T) {
	for _, tt := range []struct {
		name  string
		write func(t *testing.T, u *exchange.Upload)
		want  string
	}{
		// Everything is on file: only the stat of the file can fail.
		{"Stat", func(t *testing.T, u *exchange.Upload) { mustWriteAt(t, u, []byte("<DemandeAPA/>"), 0) }, "size of upload"},
		// A chunk ahead of the written prefix waits in memory: Size writes
		// it first, and that write fails.
		{"Flush", func(t *testing.T, u *exchange.Upload) {
			mustWriteAt(t, u, []byte("<DemandeAPA>"), 0)
			mustWriteAt(t, u, []byte("</DemandeAPA>"), 1000)
		}, "write upload"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := MustOpen(t)
			ctx := context.Background()
			u, err := e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now))
			if err != nil {
				t.Fatal(err)
			}
			tt.write(t, u)
			if err := exchange.CloseUploadFile(u); err != nil {
				t.Fatal(err)
			}
			got, err := u.Size()
			if err == nil || got != 0 || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Upload.Size() = %d, %v with its file closed; want 0 and an error %q", got, err, tt.want)
			}
			if d, err := u.Commit(ctx); err == nil {
				t.Fatalf("Commit = %+v, nil with its file closed; want an error", d)
			}
			if got := e.deposits(t, siretA); len(got) != 0 {
				t.Fatalf("deposits = %+v, want none", got)
			}
			if n := objectCount(t, e); n != 0 {
				t.Fatalf("%d objects stored, want none", n)
			}
			if got := e.files(t, "tmp"); len(got) != 0 {
				t.Fatalf("tmp/ holds %v after the failed commit, want nothing", got)
			}
		})
	}
}

// --- responses ---

const respName = "2026_" + siretA + "_20261128103016_REP.xml"

func mustPublish(t *testing.T, e *env, siret, name string, content []byte) *pigp.Response {
	t.Helper()
	r, err := e.svc.Publish(context.Background(), siret, name, pigp.DocResponse, "", bytes.NewReader(content))
	if err != nil {
		t.Fatalf("Publish(%s, %s): %v", siret, name, err)
	}
	return r
}

// readAll opens name as caller, reads it to the end through Read, and closes it.
func readAll(t *testing.T, e *env, caller *pigp.Caller, name string) []byte {
	t.Helper()
	rr, err := e.svc.OpenResponse(context.Background(), caller, name)
	if err != nil {
		t.Fatalf("OpenResponse(%s): %v", name, err)
	}
	b, err := io.ReadAll(rr)
	if err != nil {
		t.Fatal(err)
	}
	if !rr.Complete() {
		t.Fatal("Complete() = false after reading everything")
	}
	if err := rr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return b
}

func (e *env) downloads(tb testing.TB, sirets ...string) []*pigp.Download {
	tb.Helper()
	ds, err := e.db.ListDownloads(context.Background(), pigp.HistoryFilter{SIRETs: sirets})
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

func TestPublish(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	content := randomBytes(t, 70_000)
	r := mustPublish(t, e, siretA, respName, content)

	if !pigp.IsID(r.ID) || r.Name != respName || r.SIRET != siretA || r.DocType != pigp.DocResponse {
		t.Fatalf("response = %+v", r)
	}
	if r.Size != int64(len(content)) || r.SHA256 != sum(content) {
		t.Fatalf("Size, SHA256 = %d, %s; want %d, %s", r.Size, r.SHA256, len(content), sum(content))
	}
	if r.State != pigp.ResponseAvailable || !r.AvailableAt.Equal(e.now) || !r.ExpiresAt.Equal(e.now.Add(pigp.DefaultRetention)) {
		t.Fatalf("State, AvailableAt, ExpiresAt = %s, %v, %v", r.State, r.AvailableAt, r.ExpiresAt)
	}
	if r.FirstDownloadAt != nil {
		t.Fatalf("FirstDownloadAt = %v, want nil", r.FirstDownloadAt)
	}
	if got := e.stored(t, r.StorageKey); !bytes.Equal(got, content) {
		t.Fatal("stored content differs")
	}

	t.Run("Refused", func(t *testing.T) {
		for _, tt := range []struct{ name, siret, file, docType string }{
			{"BadSIRET", "22940028800011", "a.xml", pigp.DocResponse},
			{"Traversal", siretA, "../a.xml", pigp.DocResponse},
			{"Hidden", siretA, ".a.xml", pigp.DocResponse},
			{"Space", siretA, "a b.xml", pigp.DocResponse},
			{"Semicolon", siretA, "a;b.xml", pigp.DocResponse},
			{"Empty", siretA, "", pigp.DocResponse},
			{"DocType", siretA, "a.xml", "Autre"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.svc.Publish(ctx, tt.siret, tt.file, tt.docType, "", strings.NewReader("x"))
				if pigp.ErrorCode(err) != pigp.EINVALID {
					t.Fatalf("got %v, want EINVALID", err)
				}
			})
		}
		if got := e.files(t, "objects"); len(got) != 1 {
			t.Fatalf("objects = %v, want only the published response", got)
		}
	})

	t.Run("DuplicateName", func(t *testing.T) {
		_, err := e.svc.Publish(ctx, siretA, respName, pigp.DocResponse, "", strings.NewReader("again"))
		if pigp.ErrorCode(err) != pigp.ECONFLICT {
			t.Fatalf("got %v, want ECONFLICT", err)
		}
		if got := e.files(t, "objects"); len(got) != 1 {
			t.Fatalf("objects = %v, want the content of the refused one removed", got)
		}
		if got := e.files(t, "tmp"); len(got) != 0 {
			t.Fatalf("tmp/ = %v, want nothing", got)
		}
	})

	t.Run("Report", func(t *testing.T) {
		r, err := e.svc.Publish(ctx, siretA, "2026_"+siretA+"_20261128103016_CR.xml", pigp.DocReport, "", strings.NewReader("<CompteRenduAPA/>"))
		if err != nil || r.DocType != pigp.DocReport {
			t.Fatalf("Publish(report) = %+v, %v", r, err)
		}
	})
}

func TestResponses(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	first := mustPublish(t, e, siretA, "first.xml", []byte("one"))
	e.now = e.now.Add(time.Minute)
	second := mustPublish(t, e, siretA, "second.xml", []byte("two"))
	mustPublish(t, e, siretB, "other.xml", []byte("three"))

	rs, err := e.svc.Responses(ctx, e.callerA())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != second.ID || rs[1].ID != first.ID {
		t.Fatalf("Responses(A) = %v, want second then first", names(rs))
	}
	if _, err := e.svc.OpenResponse(ctx, e.callerB(), "first.xml"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("OpenResponse(B, A's file) = %v, want ENOTFOUND", err)
	}
	if _, err := e.svc.OpenResponse(ctx, e.callerA(), "missing.xml"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
		t.Fatalf("OpenResponse(missing) = %v, want ENOTFOUND", err)
	}

	t.Run("Expired", func(t *testing.T) {
		e.now = first.ExpiresAt
		defer func() { e.now = winter.Add(time.Minute) }()
		rs, err := e.svc.Responses(ctx, e.callerA())
		if err != nil || len(rs) != 1 || rs[0].ID != second.ID {
			t.Fatalf("Responses at first's expiry = %v, %v; want only second", names(rs), err)
		}
		if _, err := e.svc.OpenResponse(ctx, e.callerA(), "first.xml"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("OpenResponse(expired) = %v, want ENOTFOUND", err)
		}
	})
}

func names(rs []*pigp.Response) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func TestOpenResponse_Download(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	content := randomBytes(t, 100_000)
	mustPublish(t, e, siretA, respName, content)
	caller := e.callerA()

	t.Run("PartialReadRecordsNothing", func(t *testing.T) {
		rr, err := e.svc.OpenResponse(ctx, caller, respName)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 60_000)
		if _, err := rr.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		if rr.Complete() {
			t.Fatal("Complete() = true after a partial read")
		}
		if err := rr.Close(); err != nil {
			t.Fatal(err)
		}
		if got := e.downloads(t, siretA); len(got) != 0 {
			t.Fatalf("downloads = %+v, want none", got)
		}
		r, err := e.db.FindAvailableResponse(ctx, caller.SIRETs, respName, e.now)
		if err != nil || r.FirstDownloadAt != nil {
			t.Fatalf("FirstDownloadAt = %v, %v; want nil", r.FirstDownloadAt, err)
		}
	})

	t.Run("RemoveBeforeDownload", func(t *testing.T) {
		err := e.svc.RemoveResponse(ctx, caller, respName)
		if pigp.ErrorCode(err) != pigp.EFORBIDDEN {
			t.Fatalf("RemoveResponse before download = %v, want EFORBIDDEN", err)
		}
		if msg := pigp.ErrorMessage(err); !strings.Contains(msg, "téléchargé") {
			t.Fatalf("message %q, want it to say the file was not downloaded", msg)
		}
		if rs, _ := e.svc.Responses(ctx, caller); len(rs) != 1 {
			t.Fatalf("Responses = %v, want the file still listed", names(rs))
		}
	})

	downloadAt := e.now.Add(5 * time.Minute)
	t.Run("FullRead", func(t *testing.T) {
		e.now = downloadAt
		if got := readAll(t, e, caller, respName); !bytes.Equal(got, content) {
			t.Fatalf("read %d bytes, differing from the %d published", len(got), len(content))
		}
		ds := e.downloads(t, siretA)
		if len(ds) != 1 {
			t.Fatalf("downloads = %+v, want one", ds)
		}
		d := ds[0]
		if d.ResponseName != respName || d.Login != "agent-a" || d.AccountID != e.a.ID || d.SIRET != siretA ||
			d.ClientIP != caller.RemoteIP || d.Protocol != pigp.ProtocolSFTP || d.Size != int64(len(content)) ||
			!d.DownloadedAt.Equal(downloadAt) || d.DocType != pigp.DocResponse {
			t.Fatalf("download = %+v", d)
		}
		r, err := e.db.FindAvailableResponse(ctx, caller.SIRETs, respName, e.now)
		if err != nil {
			t.Fatal(err)
		}
		if r.FirstDownloadAt == nil || !r.FirstDownloadAt.Equal(downloadAt) {
			t.Fatalf("FirstDownloadAt = %v, want %v", r.FirstDownloadAt, downloadAt)
		}
	})

	t.Run("SecondDownloadKeepsFirstDate", func(t *testing.T) {
		e.now = downloadAt.Add(time.Hour)
		// Read in reverse chunks through ReadAt, as a parallel client would.
		rr, err := e.svc.OpenResponse(ctx, caller, respName)
		if err != nil {
			t.Fatal(err)
		}
		const chunk = 32 << 10
		got := make([]byte, len(content))
		for off := (len(content) / chunk) * chunk; off >= 0; off -= chunk {
			end := min(off+chunk, len(content))
			if n, err := rr.ReadAt(got[off:end], int64(off)); n != end-off {
				t.Fatalf("ReadAt(%d) = %d, %v", off, n, err)
			}
		}
		if !bytes.Equal(got, content) {
			t.Fatal("content read differs")
		}
		if err := rr.Close(); err != nil {
			t.Fatal(err)
		}
		if err := rr.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if got := len(e.downloads(t, siretA)); got != 2 {
			t.Fatalf("%d downloads, want 2 (a second Close records nothing)", got)
		}
		r, _ := e.db.FindAvailableResponse(ctx, caller.SIRETs, respName, e.now)
		if r.FirstDownloadAt == nil || !r.FirstDownloadAt.Equal(downloadAt) {
			t.Fatalf("FirstDownloadAt = %v, want the first download %v", r.FirstDownloadAt, downloadAt)
		}
	})

	t.Run("OtherOrganisationCannotRemove", func(t *testing.T) {
		if err := e.svc.RemoveResponse(ctx, e.callerB(), respName); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("RemoveResponse(B) = %v, want ENOTFOUND", err)
		}
	})

	t.Run("RemoveAfterDownload", func(t *testing.T) {
		r, _ := e.db.FindAvailableResponse(ctx, caller.SIRETs, respName, e.now)
		if err := e.svc.RemoveResponse(ctx, caller, respName); err != nil {
			t.Fatalf("RemoveResponse after download = %v", err)
		}
		if rs, _ := e.svc.Responses(ctx, caller); len(rs) != 0 {
			t.Fatalf("Responses = %v, want none", names(rs))
		}
		if e.blobs.Exists(r.StorageKey) {
			t.Fatal("content still stored after removal")
		}
		if _, err := e.svc.OpenResponse(ctx, caller, respName); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("OpenResponse after removal = %v, want ENOTFOUND", err)
		}
		if err := e.svc.RemoveResponse(ctx, caller, respName); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("second RemoveResponse = %v, want ENOTFOUND", err)
		}
		if got := len(e.downloads(t, siretA)); got != 2 {
			t.Fatalf("%d downloads in the history, want 2 kept", got)
		}
	})
}

func TestOpenResponse_EmptyFile(t *testing.T) {
	e := MustOpen(t)
	mustPublish(t, e, siretA, "empty.xml", nil)
	if got := readAll(t, e, e.callerA(), "empty.xml"); len(got) != 0 {
		t.Fatalf("read %d bytes, want 0", len(got))
	}
	if got := len(e.downloads(t, siretA)); got != 1 {
		t.Fatalf("%d downloads, want 1", got)
	}
}

func TestOpenResponse_OverlappingReads(t *testing.T) {
	e := MustOpen(t)
	content := randomBytes(t, 200)
	mustPublish(t, e, siretA, "r.xml", content)
	rr, err := e.svc.OpenResponse(context.Background(), e.callerA(), "r.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	// Every byte is served: [100,200) first, then [0,150).
	buf := make([]byte, 150)
	rr.ReadAt(buf[:100], 100)
	rr.ReadAt(buf, 0)
	if !rr.Complete() {
		t.Fatal("every byte was served ([100,200) then [0,150)) but Complete() is false")
	}
}

// --- history ---

func lines(t *testing.T, b []byte) []string {
	t.Helper()
	s, ok := strings.CutPrefix(string(b), "\xef\xbb\xbf")
	if !ok {
		t.Fatalf("CSV %q does not begin with the UTF-8 byte-order mark", b)
	}
	if !strings.HasSuffix(s, "\r\n") {
		t.Fatalf("CSV %q does not end with CRLF", s)
	}
	if strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") {
		t.Fatalf("CSV %q has a bare LF", s)
	}
	return strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
}

func TestDepositsCSV(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	deposit := func(caller *pigp.Caller, siret string, at time.Time, content string) *pigp.Deposit {
		t.Helper()
		e.now = at
		u, err := e.svc.BeginDeposit(ctx, caller, callName(siret, at.Add(-time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		mustWriteAt(t, u, []byte(content), 0)
		d, err := u.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tooOld := deposit(e.callerA(), siretA, winter.AddDate(0, -12, 0).Add(-time.Hour), "old")
	justIn := deposit(e.callerA(), siretA, winter.AddDate(0, -12, 0).Add(time.Hour), "just in")
	summer := deposit(e.callerA(), siretA, time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC), "summer")
	other := deposit(e.callerB(), siretB, winter.Add(-2*time.Hour), "B's")
	latest := deposit(e.callerA(), siretA, winter.Add(-time.Hour), "latest")
	e.now = winter

	b, err := e.svc.DepositsCSV(ctx, e.callerA())
	if err != nil {
		t.Fatal(err)
	}
	got := lines(t, b)
	row := func(d *pigp.Deposit, date string) string {
		return strings.Join([]string{d.ExternalName, d.InternalName, date, fmt.Sprint(d.Size), d.ID, "RECU", d.SHA256}, ";")
	}
	want := []string{
		"nom_externe;nom_interne;date_depot;taille;identifiant_depot;statut;sha256",
		row(latest, "2026-11-28T11:00:00+01:00"),
		row(summer, "2026-07-01T12:00:00+02:00"),
		row(justIn, "2025-11-28T13:00:00+01:00"),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("depots.csv =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range []*pigp.Deposit{tooOld, other} {
		if bytes.Contains(b, []byte(d.ID)) {
			t.Errorf("depots.csv holds deposit %s (%s)", d.ID, d.ExternalName)
		}
	}
	if !strings.HasSuffix(latest.InternalName, "."+siretA) {
		t.Errorf("InternalName %q does not end with the SIRET", latest.InternalName)
	}

	t.Run("Empty", func(t *testing.T) {
		e2 := MustOpen(t)
		b, err := e2.svc.DepositsCSV(ctx, e2.callerA())
		if err != nil {
			t.Fatal(err)
		}
		if want := "\xef\xbb\xbfnom_externe;nom_interne;date_depot;taille;identifiant_depot;statut;sha256\r\n"; string(b) != want {
			t.Fatalf("empty depots.csv = %q, want %q", b, want)
		}
	})
}

func TestDownloadsCSV(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	oldResp := "2025_" + siretA + "_20251001100000_REP.xml"
	e.now = winter.AddDate(-1, 0, -1)
	mustPublish(t, e, siretA, oldResp, []byte("old"))
	readAll(t, e, e.callerA(), oldResp) // 12 months and a day ago: out of the window

	e.now = winter.Add(-3 * time.Hour)
	mustPublish(t, e, siretA, respName, []byte("<ReponseAPA/>"))
	mustPublish(t, e, siretB, "b.xml", []byte("B"))
	readAll(t, e, e.callerB(), "b.xml")

	e.now = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	weird := e.callerA()
	weird.RemoteIP = `10.0.0.1;"x"`
	readAll(t, e, weird, respName)

	e.now = winter
	readAll(t, e, e.callerA(), respName)

	b, err := e.svc.DownloadsCSV(ctx, e.callerA())
	if err != nil {
		t.Fatal(err)
	}
	got := lines(t, b)
	want := []string{
		"nom_fichier;type_document;taille;date_telechargement;identifiant;protocole;adresse_ip",
		respName + ";Fichier réponse APA;13;2026-11-28T12:00:00+01:00;agent-a;SFTP;192.0.2.10",
		respName + `;Fichier réponse APA;13;2026-11-28T10:30:00+01:00;agent-a;SFTP;"10.0.0.1;""x"""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("retraits.csv =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if bytes.Contains(b, []byte("b.xml")) || bytes.Contains(b, []byte(oldResp)) {
		t.Fatalf("retraits.csv holds another SIRET's or too old downloads:\n%s", b)
	}

	t.Run("OtherOrganisation", func(t *testing.T) {
		b, err := e.svc.DownloadsCSV(ctx, e.callerB())
		if err != nil {
			t.Fatal(err)
		}
		got := lines(t, b)
		if len(got) != 2 || !strings.HasPrefix(got[1], "b.xml;") || !strings.Contains(got[1], ";agent-b;") {
			t.Fatalf("retraits.csv of B = %q", got)
		}
	})
}

// --- formatting ---

func TestFormatSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 o"},
		{529, "529 o"},
		{1023, "1023 o"},
		{1024, "1 Ko"},
		{1025, "2 Ko"},
		{7 * 1024, "7 Ko"},
		{7000, "7 Ko"},
		{1 << 20, "1 Mo"},
		{3 << 19, "1,5 Mo"},
		{100 << 20, "100 Mo"},
		{1 << 30, "1 Go"},
		{3 << 29, "1,5 Go"},
		{10 << 30, "10 Go"},
	}
	for _, tt := range tests {
		if got := exchange.FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestValidFileName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{respName, true},
		{"a", true},
		{"A-b_c.1", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{"", false},
		{".hidden", false},
		{"..", false},
		{"a/b", false},
		{`a\b`, false},
		{"a b", false},
		{"é.xml", false},
		{"a;b", false},
	}
	for _, tt := range tests {
		if got := exchange.ValidFileName(tt.name); got != tt.want {
			t.Errorf("ValidFileName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
