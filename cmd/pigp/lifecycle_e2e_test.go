package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pigp/pigp"
)

// TestResetThenForcedChange resets a password with the CLI, checks that the
// temporary password alone is refused with a French banner, then changes it
// through keyboard-interactive (French prompts) and logs in with the new one.
func TestResetThenForcedChange(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "PIGP_DATA_DIR" {
			return e.app.Config.DataDir
		}
		return ""
	}}
	if code := m.Run(context.Background(), []string{"user", "reset-password", "--login", "bob-xt"}); code != 0 {
		t.Fatalf("reset-password: %d %s", code, errb.String())
	}
	temp := strings.TrimSpace(out.String()[strings.LastIndex(out.String(), " ")+1:])

	var banner string
	cfg := sshConfig("bob-xt", temp)
	cfg.BannerCallback = func(msg string) error { banner += msg; return nil }
	if c, err := ssh.Dial("tcp", e.addr, cfg); err == nil {
		c.Close()
		t.Fatal("temporary password accepted without a change")
	}
	if !strings.Contains(banner, "temporaire") {
		t.Fatalf("banner %q", banner)
	}
	if c, err := ssh.Dial("tcp", e.addr, sshConfig("bob-xt", e.bob)); err == nil {
		c.Close()
		t.Fatal("the old password still works after the reset")
	}

	newPassword := "Nouveau-mdp-2026!"
	var prompts []string
	answers := func(weak bool) ssh.KeyboardInteractiveChallenge {
		return func(name, instruction string, questions []string, echos []bool) ([]string, error) {
			prompts = append(prompts, questions...)
			if len(questions) == 1 {
				return []string{temp}, nil
			}
			if weak {
				weak = false
				prompts = append(prompts, "instruction:"+instruction)
				return []string{"faible", "faible"}, nil
			}
			prompts = append(prompts, "instruction:"+instruction)
			return []string{newPassword, newPassword}, nil
		}
	}
	kc := &ssh.ClientConfig{User: "bob-xt", Auth: []ssh.AuthMethod{ssh.KeyboardInteractive(answers(true))},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	c, err := ssh.Dial("tcp", e.addr, kc)
	if err != nil {
		t.Fatalf("keyboard-interactive change: %v (prompts %q)", err, prompts)
	}
	c.Close()
	all := strings.Join(prompts, "|")
	for _, want := range []string{"Mot de passe", "Nouveau mot de passe : ", "Confirmation du nouveau mot de passe : ", "12 caractères"} {
		if !strings.Contains(all, want) {
			t.Errorf("prompts %q lack %q", all, want)
		}
	}
	if c, err := ssh.Dial("tcp", e.addr, sshConfig("bob-xt", newPassword)); err != nil {
		t.Fatalf("new password refused: %v", err)
	} else {
		c.Close()
	}
	a, _ := e.app.DB.FindAccountByLogin(context.Background(), "bob-xt")
	if a.PasswordTemporary {
		t.Fatal("password still temporary after the change")
	}
}

// TestExpireCommand checks `pigp expire --at` from outside: a response is
// gone after the retention period and its history stays.
func TestExpireCommand(t *testing.T) {
	e := startEnv(t, "sqlite", nil)
	r := e.publish(siretA, "2026_"+siretA+"_20261128103016_REP.xml", []byte("<ReponseAPA/>"))
	run := func(at time.Time) string {
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
			if k == "PIGP_DATA_DIR" {
				return e.app.Config.DataDir
			}
			return ""
		}}
		if code := m.Run(context.Background(), []string{"expire", "--at", at.Format(time.RFC3339)}); code != 0 {
			t.Fatalf("expire: %d %s", code, errb.String())
		}
		return out.String()
	}
	if out := run(r.ExpiresAt.Add(-time.Second)); !strings.Contains(out, "expiration-reponses: expires=0 supprimes=0") {
		t.Fatalf("before expiry:\n%s", out)
	}
	out := run(r.ExpiresAt.Add(time.Second))
	if !strings.Contains(out, "expiration-reponses: expires=1 supprimes=1") || !strings.Contains(out, "expiration-mots-de-passe:") ||
		!strings.Contains(out, "menage:") {
		t.Fatalf("after expiry:\n%s", out)
	}
	got, _ := e.app.DB.FindResponse(context.Background(), r.ID)
	if kept := objectExists(t, e.app.Blobs, r.StorageKey); got.State != pigp.ResponseExpired || kept {
		t.Fatalf("after expire: state %s, content kept %v", got.State, kept)
	}
	c, _ := e.dialSFTP("alice-xt", e.alice)
	if _, err := c.Stat("/retrait/" + r.Name); err == nil {
		t.Fatal("expired response still in /retrait")
	}
	var jobsOut, jobsErr bytes.Buffer
	m := &Main{Stdout: &jobsOut, Stderr: &jobsErr, Getenv: func(k string) string {
		if k == "PIGP_DATA_DIR" {
			return e.app.Config.DataDir
		}
		return ""
	}}
	if code := m.Run(context.Background(), []string{"jobs"}); code != 0 {
		t.Fatalf("jobs: %s", jobsErr.String())
	}
	for _, want := range []string{"traitement", "expiration-reponses", "ok expires=1 supprimes=1", "(cli)", "0 */5 * * * *"} {
		if !strings.Contains(jobsOut.String(), want) {
			t.Errorf("pigp jobs lacks %q:\n%s", want, jobsOut.String())
		}
	}
}
