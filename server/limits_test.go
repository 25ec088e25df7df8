package server_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp/server"
)

const (
	msgTooManyConns  = "pigp : trop de connexions simultanées sur le serveur, réessayez dans quelques minutes.\r\n"
	msgTooManyForIP  = "pigp : trop de connexions simultanées depuis votre adresse, réessayez après la fin des transferts en cours.\r\n"
	msgTooManyUnauth = "pigp : trop de connexions en cours d'authentification depuis votre adresse, réessayez dans quelques secondes.\r\n"
	msgUnavailable   = "pigp : service momentanément indisponible, réessayez plus tard.\r\n"
)

// TestMaxConns: beyond MaxConns open connections, a new one is refused
// with a line of French before the SSH version exchange; a closed one
// gives its place back.
func TestMaxConns(t *testing.T) {
	ts := startServer(t, func(s *server.Server) { s.MaxConns = 2 })
	_, held := ts.greeting(t, ipOf(1))
	ts.greeting(t, ipOf(2))
	if got, nc := ts.greeting(t, ipOf(3)); nc != nil || got != msgTooManyConns {
		t.Fatalf("third connection: %q, want %q", got, msgTooManyConns)
	}
	held.Close()
	eventually(t, "place given back", func() bool {
		got, nc := ts.greeting(t, ipOf(3))
		if nc != nil {
			nc.Close()
		}
		return strings.HasPrefix(got, "SSH-2.0-pigp")
	})
}

// TestMaxConnsPerIP: beyond MaxConnsPerIP connections of one address, a
// new one from it is refused; other addresses are not.
func TestMaxConnsPerIP(t *testing.T) {
	ts := startServer(t, func(s *server.Server) { s.MaxConnsPerIP = 2 })
	ts.mustDial(t, ipOf(1), "alice-xt") // authenticated connections count too
	ts.greeting(t, ipOf(1))
	if got, nc := ts.greeting(t, ipOf(1)); nc != nil || got != msgTooManyForIP {
		t.Fatalf("third connection of the address: %q, want %q", got, msgTooManyForIP)
	}
	if got, _ := ts.greeting(t, ipOf(2)); !strings.HasPrefix(got, "SSH-2.0-pigp") {
		t.Fatalf("another address: %q", got)
	}
	ts.mustDial(t, ipOf(2), "bob-xt")
}

