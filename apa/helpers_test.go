package apa_test

import (
	"testing"
	"time"

	"github.com/pigp/pigp/apa"
)

// mustName parses a call-file name, as of the end of 2026.
func mustName(tb testing.TB, name string) apa.CallName {
	tb.Helper()
	n, err := apa.ParseCallName(name, time.Date(2026, 12, 1, 0, 0, 0, 0, apa.Paris))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
