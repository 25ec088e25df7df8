// Package processing answers deposits: it validates each call file against
// the interface contract, matches its requests against the fiscal
// reference data and publishes a response (ReponseAPA) or, when the whole
// file is refused, a rejection report (CompteRenduAPA). It is crash-safe: a
// deposit is claimed, answered into a durable file, and its answer and final
// status are committed in one transaction; a crash at any point leaves the
// deposit to be claimed again, and the database never accepts two answers
// for one deposit.
package processing

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/blob"
	"github.com/pigp/pigp/fiscal"
)

// Store is what processing needs from the database.
type Store interface {
	fiscal.Lookup
	ClaimDeposit(ctx context.Context, now time.Time, stale time.Duration) (*pigp.Deposit, error)
	// FinishDeposit records the answer and its audit rows in one transaction.
	FinishDeposit(ctx context.Context, depositID, status string, r *pigp.Response, now time.Time, audit ...*pigp.AuditEvent) error
	ResponseNameTaken(ctx context.Context, siret, name string) (bool, error)
}

// Processor answers deposits.
type Processor struct {
	Store Store
	// Blobs holds the deposits' contents and receives the answers; Spool
	// is the local directory where answers are written before they are
	// put there.
	Blobs  blob.Backend
	Spool  *blob.Store
	Places apa.Places // nil skips R102 and R103
	Logger *slog.Logger
	Now    pigp.Clock

	Retention  time.Duration // how long an answer stays available
	StaleAfter time.Duration // a claim older than this is taken over
	// Campaigns, if set, returns the campaign windows in force, read at
	// each deposit so that a change applies without a restart (E008);
	// none (or nil): every campaign is open.
	Campaigns func(ctx context.Context) ([]pigp.Campaign, error)
	// Wait lets the clock reach an answer's production time when the
	// current second's name is already taken (nil: a real timer). Names
	// have a one-second resolution and must be unique, so two answers for
	// the same SIRET and campaign are produced at least a second apart.
	Wait func(ctx context.Context, d time.Duration) error
	// Published, if set, is called after an answer is committed.
	Published func(ctx context.Context, d *pigp.Deposit, r *pigp.Response, contact string)
	// Audit, when true, records each answered deposit in the audit trail,
	// in the transaction that records the answer.
	Audit bool
	// Metrics, if set, observes each answered deposit.
	Metrics Metrics
}

// Metrics observes the answered deposits: how long each took, from claim
// to commit, and how many of its requests were found, not found, ambiguous
// and rejected.
type Metrics interface {
	DepositProcessed(elapsed time.Duration, found, notFound, ambiguous, rejected int)
}

// matchBatch is how many requests are matched together.
const matchBatch = 500

// Outcome is what happened to one deposit.
type Outcome struct {
	Deposit  *pigp.Deposit
	Response *pigp.Response
	Status   string // TRAITE or REJETE
	Counts   apa.Counts
	Report   *apa.Report
}

// Summary counts the outcomes of a run.
type Summary struct {
	Processed int // answered with a ReponseAPA
	Rejected  int // answered with a CompteRenduAPA
	Failed    int // left to be claimed again
	Demandes  int
}

func (p *Processor) now() time.Time { return p.Now().UTC() }

func (p *Processor) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// Run answers deposits until none waits (or ctx ends) and returns the summary.
func (p *Processor) Run(ctx context.Context) (Summary, error) {
	var s Summary
	for ctx.Err() == nil {
		out, err := p.ProcessNext(ctx)
		switch {
		case pigp.ErrorCode(err) == pigp.ENOTFOUND:
			return s, nil
		case err != nil:
			s.Failed++
			p.log().Error("processing failed", "error", err)
			if out == nil { // could not even claim: stop this run
				return s, err
			}
			continue
		case out.Status == pigp.DepositRejected:
			s.Rejected++
		default:
			s.Processed++
		}
		s.Demandes += out.Counts.Demandes
	}
	return s, ctx.Err()
}

