package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/exchange"
)

// waitFor polls cond for up to 10 s (the machine may be busy).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// blocker holds the limiter's running places until released.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocker) fn() {
	b.started <- struct{}{}
	<-b.release
}

func TestHashLimiter_Bound(t *testing.T) {
	h := exchange.NewHashLimiter(3, 1000, time.Minute, nil, nil)
	var running, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := h.Do(context.Background(), fmt.Sprintf("192.0.2.%d", i%7), func() {
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				running.Add(-1)
			})
			if err != nil {
				t.Errorf("check %d refused: %v", i, err)
			}
		}()
	}
	wg.Wait()
	st := h.Stats()
	if peak.Load() > 3 || st.MaxRunning > 3 || st.Checks != 60 || st.Refused != 0 {
		t.Fatalf("peak %d, stats %+v; want at most 3 at once and 60 checks", peak.Load(), st)
	}
}

func TestHashLimiter_FairAcrossAddresses(t *testing.T) {
	h := exchange.NewHashLimiter(1, 100, time.Minute, nil, nil)
	b := newBlocker()
	go h.Do(context.Background(), "flood", b.fn)
	<-b.started
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(key string) {
		wg.Add(1)
		queued := h.Stats().Queued
		go func() {
			defer wg.Done()
			h.Do(context.Background(), key, func() {
				mu.Lock()
				order = append(order, key)
				mu.Unlock()
			})
		}()
		waitFor(t, key+" queued", func() bool { return h.Stats().Queued == queued+1 })
	}
	for range 10 {
		enqueue("flood")
	}
	enqueue("honest")
	close(b.release)
	wg.Wait()
	// One place per address in turn: the honest address is served second,
	// not after the ten waiting before it.
	if len(order) != 11 || order[1] != "honest" {
		t.Fatalf("service order %v, want honest second", order)
	}
}

func TestHashLimiter_QueueFull(t *testing.T) {
	h := exchange.NewHashLimiter(1, 2, time.Minute, nil, nil)
	b := newBlocker()
	go h.Do(context.Background(), "a", b.fn)
	<-b.started
	results := make(chan string, 10)
	do := func(key string) {
		queued := h.Stats().Queued
		go func() {
			err := h.Do(context.Background(), key, func() {})
			results <- fmt.Sprintf("%s:%v", key, err == nil)
		}()
		waitFor(t, key+" queued", func() bool { return h.Stats().Queued == queued+1 })
	}
	do("a")
	do("a")
	// The queue is full of a's waiters: another one from a is refused at once.
	if err := h.Do(context.Background(), "a", func() { t.Error("ran past a full queue") }); !errors.Is(err, pigp.ErrPasswordNotChecked) {
		t.Fatalf("third waiter of a: %v, want ErrPasswordNotChecked", err)
	}
	// A newcomer from b takes the place of a's newest waiter.
	do("b")
	if r := <-results; r != "a:false" {
		t.Fatalf("got %s, want a's newest waiter refused", r)
	}
	close(b.release)
	got := map[string]bool{<-results: true, <-results: true}
	if !got["a:true"] || !got["b:true"] {
		t.Fatalf("results %v, want a's first waiter and b served", got)
	}
	if st := h.Stats(); st.Refused != 2 {
		t.Fatalf("stats %+v, want 2 refused", st)
	}
}

