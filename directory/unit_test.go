package directory

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/pigp/pigp"
)

func TestUserFilterEscapesTheLogin(t *testing.T) {
	c := DefaultConfig()
	for login, want := range map[string]string{
		"jean.dupont": `(&(objectClass=person)(uid=jean.dupont))`,
		"*)(uid=*":    `(&(objectClass=person)(uid=\2a\29\28uid=\2a))`,
		`a\b`:         `(&(objectClass=person)(uid=a\5cb))`,
		"{login}":     `(&(objectClass=person)(uid={login}))`,
	} {
		if got := c.userFilter(login); got != want {
			t.Errorf("userFilter(%q) = %s; want %s", login, got, want)
		}
		if _, err := ldap.CompileFilter(c.userFilter(login)); err != nil {
			t.Errorf("userFilter(%q) does not compile: %v", login, err)
		}
	}
}

func TestClassifyBind(t *testing.T) {
	ad := func(data string) error {
		return &ldap.Error{ResultCode: ldap.LDAPResultInvalidCredentials,
			Err: errors.New("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data " + data + ", v4563")}
	}
	for _, data := range []string{"532", "773"} {
		err := classifyBind(ad(data))
		if pigp.ErrorCode(err) != pigp.EEXPIRED || pigp.ErrorMessage(err) != pigp.MsgDirectoryPasswordExpired || !errors.Is(err, ErrPasswordExpired) {
			t.Errorf("data %s: %v; want EEXPIRED", data, err)
		}
	}
	for _, data := range []string{"52e", "525", "533", "701", "775", "5320"} {
		if err := classifyBind(ad(data)); pigp.ErrorCode(err) != pigp.EUNAUTHORIZED || !errors.Is(err, ErrBadPassword) {
			t.Errorf("data %s: %v; want EUNAUTHORIZED", data, err)
		}
	}
	if err := classifyBind(&ldap.Error{ResultCode: ldap.LDAPResultUnwillingToPerform, Err: errors.New("unauthenticated bind")}); pigp.ErrorCode(err) != pigp.EUNAUTHORIZED {
		t.Errorf("unwilling to perform: %v", err)
	}
	for _, code := range []uint16{ldap.ErrorNetwork, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultConfidentialityRequired} {
		err := classifyBind(&ldap.Error{ResultCode: code, Err: errors.New("x")})
		var pe *pigp.Error
		if errors.As(err, &pe) {
			t.Errorf("code %d classified as an answer about the agent: %v", code, err)
		}
	}
}

func TestCanonicalDN(t *testing.T) {
	a, err := CanonicalDN("CN=Paierie 94, OU=Groupes,DC=dgfip,DC=fr")
	if err != nil {
		t.Fatal(err)
	}
	if a != "cn=paierie 94,ou=groupes,dc=dgfip,dc=fr" {
		t.Fatalf("CanonicalDN = %q", a)
	}
	for _, same := range []string{"cn=paierie 94,ou=groupes,dc=dgfip,dc=fr", "cn=PAIERIE 94 , ou=groupes , dc=DGFIP,dc=fr", `cn=paierie\2094,ou=groupes,dc=dgfip,dc=fr`} {
		if b, err := CanonicalDN(same); err != nil || b != a {
			t.Errorf("CanonicalDN(%q) = %q, %v; want %q", same, b, err, a)
		}
	}
	if b, _ := CanonicalDN(`cn=Dupont\, Jean+uid=jd,dc=fr`); b != `cn=dupont\, jean+uid=jd,dc=fr` {
		t.Errorf("escaped comma, multi-valued RDN: %q", b)
	}
	if b, _ := CanonicalDN(`uid=jd+cn=Dupont\, Jean,dc=fr`); b != `cn=dupont\, jean+uid=jd,dc=fr` {
		t.Errorf("multi-valued RDN order: %q", b)
	}
	for _, bad := range []string{"", "pas un dn", "cn=x,,dc=fr"} {
		if _, err := CanonicalDN(bad); pigp.ErrorCode(err) != pigp.EINVALID {
			t.Errorf("CanonicalDN(%q): %v; want EINVALID", bad, err)
		}
	}
}

