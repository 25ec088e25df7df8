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
	"crypto/sha256"
	"encoding/hex"
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
	Store  Store
	Blobs  *blob.Store
	Places apa.Places // nil skips R102 and R103
	Logger *slog.Logger
	Now    pigp.Clock

	Retention  time.Duration // how long an answer stays available
	StaleAfter time.Duration // a claim older than this is taken over
	Windows    []apa.Window  // campaign windows (E008); empty: not enforced
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

func (p *Processor) answer(ctx context.Context, out *Outcome) error {
	d := out.Deposit
	name, err := apa.ParseCallName(d.ExternalName, d.DepositedAt)
	if err != nil {
		return fmt.Errorf("deposit name: %w", err)
	}
	content, err := p.Blobs.Open(d.StorageKey)
	if err != nil {
		return fmt.Errorf("open deposit content: %w", err)
	}
	defer content.Close()
	scratch, err := p.Blobs.Create()
	if err != nil {
		return err
	}
	defer scratch.Abort()
	results := apa.NewResponseWriter(scratch)
	year := name.Campaign - 1
	// Requests are matched in batches: a few queries per batch, memory
	// bounded by the batch whatever the file size.
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
			if err := results.WriteResult(r); err != nil {
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
	rep, err := apa.Validate(bufio.NewReaderSize(content, 256<<10), name,
		apa.Options{Places: p.Places, Windows: p.Windows, DepositedAt: d.DepositedAt}, visit)
	if err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	if !rep.Rejected() {
		if err := flush(); err != nil {
			return fmt.Errorf("match: %w", err)
		}
	}
	out.Report = rep

	produced := p.now()
	final, err := p.Blobs.Create()
	if err != nil {
		return err
	}
	defer final.Abort()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(final, h), 256<<10)
	resp := &pigp.Response{ID: pigp.NewID(), SIRET: d.SIRET, DepositID: d.ID, State: pigp.ResponseAvailable}
	if rep.Rejected() {
		out.Status, resp.DocType = pigp.DepositRejected, pigp.DocReport
		err = apa.WriteReport(bw, apa.ReportHeader{CallName: d.ExternalName, DepositID: d.ID, SIRET: d.SIRET,
			Deposited: d.DepositedAt, Processed: produced}, rep)
	} else {
		out.Status, resp.DocType = pigp.DepositProcessed, pigp.DocResponse
		out.Counts = results.Counts()
		_, err = results.Finish(bw, apa.ResponseHeader{Campaign: name.Campaign, SIRET: d.SIRET,
			CallName: d.ExternalName, DepositID: d.ID, Produced: produced})
	}
	if err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	fi, err := final.Stat()
	if err != nil {
		return err
	}
	resp.Size, resp.SHA256 = fi.Size(), hex.EncodeToString(h.Sum(nil))
	resp.StorageKey = "retraits/" + resp.ID[:2] + "/" + resp.ID
	if err := final.Commit(resp.StorageKey); err != nil {
		return fmt.Errorf("store answer: %w", err)
	}
	if err := p.commit(ctx, d, out.Status, resp, name.Campaign, produced); err != nil {
		if rmErr := p.Blobs.Remove(resp.StorageKey); rmErr != nil {
			p.log().Error("remove unused answer", "key", resp.StorageKey, "error", rmErr)
		}
		return err
	}
	out.Response = resp
	if p.Published != nil {
		p.Published(ctx, d, resp, rep.Header.Contact)
	}
	return nil
}

// commit names the answer after its production time and commits it with
// the deposit's final status. When another answer took the name first (two
// nodes in the same second), the next second is tried; when the deposit
// already has an answer, the conflict is returned.
func (p *Processor) commit(ctx context.Context, d *pigp.Deposit, status string, resp *pigp.Response, campaign int, produced time.Time) error {
	for i := 0; i < 120; i++ {
		resp.Name = apa.ResponseName(campaign, d.SIRET, produced.In(apa.Paris).Add(time.Duration(i)*time.Second))
		taken, err := p.Store.ResponseNameTaken(ctx, d.SIRET, resp.Name)
		if err != nil {
			return err
		}
		if taken {
			continue
		}
		now := p.now()
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
		err = p.Store.FinishDeposit(ctx, d.ID, status, resp, now, audit...)
		if pigp.ErrorCode(err) != pigp.ECONFLICT {
			return err
		}
		if taken, terr := p.Store.ResponseNameTaken(ctx, d.SIRET, resp.Name); terr != nil || !taken {
			return err // the deposit itself was answered or released meanwhile
		}
	}
	return pigp.Errorf(pigp.ECONFLICT, "aucun nom de réponse libre pour le SIRET %s", d.SIRET)
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