func TestHashLimiter_WaitAndContext(t *testing.T) {
	h := exchange.NewHashLimiter(1, 10, 20*time.Millisecond, nil, nil)
	b := newBlocker()
	go h.Do(context.Background(), "a", b.fn)
	<-b.started
	defer close(b.release)
	if err := h.Do(context.Background(), "b", func() { t.Error("ran while the place was held") }); !errors.Is(err, pigp.ErrPasswordNotChecked) {
		t.Fatalf("after the wait: %v", err)
	}
	h2 := exchange.NewHashLimiter(1, 10, time.Hour, nil, nil)
	b2 := newBlocker()
	go h2.Do(context.Background(), "a", b2.fn)
	<-b2.started
	defer close(b2.release)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, "queued", func() bool { return h2.Stats().Queued == 1 })
		cancel()
	}()
	if err := h2.Do(ctx, "b", func() {}); !errors.Is(err, pigp.ErrPasswordNotChecked) {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestHashLimiter_Idle(t *testing.T) {
	var idle atomic.Int32
	h := exchange.NewHashLimiter(2, 10, time.Minute, func() { idle.Add(1) }, nil)
	for range 5 {
		h.Do(context.Background(), "a", func() {})
	}
	waitFor(t, "the idle call", func() bool { return idle.Load() >= 1 })
	time.Sleep(1500 * time.Millisecond)
	if n := idle.Load(); n != 1 {
		t.Fatalf("idle called %d times after one burst, want 1", n)
	}
}

// TestLogin_OneCheckEach is the timing parity of logins
// made structural, so that no load on the machine can flip it: a wrong
// password for a known login, an unknown login and a disabled account each
// cost exactly one argon2id check and get the same answer.
func TestLogin_OneCheckEach(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	e.svc.Hashes = exchange.NewHashLimiter(4, 10, time.Minute, nil, nil)
	disabled := e.mustAccount(t, "agent-off", siretA)
	if err := e.db.SetAccountState(ctx, disabled.Login, pigp.AccountDisabled); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, login := range []string{"agent-a", "nobody-xt", "agent-off"} {
		before := e.svc.Hashes.Stats().Checks
		_, err := e.svc.Login(ctx, "192.0.2.1", login, "Wrong-Horse-42", pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
			t.Fatalf("%s: %v", login, err)
		}
		if n := e.svc.Hashes.Stats().Checks - before; n != 1 {
			t.Errorf("%s: %d argon2id checks, want 1", login, n)
		}
		msgs = append(msgs, pigp.ErrorMessage(err))
	}
	if msgs[0] != msgs[1] || msgs[0] != msgs[2] {
		t.Fatalf("answers differ: %q", msgs)
	}
}

func TestLogin_HashBusy(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	audit := &memAuditor{}
	e.svc.Audit = audit
	e.svc.Refusals = exchange.NewAuditFlood(audit, 3, time.Hour, nil, nil)
	e.svc.Hashes = exchange.NewHashLimiter(1, 0, time.Minute, nil, nil)
	b := newBlocker()
	go e.svc.Hashes.Do(ctx, "other", b.fn)
	<-b.started
	for range 5 {
		_, err := e.svc.Login(ctx, "192.0.2.9", "agent-a", password, pigp.ProtocolSFTP)
		if pigp.ErrorCode(err) != pigp.EUNAUTHORIZED || !errors.Is(err, pigp.ErrPasswordNotChecked) ||
			pigp.ErrorMessage(err) != "Identifiant ou mot de passe incorrect." {
			t.Fatalf("busy: %v, want the answer of a wrong password", err)
		}
	}
	close(b.release)
	waitFor(t, "the place freed", func() bool { return e.svc.Hashes.Stats().Checks == 1 })
	if _, err := e.svc.Login(ctx, "192.0.2.9", "agent-a", password, pigp.ProtocolSFTP); err != nil {
		t.Fatalf("once free: %v", err)
	}
	e.svc.Refusals.Close(ctx)
	rows := audit.events()
	failed := 0
	for _, ev := range rows {
		if ev.Outcome == pigp.AuditFailed && ev.IP == "192.0.2.9" {
			failed++
		}
	}
	if failed != 4 || !strings.Contains(rows[len(rows)-1].Detail, "2 refus supplémentaires") {
		t.Fatalf("%d failed rows (want 3 detailed + 1 summary), last %+v", failed, rows[len(rows)-1])
	}
}

// memAuditor collects audit events.
type memAuditor struct {
	mu  sync.Mutex
	evs []pigp.AuditEvent
}

func (m *memAuditor) Audit(_ context.Context, e *pigp.AuditEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, *e)
	return nil
}

func (m *memAuditor) events() []pigp.AuditEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]pigp.AuditEvent(nil), m.evs...)
}