func TestAutoSIRET(t *testing.T) {
	for dn, want := range map[string]string{
		"cn=pigp-siret-22940028800010,ou=groups,dc=x":  "22940028800010",
		"CN=PIGP-SIRET-22940028800010,OU=Groupes,DC=x": "22940028800010",
		"cn=pigp-siret-22940028800011,ou=groups,dc=x":  "", // Luhn
		"cn=pigp-siret-2294002880001,ou=groups,dc=x":   "",
		"ou=pigp-siret-22940028800010,dc=x":            "",
		"cn=x,cn=pigp-siret-22940028800010,dc=x":       "",
		"cn=pigp-siret-22940028800010+uid=x,dc=x":      "",
	} {
		d, err := ldap.ParseDN(dn)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := autoSIRET(d); got != want || ok != (want != "") {
			t.Errorf("autoSIRET(%s) = %q, %v; want %q", dn, got, ok, want)
		}
	}
}

func TestIsLocal(t *testing.T) {
	cfg := validConfig()
	c, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for login, want := range map[string]bool{"pmartin-xt": true, "PMartin-XT": true, "jean.dupont": false,
		"xt": false, "jean-xt.dupont": false, "*)(uid=*": false} {
		if c.IsLocal(login) != want {
			t.Errorf("IsLocal(%q) = %v", login, !want)
		}
	}
	cfg.LocalLogins = `(-xt|\.ext)$`
	c, _ = New(cfg, nil, nil)
	if !c.IsLocal("jean.ext") || !c.IsLocal("p-xt") || c.IsLocal("jean.dupont") {
		t.Error("configured local_logins pattern not applied")
	}
}

func validConfig() Config {
	c := DefaultConfig()
	c.URL, c.BindDN, c.BindPassword, c.BaseDN = "ldaps://annuaire.dgfip.test", "cn=pigp,ou=services,dc=dgfip,dc=test", "s", "dc=dgfip,dc=test"
	return c
}

func TestConfigValidate(t *testing.T) {
	if err := (&Config{}).Validate(); err == nil {
		t.Fatal("empty config accepted")
	}
	ok := validConfig()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		change func(*Config)
		field  string
	}{
		"scheme":          {func(c *Config) { c.URL = "http://annuaire" }, "ldap.url"},
		"no host":         {func(c *Config) { c.URL = "ldaps://" }, "ldap.url"},
		"path":            {func(c *Config) { c.URL = "ldaps://h/dc=x" }, "ldap.url"},
		"no bind dn":      {func(c *Config) { c.BindDN = "" }, "ldap.bind_dn"},
		"bad bind dn":     {func(c *Config) { c.BindDN = "pas un dn" }, "ldap.bind_dn"},
		"no password":     {func(c *Config) { c.BindPassword = "" }, "ldap.bind_password"},
		"two passwords":   {func(c *Config) { c.BindPasswordFile = "/etc/x" }, "ldap.bind_password"},
		"no base":         {func(c *Config) { c.BaseDN = "" }, "ldap.base_dn"},
		"filter no login": {func(c *Config) { c.UserFilter = "(uid=x)" }, "ldap.user_filter"},
		"filter syntax":   {func(c *Config) { c.UserFilter = "(uid={login}" }, "ldap.user_filter"},
		"group filter":    {func(c *Config) { c.GroupAttribute, c.GroupFilter = "", "(objectClass=groupOfNames)" }, "ldap.group_filter"},
		"group base":      {func(c *Config) { c.GroupAttribute, c.GroupBaseDN = "", "pas un dn" }, "ldap.group_base_dn"},
		"local pattern":   {func(c *Config) { c.LocalLogins = "(" }, "ldap.local_logins"},
		"timeout":         {func(c *Config) { c.Timeout = 0 }, "ldap.timeout"},
		"pool":            {func(c *Config) { c.PoolSize = 0 }, "ldap.pool_size"},
		"ca file":         {func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "ldap.ca_file"},
	} {
		c := validConfig()
		tc.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v; want an error naming %s", name, err, tc.field)
		}
	}
}
