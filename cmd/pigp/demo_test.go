package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `pigp demo` as a newcomer would, with both of its ports
// already taken: it starts on free ports and says so, prints a portal URL
// a browser opens, a batch sftp example that works as printed (with
// sshpass giving the password), and says when it stops.
func TestDemo(t *testing.T) {
	needTool(t, "sftp", "sshpass")
	var taken []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		taken = append(taken, l.Addr().String())
	}
	var stdout, stderr lockedBuffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"demo", "--sftp-listen", taken[0], "--http-listen", taken[1]}) }()

	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stdout.String(), "Press Ctrl-C to stop.") {
		select {
		case code := <-done:
			t.Fatalf("demo exited with %d\n%s\n%s", code, stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
	banner := stdout.String()
	for _, want := range []string{"SFTP: " + taken[0] + " is taken, a free port is used instead",
		"portal: " + taken[1] + " is taken, a free port is used instead", "-o BatchMode=no -b "} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	// The portal URL opens in a browser: a real host, the free port.
	url := regexp.MustCompile(`Portal: (\S+)`).FindStringSubmatch(banner)
	if url == nil || !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/$`).MatchString(url[1]) || strings.Contains(url[1], taken[1]) {
		t.Fatalf("portal URL %q", url)
	}
	resp, err := http.Get(url[1])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/connexion" {
		t.Fatalf("GET %s: %d at %s", url[1], resp.StatusCode, resp.Request.URL)
	}

	// The unattended batch example, run as printed.
	line := regexp.MustCompile(`(?m)^  (SSHPASS=.*)$`).FindStringSubmatch(banner)
	if line == nil {
		t.Fatalf("no sshpass example:\n%s", banner)
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", line[1])
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "_REP.xml") {
		t.Fatalf("%s: %v\n%s", line[1], err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "depots.csv")); err != nil || !strings.Contains(string(b), "nom_externe") {
		t.Fatalf("depots.csv not fetched: %v", err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exited with %d: %s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("demo did not stop")
	}
	if !strings.Contains(stdout.String(), "pigp demo stopped; removing its temporary data") {
		t.Fatalf("nothing said on stop:\n%s", stdout.String())
	}
}

func TestBrowserURL(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		tls  bool
		want string
	}{
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, false, "http://localhost:8080/"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, false, "http://localhost:8080/"},
		{&net.TCPAddr{Port: 8080}, false, "http://localhost:8080/"},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443}, true, "https://127.0.0.1:8443/"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 8080}, false, "http://[::1]:8080/"},
	} {
		if got := browserURL(tt.addr, tt.tls); got != tt.want {
			t.Errorf("browserURL(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