func TestAuditFlood(t *testing.T) {
	ctx := context.Background()
	refusal := func(action, object string) *pigp.AuditEvent {
		return &pigp.AuditEvent{Time: time.Now(), Action: action, Outcome: pigp.AuditRefused, Login: "agent-a",
			IP: "192.0.2.1", Object: object, Detail: "nom refusé"}
	}
	t.Run("SessionEnd", func(t *testing.T) {
		m := &memAuditor{}
		f := exchange.NewAuditFlood(m, 10, time.Hour, nil, nil)
		for i := range 50 {
			f.Record(ctx, "ssh-1", refusal(pigp.AuditUploadRefused, fmt.Sprintf("bad-%d", i)))
		}
		for i := range 3 {
			f.Record(ctx, "ssh-1", refusal(pigp.AuditDownload, fmt.Sprintf("x-%d", i))) // another kind
		}
		f.Record(ctx, "ssh-2", refusal(pigp.AuditUploadRefused, "other session"))
		ok := refusal(pigp.AuditUpload, "good")
		ok.Outcome = pigp.AuditOK
		for range 20 {
			f.Record(ctx, "ssh-1", ok) // successes are never held back
		}
		if n := len(m.events()); n != 10+3+1+20 {
			t.Fatalf("%d rows before the end of the session, want 34", n)
		}
		f.End(ctx, "ssh-1")
		evs := m.events()
		last := evs[len(evs)-1]
		if len(evs) != 35 || last.Action != pigp.AuditUploadRefused || last.Login != "agent-a" ||
			!strings.Contains(last.Detail, "40 refus supplémentaires") || !strings.Contains(last.Detail, "bad-49") {
			t.Fatalf("%d rows, summary %+v", len(evs), last)
		}
		f.End(ctx, "ssh-1") // nothing more
		if len(m.events()) != 35 {
			t.Fatal("a second End wrote again")
		}
	})
	t.Run("Quiet", func(t *testing.T) {
		m := &memAuditor{}
		f := exchange.NewAuditFlood(m, 2, 50*time.Millisecond, nil, nil)
		for range 7 {
			f.Record(ctx, "ip:192.0.2.1", refusal(pigp.AuditLogin, ""))
		}
		waitFor(t, "the summary after quiet", func() bool { return len(m.events()) == 3 })
		if d := m.events()[2].Detail; !strings.Contains(d, "5 refus supplémentaires") {
			t.Fatalf("summary %q", d)
		}
	})
	t.Run("Close", func(t *testing.T) {
		m := &memAuditor{}
		f := exchange.NewAuditFlood(m, 1, time.Hour, nil, nil)
		f.Record(ctx, "a", refusal(pigp.AuditLogin, ""))
		f.Record(ctx, "a", refusal(pigp.AuditLogin, ""))
		f.Record(ctx, "b", refusal(pigp.AuditLogin, ""))
		f.Record(ctx, "b", refusal(pigp.AuditLogin, ""))
		f.Close(ctx)
		f.Record(ctx, "b", refusal(pigp.AuditLogin, "")) // after Close: recorded
		if n := len(m.events()); n != 5 {
			t.Fatalf("%d rows, want 2 + 2 summaries + 1", n)
		}
	})
}

func TestLimits(t *testing.T) {
	e := MustOpen(t)
	ctx := context.Background()
	e.svc.Limits = exchange.Limits{UploadsPerAccount: 2, OpenFiles: 3}
	u1, err := e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now))
	if err != nil {
		t.Fatal(err)
	}
	u2, err := e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now.Add(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.BeginDeposit(ctx, e.callerA(), callName(siretA, e.now.Add(2*time.Second)))
	if pigp.ErrorCode(err) != pigp.ELIMIT || !strings.Contains(pigp.ErrorMessage(err), "au plus 2 à la fois") {
		t.Fatalf("third upload of the account: %v, want ELIMIT in French", err)
	}
	// Another account still deposits, until the descriptors run out.
	u3, err := e.svc.BeginDeposit(ctx, e.callerB(), callName(siretB, e.now))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.BeginDeposit(ctx, e.callerB(), callName(siretB, e.now.Add(time.Second)))
	if pigp.ErrorCode(err) != pigp.EUNAVAILABLE || !strings.Contains(pigp.ErrorMessage(err), "saturé") {
		t.Fatalf("beyond the descriptors: %v, want EUNAVAILABLE", err)
	}
	// Abort and commit give the places back (once).
	u1.Abort()
	u1.Abort()
	u2.WriteAt([]byte("<x/>"), 0)
	if _, err := u2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if files, uploads := e.svc.Held(e.a.ID); files != 1 || uploads != 0 {
		t.Fatalf("held %d files, %d uploads of a; want 1 and 0", files, uploads)
	}
	u3.Abort()
	pub, err := e.svc.Publish(ctx, siretA, "reponse.xml", pigp.DocResponse, "", strings.NewReader("<r/>"))
	if err != nil {
		t.Fatal(err)
	}
	var readers []pigp.ResponseReader
	for range 3 {
		rr, err := e.svc.OpenResponse(ctx, e.callerA(), pub.Name)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, rr)
	}
	if _, err := e.svc.OpenResponse(ctx, e.callerA(), pub.Name); pigp.ErrorCode(err) != pigp.EUNAVAILABLE {
		t.Fatalf("fourth reader: %v, want EUNAVAILABLE", err)
	}
	if _, err := readers[0].ReadAt(make([]byte, 1), -1); pigp.ErrorCode(err) != pigp.EINVALID {
		t.Fatalf("read at a negative offset: %v", err)
	}
	for _, rr := range readers {
		rr.Close()
		rr.Close()
	}
	if files, _ := e.svc.Held(e.a.ID); files != 0 {
		t.Fatalf("%d files held after closing everything", files)
	}
}