// ProcessNext claims the oldest waiting deposit and answers it. ENOTFOUND
// when none waits. On an error after the claim, the returned Outcome holds
// the deposit, which stays EN_COURS until its claim goes stale.
func (p *Processor) ProcessNext(ctx context.Context) (*Outcome, error) {
	d, err := p.Store.ClaimDeposit(ctx, p.now(), p.StaleAfter)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	out := &Outcome{Deposit: d}
	if err := p.answer(ctx, out); err != nil {
		return out, fmt.Errorf("process deposit %s: %w", d.ID, err)
	}
	if p.Metrics != nil {
		c := out.Counts
		p.Metrics.DepositProcessed(time.Since(started), c.Found, c.NotFound, c.Ambiguous, c.Rejected)
	}
	p.log().Info("deposit processed", "deposit", d.ID, "siret", d.SIRET, "status", out.Status,
		"response", out.Response.Name, "demandes", out.Counts.Demandes, "found", out.Counts.Found,
		"not_found", out.Counts.NotFound, "ambiguous", out.Counts.Ambiguous, "rejected", out.Counts.Rejected)
	return out, nil
}

// answer validates the deposit, writes its answer and commits it.
func (p *Processor) answer(ctx context.Context, out *Outcome) error {
	d := out.Deposit
	v, err := p.validate(ctx, d)
	if err != nil {
		return err
	}
	defer v.close()
	out.Report = v.report
	if v.report.Rejected() {
		out.Status = pigp.DepositRejected
	} else {
		out.Status = pigp.DepositProcessed
		out.Counts = v.results.Counts()
	}
	resp, err := p.publish(ctx, d, v.name.Campaign, v.write, out.Status)
	if err != nil {
		return err
	}
	out.Response = resp
	if p.Published != nil {
		p.Published(ctx, d, resp, v.report.Header.Contact)
	}
	return nil
}

// validated is a deposit read to the end: its validation report and, when
// it is not rejected, the results of its requests, waiting in a local
// scratch file to be written into the response.
type validated struct {
	d       *pigp.Deposit
	name    apa.CallName
	report  *apa.Report
	results *apa.ResponseWriter
	scratch *blob.Temp
}

func (v *validated) close() { v.scratch.Abort() }

// write writes the answer produced at the given second: the response, or
// the rejection report.
func (v *validated) write(w io.Writer, produced time.Time) error {
	d := v.d
	if v.report.Rejected() {
		return apa.WriteReport(w, apa.ReportHeader{CallName: d.ExternalName, DepositID: d.ID, SIRET: d.SIRET,
			Deposited: d.DepositedAt, Processed: produced}, v.report)
	}
	_, err := v.results.Finish(w, apa.ResponseHeader{Campaign: v.name.Campaign, SIRET: d.SIRET,
		CallName: d.ExternalName, DepositID: d.ID, Produced: produced})
	return err
}

