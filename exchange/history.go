package exchange

import (
	"bytes"
	"context"
	"encoding/csv"
	"strconv"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

// historySince returns the start of the history window at now: the last
// HistoryMonths months.
func (s *Service) historySince() time.Time {
	return s.now().AddDate(0, -s.HistoryMonths, 0)
}

// DepositHistory returns page n (from 1; past the last, the last) of the
// deposits of the caller's SIRETs within the history window, newest
// first: the rows of depots.csv, pigp.HistoryPageSize at a time.
func (s *Service) DepositHistory(ctx context.Context, caller *pigp.Caller, n int) (*pigp.HistoryPage, error) {
	f := pigp.DepositFilter{SIRETs: caller.SIRETs, Since: s.historySince()}
	total, err := s.Store.CountDeposits(ctx, f)
	if err != nil {
		return nil, err
	}
	p := s.historyPage(n, total)
	f.Offset, f.Limit = (p.Page-1)*pigp.HistoryPageSize, pigp.HistoryPageSize
	if p.Deposits, err = s.Store.ListDeposits(ctx, f); err != nil {
		return nil, err
	}
	return p, nil
}

// DownloadHistory returns page n (from 1; past the last, the last) of the
// downloads of the caller's SIRETs within the history window, newest
// first: the rows of retraits.csv, pigp.HistoryPageSize at a time.
func (s *Service) DownloadHistory(ctx context.Context, caller *pigp.Caller, n int) (*pigp.HistoryPage, error) {
	f := pigp.HistoryFilter{SIRETs: caller.SIRETs, Since: s.historySince()}
	total, err := s.Store.CountDownloads(ctx, f)
	if err != nil {
		return nil, err
	}
	p := s.historyPage(n, total)
	f.Offset, f.Limit = (p.Page-1)*pigp.HistoryPageSize, pigp.HistoryPageSize
	if p.Downloads, err = s.Store.ListDownloads(ctx, f); err != nil {
		return nil, err
	}
	return p, nil
}

// historyPage returns page n of a history of total rows, without its rows.
func (s *Service) historyPage(n int, total int64) *pigp.HistoryPage {
	pages := max(1, int((total+pigp.HistoryPageSize-1)/pigp.HistoryPageSize))
	return &pigp.HistoryPage{Page: min(max(n, 1), pages), Pages: pages, Total: total, Months: s.HistoryMonths}
}

// BOM is the UTF-8 byte-order mark that begins the history files and the
// audit export (contract §7): spreadsheets then read them as UTF-8 instead
// of guessing Windows-1252.
const BOM = "\ufeff"

// csvTime writes t in ISO 8601 with its Europe/Paris offset (contract §7).
func csvTime(t time.Time) string { return t.In(apa.Paris).Format("2006-01-02T15:04:05-07:00") }

func newCSV(buf *bytes.Buffer, header ...string) *csv.Writer {
	buf.WriteString(BOM)
	w := csv.NewWriter(buf)
	w.Comma = ';'
	w.UseCRLF = true
	w.Write(header)
	return w
}

// DepositsCSV returns depots.csv for the caller's SIRETs: the deposits of
// the history window, newest first (contract §7).
func (s *Service) DepositsCSV(ctx context.Context, caller *pigp.Caller) ([]byte, error) {
	ds, err := s.Store.ListDeposits(ctx, pigp.DepositFilter{SIRETs: caller.SIRETs, Since: s.historySince()})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := newCSV(&buf, "nom_externe", "nom_interne", "date_depot", "taille", "identifiant_depot", "statut", "sha256")
	for _, d := range ds {
		w.Write([]string{d.ExternalName, d.InternalName, csvTime(d.DepositedAt), strconv.FormatInt(d.Size, 10), d.ID, d.Status, d.SHA256})
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// DownloadsCSV returns retraits.csv for the caller's SIRETs: every download
// of the history window, newest first (contract §7). "identifiant" is the
// login of the account that downloaded.
func (s *Service) DownloadsCSV(ctx context.Context, caller *pigp.Caller) ([]byte, error) {
	ds, err := s.Store.ListDownloads(ctx, pigp.HistoryFilter{SIRETs: caller.SIRETs, Since: s.historySince()})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := newCSV(&buf, "nom_fichier", "type_document", "taille", "date_telechargement", "identifiant", "protocole", "adresse_ip")
	for _, d := range ds {
		w.Write([]string{d.ResponseName, d.DocType, strconv.FormatInt(d.Size, 10), csvTime(d.DownloadedAt), d.Login, d.Protocol, d.ClientIP})
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}