// TestMaxUnauthPerIP: beyond MaxUnauthPerIP connections of one address
// that have not logged in, a new one is refused; logged-in connections
// are not counted among them.
func TestMaxUnauthPerIP(t *testing.T) {
	ts := startServer(t, func(s *server.Server) { s.MaxConnsPerIP, s.MaxUnauthPerIP = 10, 1 })
	for range 2 {
		c := ts.mustDial(t, ipOf(1), "alice-xt")
		// A session served means the server has counted the login:
		// the connection no longer counts as unauthenticated.
		if _, err := sftpClient(c); err != nil {
			t.Fatal(err)
		}
	}
	_, pending := ts.greeting(t, ipOf(1))
	if got, nc := ts.greeting(t, ipOf(1)); nc != nil || got != msgTooManyUnauth {
		t.Fatalf("second unauthenticated connection: %q, want %q", got, msgTooManyUnauth)
	}
	pending.Close()
	eventually(t, "place given back", func() bool {
		c, _, err := ts.dial(ipOf(1), clientConfig("bob-xt", "pw-bob-xt"))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestLoginGraceTime: a connection that does not log in in time is
// closed.
func TestLoginGraceTime(t *testing.T) {
	ts := startServer(t, func(s *server.Server) { s.LoginGraceTime = 200 * time.Millisecond })
	_, nc := ts.greeting(t, ipOf(1))
	if nc == nil {
		return // closed already, before its version line (a very slow machine)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := nc.Read(make([]byte, 1))
	var timeout interface{ Timeout() bool }
	if err == nil || errors.As(err, &timeout) && timeout.Timeout() {
		t.Fatalf("read after the grace time: %v, want the connection closed by the server", err)
	}
}

// TestSessionsPerAccount: beyond MaxSessionsPerAccount, a login of the
// account is refused with a French banner saying why; other accounts are
// not; a closed session gives its place back.
func TestSessionsPerAccount(t *testing.T) {
	ts := startServer(t, func(s *server.Server) { s.MaxSessionsPerAccount = 1 })
	first := ts.mustDial(t, ipOf(1), "alice-xt")
	if _, err := sftpClient(first); err != nil { // the server has counted the session
		t.Fatal(err)
	}
	c, banner, err := ts.dial(ipOf(2), clientConfig("alice-xt", "pw-alice-xt"))
	if err == nil {
		c.Close()
	}
	want := "Connexion refusée : ce compte a déjà 1 sessions ouvertes (au plus 1 à la fois). " +
		"Fermez des sessions ou attendez la fin des transferts en cours, puis reconnectez-vous.\r\n"
	if err == nil || banner != want {
		t.Fatalf("second session: %v, banner %q; want %q", err, banner, want)
	}
	ts.mustDial(t, ipOf(2), "bob-xt")
	first.Close()
	eventually(t, "place given back", func() bool {
		c, _, err := ts.dial(ipOf(2), clientConfig("alice-xt", "pw-alice-xt"))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// fakeGuard bans 127.0.0.5 and cannot answer for 127.0.0.6.
type fakeGuard struct {
	mu        sync.Mutex
	throttled []string
}

func (g *fakeGuard) Banned(_ context.Context, ip string) (time.Duration, error) {
	switch ip {
	case "127.0.0.5":
		return 4*time.Minute + 30*time.Second, nil
	case "127.0.0.6":
		return 0, errors.New("database is locked")
	}
	return 0, nil
}

func (g *fakeGuard) Throttled(_ context.Context, ip, login, protocol string, wait time.Duration) {
	g.mu.Lock()
	g.throttled = append(g.throttled, ip+" "+protocol+" "+wait.String())
	g.mu.Unlock()
}

// TestBannedAddress: a banned address is refused as it connects, with the
// minutes left in French, and the attempt is recorded; when the ban
// cannot be checked, the service says it is unavailable.
func TestBannedAddress(t *testing.T) {
	g := &fakeGuard{}
	ts := startServer(t, func(s *server.Server) { s.Guard = g })
	if got, nc := ts.greeting(t, ipOf(5)); nc != nil ||
		got != "pigp : adresse temporairement bloquée après trop d'échecs de connexion, réessayez dans 5 minute(s).\r\n" {
		t.Fatalf("banned address: %q", got)
	}
	if got, nc := ts.greeting(t, ipOf(6)); nc != nil || got != msgUnavailable {
		t.Fatalf("ban unknown: %q", got)
	}
	ts.mustDial(t, ipOf(7), "alice-xt")
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.throttled) != 1 || g.throttled[0] != "127.0.0.5 SFTP 4m30s" {
		t.Fatalf("throttled attempts %q", g.throttled)
	}
}

// TestAuthRefusals: how each outcome of the exchange's login reaches the
// client: a wrong password or unknown login is a plain refusal (the client
// tries its next method, no banner), the refusals that say why carry
// their French message as a banner, the server's own failure says the
// service is unavailable (never "wrong password"), a temporary password
// over the password method says to change it interactively.
func TestAuthRefusals(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct{ login, password, banner string }{
		{"alice-xt", "wrong", ""},
		{"nobody-xt", "pw-nobody-xt", ""},
		{"expired-xt", "x", "Votre mot de passe a expiré\r\n"},
		{"throttled-xt", "x", "Trop d'échecs de connexion : réessayez dans 2 minutes\r\n"},
		{"broken-xt", "x", msgUnavailable},
		{"temp-xt", "pw-temp-xt", "Votre mot de passe est temporaire et doit être changé : connectez-vous avec un client " +
			"interactif (saisie au clavier) ou sur le portail.\r\n"},
	} {
		_, banner, err := ts.dial(ipOf(1), clientConfig(tc.login, tc.password))
		if err == nil || banner != tc.banner {
			t.Errorf("%s: %v, banner %q; want a refusal with %q", tc.login, err, banner, tc.banner)
		}
	}
	if !strings.Contains(ts.logs.String(), "database is locked") {
		t.Errorf("the server's failure is not logged:\n%s", ts.logs.String())
	}
}

// TestKeyboardInteractiveChange: a temporary password, or one expiring
// within the change window, is changed at a keyboard-interactive login:
// the password, then the new one twice (French prompts, the policy said);
// two different entries or a refused password are asked again.
func TestKeyboardInteractiveChange(t *testing.T) {
	ts := startServer(t, nil)
	for _, login := range []string{"temp-xt", "soon-xt"} {
		var rounds []string
		answers := [][]string{{"pw-" + login}, {"Nouveau-mot-1", "Nouveau-mot-2"}, {"court", "court"}, {"Nouveau-mot-de-passe", "Nouveau-mot-de-passe"}}
		cfg := &ssh.ClientConfig{User: login, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
			Auth: []ssh.AuthMethod{ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
				rounds = append(rounds, instruction+"|"+strings.Join(questions, "|"))
				if len(rounds) > len(answers) {
					return nil, errors.New("asked too often")
				}
				return answers[len(rounds)-1], nil
			})}}
		c, banner, err := ts.dial(ipOf(1), cfg)
		if err != nil {
			t.Fatalf("%s: %v (banner %q, rounds %q)", login, err, banner, rounds)
		}
		c.Close()
		if len(rounds) != 4 || !strings.Contains(rounds[0], "Mot de passe (password) : ") ||
			!strings.Contains(rounds[1], "Nouveau mot de passe : |Confirmation du nouveau mot de passe : ") ||
			!strings.HasPrefix(rounds[2], "Les deux saisies sont différentes. Recommencez.") ||
			!strings.HasPrefix(rounds[3], "Mot de passe trop court. Recommencez.") {
			t.Errorf("%s: rounds %q", login, rounds)
		}
		if login == "soon-xt" && !strings.Contains(rounds[1], "Votre mot de passe expire le 01/12/2026") {
			t.Errorf("%s: instruction %q", login, rounds[1])
		}
		ts.auth.mu.Lock()
		got := ts.auth.changed[login]
		ts.auth.mu.Unlock()
		if got != "Nouveau-mot-de-passe" {
			t.Errorf("%s: password changed to %q", login, got)
		}
	}
	// A password that needs no change: no further prompt.
	rounds := 0
	cfg := &ssh.ClientConfig{User: "alice-xt", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
		Auth: []ssh.AuthMethod{ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
			rounds++
			return []string{"pw-alice-xt"}, nil
		})}}
	if c, _, err := ts.dial(ipOf(1), cfg); err != nil || rounds != 1 {
		t.Fatalf("alice-xt: %v after %d rounds", err, rounds)
	} else {
		c.Close()
	}
}

// TestPublicKey: a key the account holds logs in, audited once it has
// signed; another account's or an unknown key does not.
func TestPublicKey(t *testing.T) {
	ts := startServer(t, nil)
	signer := newSigner(t)
	fp := ssh.FingerprintSHA256(signer.PublicKey())
	ts.auth.keys[fp] = "alice-xt"
	key := func(login string, s ssh.Signer) *ssh.ClientConfig {
		return &ssh.ClientConfig{User: login, Auth: []ssh.AuthMethod{ssh.PublicKeys(s)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	}
	c, _, err := ts.dial(ipOf(1), key("alice-xt", signer))
	if err != nil {
		t.Fatalf("key login: %v", err)
	}
	c.Close()
	if _, _, err := ts.dial(ipOf(1), key("bob-xt", signer)); err == nil {
		t.Error("alice's key opened bob's account")
	}
	if _, _, err := ts.dial(ipOf(1), key("alice-xt", newSigner(t))); err == nil {
		t.Error("an unknown key logged in")
	}
	ts.auth.mu.Lock()
	defer ts.auth.mu.Unlock()
	if len(ts.auth.keyLogins) != 1 || ts.auth.keyLogins[0] != "alice-xt "+fp {
		t.Fatalf("key logins audited: %q", ts.auth.keyLogins)
	}
}

// TestGracefulClose: Close stops accepting at once, lets an open session
// finish its work, then returns; past its context, the sessions left are
// closed.
func TestGracefulClose(t *testing.T) {
	ts := startServer(t, nil)
	client := ts.mustDial(t, ipOf(1), "alice-xt")
	c, err := sftpClient(client)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ts.Close(context.Background()) }()
	eventually(t, "listener closed", func() bool {
		c, _, err := ts.dial(ipOf(2), clientConfig("bob-xt", "pw-bob-xt"))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	f, err := c.Create("/transfert")
	if err != nil {
		t.Fatalf("create during the close: %v", err)
	}
	f.Write([]byte("suite"))
	if err := f.Close(); err != nil {
		t.Fatalf("close of the file during the close: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Close returned (%v) with a session open", err)
	default:
	}
	c.Close()
	client.Close()
	if err := <-done; err != nil {
		t.Fatalf("Close: %v", err)
	}

	ts2 := startServer(t, nil)
	client2 := ts2.mustDial(t, ipOf(1), "alice-xt")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ts2.Close(ctx)
	closed := make(chan struct{})
	go func() { client2.Wait(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the session left is still open after Close past its context")
	}
}