// validate reads the deposit's content from the store, validates it
// against the contract and matches its requests, in batches: a few queries
// per batch, memory bounded by the batch whatever the file size.
func (p *Processor) validate(ctx context.Context, d *pigp.Deposit) (*validated, error) {
	name, err := apa.ParseCallName(d.ExternalName, d.DepositedAt)
	if err != nil {
		return nil, fmt.Errorf("deposit name: %w", err)
	}
	windows, err := p.windows(ctx)
	if err != nil {
		return nil, err
	}
	content, err := p.Blobs.Open(ctx, d.StorageKey)
	if err != nil {
		return nil, fmt.Errorf("open deposit content: %w", err)
	}
	defer content.Close()
	scratch, err := p.Spool.Create()
	if err != nil {
		return nil, blob.Unavailable("scratch", "", err)
	}
	v := &validated{d: d, name: name, scratch: scratch, results: apa.NewResponseWriter(scratch)}
	year := name.Campaign - 1
	var batch []apa.Demande
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var reqs []fiscal.Request
		for _, dm := range batch {
			if !dm.Rejected() {
				place := dm.BirthCommune
				if place == "" {
					place = dm.BirthCountry
				}
				reqs = append(reqs, fiscal.Request{Sex: dm.Sex, BirthName: dm.BirthName,
					FirstNames: dm.FirstName, BirthDate: dm.BirthDate, BirthPlace: place})
			}
		}
		matches, err := fiscal.MatchBatch(ctx, p.Store, reqs, year)
		if err != nil {
			return err
		}
		for _, dm := range batch {
			r := apa.RejectedResult(dm)
			if !dm.Rejected() {
				r, matches = resultOf(dm.Reference, matches[0]), matches[1:]
			}
			if err := v.results.WriteResult(r); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	visit := func(dm apa.Demande) error {
		batch = append(batch, dm)
		if len(batch) >= matchBatch {
			return flush()
		}
		return nil
	}
	src := bufio.NewReaderSize(io.NewSectionReader(content, 0, content.Size()), 256<<10)
	v.report, err = apa.Validate(src, name, apa.Options{Places: p.Places, Windows: windows, DepositedAt: d.DepositedAt}, visit)
	if err == nil && !v.report.Rejected() {
		if err = flush(); err != nil {
			err = fmt.Errorf("match: %w", err)
		}
	} else if err != nil {
		err = fmt.Errorf("validate: %w", err)
	}
	if err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

// windows returns the campaign windows in force for the validator.
func (p *Processor) windows(ctx context.Context) ([]apa.Window, error) {
	if p.Campaigns == nil {
		return nil, nil
	}
	cs, err := p.Campaigns(ctx)
	if err != nil {
		return nil, fmt.Errorf("campaign windows: %w", err)
	}
	out := make([]apa.Window, len(cs))
	for i, c := range cs {
		out[i] = apa.Window{Campaign: c.Year, Open: c.Opens, Close: c.End().Add(-time.Nanosecond)}
	}
	return out, nil
}

// publish writes the answer and commits it with the deposit's final
// status. The answer's name carries its production time (contract §1),
// and the time written inside it (DateProduction of a response,
// DateTraitement of a report) is that same second: the first second, from
// now on, whose name is free for the SIRET and campaign. When that second
// is still ahead (an answer of the same SIRET took the current one), the
// processor waits for it, so that no answer claims a time not yet come.
// When another node takes the name between the check and the commit, the
// answer is written again for the next free second; when the deposit
// already has an answer, the conflict is returned.
func (p *Processor) publish(ctx context.Context, d *pigp.Deposit, campaign int, write func(io.Writer, time.Time) error, status string) (*pigp.Response, error) {
	docType := pigp.DocResponse
	if status == pigp.DepositRejected {
		docType = pigp.DocReport
	}
	for attempt := 0; attempt < 10; attempt++ {
		produced, name, err := p.productionTime(ctx, d.SIRET, campaign)
		if err != nil {
			return nil, err
		}
		id := pigp.NewID()
		resp := &pigp.Response{ID: id, SIRET: d.SIRET, DepositID: d.ID, State: pigp.ResponseAvailable,
			DocType: docType, Name: name, StorageKey: blob.Key(blob.KindResponse, id)}
		err = blob.Publish(ctx, p.Blobs, p.Spool, resp.StorageKey, func(w io.Writer) error {
			return write(w, produced)
		}, func(size int64, sum string) error {
			return p.commit(ctx, d, status, resp, size, sum)
		})
		if err == nil {
			return resp, nil
		}
		if pigp.ErrorCode(err) != pigp.ECONFLICT {
			return nil, err
		}
		if taken, terr := p.Store.ResponseNameTaken(ctx, d.SIRET, resp.Name); terr != nil || !taken {
			return nil, err // the deposit itself was answered or released meanwhile
		}
	}
	return nil, pigp.Errorf(pigp.ECONFLICT, "aucun nom de réponse libre pour le SIRET %s", d.SIRET)
}

// maxAhead bounds how far ahead of the clock a production time is looked
// for; beyond it (names taken by a node whose clock runs fast), processing
// fails and the deposit is taken over later.
const maxAhead = 120

// productionTime returns the first second, from the current one, whose
// response name is free for siret and campaign, and that name; it waits
// until the clock reaches that second.
func (p *Processor) productionTime(ctx context.Context, siret string, campaign int) (time.Time, string, error) {
	now := p.now()
	t := now.Truncate(time.Second)
	for i := 0; i < maxAhead; i, t = i+1, t.Add(time.Second) {
		name := apa.ResponseName(campaign, siret, t.In(apa.Paris))
		taken, err := p.Store.ResponseNameTaken(ctx, siret, name)
		if err != nil {
			return time.Time{}, "", err
		}
		if taken {
			continue
		}
		if ahead := t.Sub(now); ahead > 0 {
			if err := p.wait(ctx, ahead); err != nil {
				return time.Time{}, "", err
			}
		}
		return t, name, nil
	}
	return time.Time{}, "", pigp.Errorf(pigp.ECONFLICT, "aucun nom de réponse libre pour le SIRET %s", siret)
}

// maxWait bounds the default wait: a clock that does not follow real time
// (or names taken ahead by a node whose clock runs fast) must not hold
// processing; the answer then carries the time of its name all the same.
const maxWait = 2 * time.Second

func (p *Processor) wait(ctx context.Context, d time.Duration) error {
	if p.Wait != nil {
		return p.Wait(ctx, d)
	}
	t := time.NewTimer(min(d, maxWait))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commit records the answer stored under resp.StorageKey (size bytes of
// SHA-256 sum) and the deposit's final status, with its audit row, in one
// transaction.
func (p *Processor) commit(ctx context.Context, d *pigp.Deposit, status string, resp *pigp.Response, size int64, sum string) error {
	now := p.now()
	resp.Size, resp.SHA256 = size, sum
	resp.AvailableAt, resp.ExpiresAt = now, now.Add(p.Retention)
	var audit []*pigp.AuditEvent
	if p.Audit {
		outcome := pigp.AuditOK
		if status == pigp.DepositRejected {
			outcome = pigp.AuditRefused
		}
		audit = append(audit, &pigp.AuditEvent{Action: pigp.AuditProcessing, Outcome: outcome, Login: d.Login, SIRET: d.SIRET,
			Protocol: "JOB", Object: d.ExternalName, SHA256: resp.SHA256, Time: now,
			Detail: fmt.Sprintf("dépôt %s : %s, réponse %s (%s)", d.ID, status, resp.Name, resp.DocType)})
	}
	return p.Store.FinishDeposit(ctx, d.ID, status, resp, now, audit...)
}

// resultOf turns a match into the Resultat of a response: only what the
// contract allows (declarants' identity and the five income categories).
func resultOf(reference string, m fiscal.Result) apa.Result {
	r := apa.Result{Reference: reference, Status: m.Status}
	if m.Status != fiscal.Found {
		r.Reason = &apa.Reason{Code: m.Code, Label: m.Label}
		return r
	}
	hh := &apa.Household{}
	for _, dcl := range m.Foyer.Declarants {
		hh.Declarants = append(hh.Declarants, apa.Declarant{Rank: dcl.Rank, BirthName: dcl.BirthName,
			FirstNames: dcl.FirstNames, BirthDate: dcl.BirthDate})
	}
	for _, res := range m.Foyer.Resources {
		hh.Resources = append(hh.Resources, apa.Resource{Category: res.Category, Beneficiary: res.Beneficiary, Amount: res.Amount})
	}
	r.Household = hh
	return r
}
