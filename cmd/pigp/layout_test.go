package main

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list` at the repository's root with args and returns
// its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	needTool(t, "go")
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Fields(string(out))
}

// TestDependencyRule checks the rule README's "Project structure" states:
// the protocol edges (vfs, web, server) reach the exchange through small
// interfaces of their own and import no concrete exchange, store or blob
// package, not even indirectly; only store imports gorm.
func TestDependencyRule(t *testing.T) {
	const mod = "github.com/pigp/pigp"
	forbidden := []string{mod + "/exchange", mod + "/store", mod + "/blob"}
	for _, edge := range []string{"vfs", "web", "server"} {
		for _, dep := range goList(t, "-deps", "-f", "{{.ImportPath}}", "./"+edge) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s: the edges declare the interfaces they need (README, Project structure)", edge, dep)
				}
			}
		}
	}
	for _, line := range goList(t, "-f", "{{.ImportPath}}:{{range .Imports}}{{if eq (printf \"%.8s\" .) \"gorm.io/\"}}gorm{{end}}{{end}}", "./...") {
		pkg, gorm, _ := strings.Cut(line, ":")
		if gorm != "" && pkg != mod+"/store" {
			t.Errorf("%s imports gorm: only store may", pkg)
		}
	}
}
