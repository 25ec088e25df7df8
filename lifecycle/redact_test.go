package lifecycle

import (
	"strings"
	"testing"
)

func TestRedactAddresses(t *testing.T) {
	in := `550 5.1.1 <denis.jouffre@valdemarne.fr>: Recipient address rejected; also "a.b+c@ex.fr", x@y`
	out := redactAddresses(in)
	for _, leak := range []string{"denis.jouffre", "valdemarne.fr", "a.b+c@ex.fr", "x@y"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q still contains %q", out, leak)
		}
	}
	if !strings.Contains(out, "550 5.1.1 <<adresse masquée>>: Recipient address rejected") {
		t.Errorf("the rest of the message is lost: %q", out)
	}
}
