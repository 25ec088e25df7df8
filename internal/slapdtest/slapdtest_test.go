package slapdtest_test

import (
	"net"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/pigp/pigp/internal/slapdtest"
)

func dial(t *testing.T, url string) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(10 * time.Second)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServer(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{})
	person := s.AddPerson("jean.dupont", "Motdepasse-1", "Jean Dupont", "jean.dupont@dgfip.test")
	group := s.AddGroup("pigp-siret-22940028800010", person)

	c := dial(t, s.URL)
	if err := c.Bind(slapdtest.ServiceDN, slapdtest.ServicePassword); err != nil {
		t.Fatalf("service bind: %v\n%s", err, s.Log())
	}
	res, err := c.Search(ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=jean.dupont)", []string{"memberOf", "mail"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("search: %v %v", res, err)
	}
	if got := res.Entries[0].GetAttributeValues("memberOf"); len(got) != 1 || got[0] != group {
		t.Fatalf("memberOf = %q, want %q (memberof overlay)", got, group)
	}
	if err := c.Bind(person, "Motdepasse-1"); err != nil {
		t.Fatalf("person bind: %v", err)
	}
	if err := c.Bind(person, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("wrong password bind: %v", err)
	}

	s.Stop()
	if _, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second})); err == nil {
		t.Fatal("dial succeeded with slapd stopped")
	}
	s.Restart()
	c2 := dial(t, s.URL)
	if err := c2.Bind(person, "Motdepasse-1"); err != nil {
		t.Fatalf("bind after restart: %v", err)
	}
}

func TestServerTLS(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{TLS: true, RequireTLS: true})
	person := s.AddPerson("marie.curie", "Motdepasse-2", "Marie Curie", "")

	plain := dial(t, s.URL)
	if err := plain.Bind(person, "Motdepasse-2"); !ldap.IsErrorWithCode(err, ldap.LDAPResultConfidentialityRequired) {
		t.Fatalf("plain bind on a TLS-only server: %v", err)
	}
	c := dial(t, s.URL)
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		t.Fatalf("StartTLS: %v\n%s", err, s.Log())
	}
	if err := c.Bind(person, "Motdepasse-2"); err != nil {
		t.Fatalf("bind over StartTLS: %v", err)
	}
	c2, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig()))
	if err != nil {
		t.Fatalf("ldaps: %v", err)
	}
	defer c2.Close()
	if err := c2.Bind(person, "Motdepasse-2"); err != nil {
		t.Fatalf("bind over ldaps: %v", err)
	}
}
