package fiscal_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/fiscal"
	"github.com/pigp/pigp/places"
)

func TestGenerateCallIsValid(t *testing.T) {
	var ref bytes.Buffer
	fiscal.Generate(&ref, fiscal.GenerateOptions{Count: 500, Seed: 3, IncomeYear: 2025})
	data, err := fiscal.ReadCSV(&ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := apa.CallName{Campaign: 2026, SIRET: "22940028800010", Timestamp: time.Date(2026, 11, 28, 10, 15, 0, 0, apa.Paris)}
	var call bytes.Buffer
	if err := fiscal.GenerateCall(&call, data.Persons, fiscal.SampleAddresses, fiscal.CallOptions{Name: name, Count: 300, Seed: 1, UnknownPc: 10}); err != nil {
		t.Fatal(err)
	}
	tab, err := places.Load()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := apa.Validate(&call, name, apa.Options{Places: tab}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected() || rep.Demandes != 300 || rep.RecordsRejected != 0 {
		t.Fatalf("generated call file: rejected %v, %d demandes, %d records rejected, anomalies %+v",
			rep.Rejected(), rep.Demandes, rep.RecordsRejected, rep.Anomalies[:min(5, len(rep.Anomalies))])
	}
}
