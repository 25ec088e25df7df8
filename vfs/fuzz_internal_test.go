package vfs

import (
	"strings"
	"testing"
)

// FuzzSplit: any client path splits into a known top directory and a
// single name, or fails; never a name with a separator or "..".
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"/depot/x.xml", "/../etc/passwd", "depot/../../x", `\depot\x`, "/depot/a\x00b", "//depot//x", "/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		dir, name, err := split(p)
		if err != nil {
			return
		}
		if strings.ContainsAny(name, "/") || name == ".." || name == "." || strings.Contains(dir, "..") {
			t.Fatalf("split(%q) = %q, %q", p, dir, name)
		}
	})
}

// FuzzStagingTarget: a staging name maps to a shorter final name without
// separators.
func FuzzStagingTarget(f *testing.F) {
	for _, s := range []string{"x.xml.filepart", "x.xml.part", ".x.xml.tmp", "x.xml", "", ".filepart"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		final, ok := StagingTarget(name)
		if ok && (len(final) >= len(name) || strings.Contains(final, "/") && !strings.Contains(name, "/")) {
			t.Fatalf("StagingTarget(%q) = %q", name, final)
		}
	})
}
