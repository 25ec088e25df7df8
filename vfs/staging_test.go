package vfs_test

import (
	"testing"

	"github.com/pigp/pigp/vfs"
)

func TestStagingTarget(t *testing.T) {
	const name = "2026_22940028800010_20261128101500.xml"
	for _, tc := range []struct {
		in, final string
		ok        bool
	}{
		{name + ".filepart", name, true},         // WinSCP
		{name + ".1a2b3c4d.partial", name, true}, // rclone ≥ 1.63
		{".in." + name, name, true},              // lftp xfer:use-temp-file
		{name, "", false},
		{name + ".partial", "", false},          // no rclone hash
		{name + ".1A2B3C4D.partial", "", false}, // rclone writes lower-case hex
		{name + ".1a2b3c.partial", "", false},
		{".filepart", "", false},
		{".in.", "", false},
		{"in." + name, "", false},
	} {
		final, ok := vfs.StagingTarget(tc.in)
		if final != tc.final || ok != tc.ok {
			t.Errorf("StagingTarget(%q) = %q, %v; want %q, %v", tc.in, final, ok, tc.final, tc.ok)
		}
	}
}
