// Package slapdtest runs a real, throw-away OpenLDAP server (Debian's slapd)
// for tests: its own cn=config and mdb database in a temporary directory,
// the memberof overlay, listening on free 127.0.0.1 ports only, optionally
// with TLS (StartTLS and ldaps://) under a certificate authority generated
// for the test. Entries are added with ldap-utils' ldapadd and ldapmodify,
// as an administrator would.
//
// Without slapd or ldap-utils the test is skipped, unless CI=true, where it
// fails (.ci/slapd.sh installs them).
package slapdtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Paths of the Debian packages' programs and files.
const (
	SlapdPath    = "/usr/sbin/slapd"
	SlapaddPath  = "/usr/sbin/slapadd"
	LdapaddPath  = "/usr/bin/ldapadd"
	LdapmodPath  = "/usr/bin/ldapmodify"
	ModulePath   = "/usr/lib/ldap"
	SchemaDir    = "/etc/ldap/schema"
	startTimeout = 30 * time.Second
)

// The directory tree every server starts with.
const (
	BaseDN          = "dc=pigp,dc=test"
	PeopleDN        = "ou=people," + BaseDN
	GroupsDN        = "ou=groups," + BaseDN
	AdminDN         = "cn=admin," + BaseDN
	AdminPassword   = "admin-secret-9!"
	ServiceDN       = "cn=pigp,ou=services," + BaseDN
	ServicePassword = "service-secret-7!"
	// NobodyDN is the placeholder member of groups created empty
	// (groupOfNames needs one member); it is no entry.
	NobodyDN = "cn=nobody," + BaseDN
)

// Options chooses how the server runs.
type Options struct {
	// TLS gives the server a certificate signed by a CA generated for the
	// test (Server.CAFile): StartTLS on URL and TLS on LDAPSURL.
	TLS bool
	// CertNames are the DNS names of the server certificate; by default
	// "localhost" and the IP address 127.0.0.1. Set another name to test
	// the refusal of a certificate that does not match.
	CertNames []string
	// RequireTLS makes the server refuse every operation but StartTLS on
	// an unencrypted connection (security tls=1).
	RequireTLS bool
}

// Server is a running slapd.
type Server struct {
	// URL is ldap://127.0.0.1:PORT (StartTLS available with Options.TLS).
	URL string
	// LDAPSURL is ldaps://127.0.0.1:PORT2, with Options.TLS only.
	LDAPSURL string
	// CAFile is the PEM file of the test CA, with Options.TLS only.
	CAFile string

	tb       testing.TB
	opt      Options
	dir      string
	port     int
	tlsPort  int
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	log      *lockedBuffer
	tlsAdmin bool // admin tools must use StartTLS
}

// Available skips the test (or fails it when CI=true) unless slapd and
// ldap-utils are installed.
func Available(tb testing.TB) {
	tb.Helper()
	for _, p := range []string{SlapdPath, SlapaddPath, LdapaddPath, LdapmodPath,
		filepath.Join(ModulePath, "back_mdb.so"), filepath.Join(ModulePath, "memberof.so"),
		filepath.Join(SchemaDir, "inetorgperson.ldif")} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("slapdtest: %s missing (CI installs slapd and ldap-utils with .ci/slapd.sh)", p)
			}
			tb.Skipf("slapdtest: %s missing: install slapd and ldap-utils (.ci/slapd.sh)", p)
		}
	}
}

// Start configures and starts a slapd for the test; it is stopped and its
// files removed when the test ends.
func Start(tb testing.TB, opt Options) *Server {
	tb.Helper()
	Available(tb)
	s := &Server{tb: tb, opt: opt, dir: tb.TempDir(), log: &lockedBuffer{}}
	s.tlsAdmin = opt.RequireTLS
	if opt.TLS {
		s.writeCertificates()
	} else if opt.RequireTLS {
		tb.Fatal("slapdtest: RequireTLS needs TLS")
	}
	s.writeConfig()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, s.tlsPort = freePort(tb), 0
		if opt.TLS {
			s.tlsPort = freePort(tb)
		}
		s.setURLs()
		if err = s.start(); err == nil {
			break
		}
		// Another process took the port between our probe and slapd's bind.
	}
	if err != nil {
		tb.Fatalf("slapdtest: start slapd: %v\n%s", err, s.log.String())
	}
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) setURLs() {
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.port)
	if s.tlsPort != 0 {
		s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", s.tlsPort)
	}
}

// Log returns what slapd printed so far (for a failing test's message).
func (s *Server) Log() string { return s.log.String() }

// Stop stops slapd (SIGTERM, as its init script does) and waits for it.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped server again, on the same ports with the same
// data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.tb.Fatalf("slapdtest: restart slapd: %v\n%s", err, s.log.String())
}

// start runs slapd in the foreground (-d: no fork) and waits until it
// answers LDAP.
func (s *Server) start() error {
	urls := s.URL + "/"
	if s.LDAPSURL != "" {
		urls += " " + s.LDAPSURL + "/"
	}
	cmd := exec.Command(SlapdPath, "-F", filepath.Join(s.dir, "slapd.d"), "-h", urls, "-d", "0")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("slapd exited: %v", waitErr)
		default:
		}
		if s.answers() {
			s.mu.Lock()
			s.cmd, s.done = cmd, done
			s.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return errors.New("slapd did not answer in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers reports whether an LDAP request gets an LDAP answer (an error
// result counts: the server is up).
func (s *Server) answers() bool {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetTimeout(2 * time.Second)
	_, err = c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil))
	return err == nil || !ldap.IsErrorAnyOf(err, ldap.ErrorNetwork)
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeConfig builds the cn=config directory and the base entries with
// slapadd (offline, before the first start).
func (s *Server) writeConfig() {
	tb := s.tb
	confDir := filepath.Join(s.dir, "slapd.d")
	dataDir := filepath.Join(s.dir, "data")
	for _, d := range []string{confDir, dataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: %s\nolcArgsFile: %s\n",
		filepath.Join(s.dir, "slapd.pid"), filepath.Join(s.dir, "slapd.args"))
	if s.opt.TLS {
		fmt.Fprintf(&b, "olcTLSCACertificateFile: %s\nolcTLSCertificateFile: %s\nolcTLSCertificateKeyFile: %s\n",
			s.CAFile, filepath.Join(s.dir, "server.pem"), filepath.Join(s.dir, "server-key.pem"))
	}
	if s.opt.RequireTLS {
		b.WriteString("olcSecurity: tls=1\n")
	}
	fmt.Fprintf(&b, "\ndn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\nolcModulePath: %s\nolcModuleLoad: back_mdb\nolcModuleLoad: memberof\n", ModulePath)
	b.WriteString("\ndn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n")
	for _, f := range []string{"core.ldif", "cosine.ldif", "inetorgperson.ldif"} {
		schema, err := os.ReadFile(filepath.Join(SchemaDir, f))
		if err != nil {
			tb.Fatal(err)
		}
		b.WriteString("\n")
		b.Write(schema)
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, `
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: %s
olcDbDirectory: %s
olcDbMaxSize: 33554432
olcRootDN: %s
olcRootPW: %s
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: member eq
olcAccess: {0}to attrs=userPassword by anonymous auth by * none
olcAccess: {1}to * by dn.exact="%s" read by self read by * none

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
`, BaseDN, dataDir, AdminDN, AdminPassword, ServiceDN)
	s.slapadd([]string{"-n", "0"}, b.String())

	base := fmt.Sprintf(`dn: %s
objectClass: dcObject
objectClass: organization
dc: pigp
o: pigp test

dn: %s
objectClass: organizationalUnit
ou: people

dn: %s
objectClass: organizationalUnit
ou: groups

dn: ou=services,%s
objectClass: organizationalUnit
ou: services

dn: %s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: pigp
userPassword: %s
`, BaseDN, PeopleDN, GroupsDN, BaseDN, ServiceDN, SSHA(ServicePassword))
	s.slapadd([]string{"-b", BaseDN}, base)
}

func (s *Server) slapadd(args []string, ldif string) {
	f := filepath.Join(s.dir, fmt.Sprintf("slapadd-%d.ldif", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(ldif), 0o600); err != nil {
		s.tb.Fatal(err)
	}
	cmd := exec.Command(SlapaddPath, append(append([]string{"-F", filepath.Join(s.dir, "slapd.d")}, args...), "-l", f)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.tb.Fatalf("slapdtest: slapadd %v: %v\n%s", args, err, out)
	}
}

// Add adds entries (LDIF) with ldapadd, bound as the administrator; the
// memberof overlay maintains memberOf as for any LDAP client.
func (s *Server) Add(ldif string) { s.ldapTool(LdapaddPath, ldif) }

// Modify applies an LDIF of changes with ldapmodify as the administrator.
func (s *Server) Modify(ldif string) { s.ldapTool(LdapmodPath, ldif) }

func (s *Server) ldapTool(path, ldif string) {
	s.tb.Helper()
	args := []string{"-x", "-H", s.URL, "-D", AdminDN, "-w", AdminPassword, "-o", "nettimeout=10"}
	if s.tlsAdmin {
		args = append(args, "-ZZ")
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = strings.NewReader(ldif)
	// The tools read only a configuration of ours (not the machine's
	// /etc/ldap/ldap.conf nor ~/.ldaprc): the test CA, certificates checked.
	conf := filepath.Join(s.dir, "ldap.conf")
	var b strings.Builder
	b.WriteString("TLS_REQCERT demand\n")
	if s.CAFile != "" {
		b.WriteString("TLS_CACERT " + s.CAFile + "\n")
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		s.tb.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "LDAPCONF="+conf, "LDAPRC=pigp-slapdtest-none", "HOME="+s.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.tb.Fatalf("slapdtest: %s: %v\n%s\ninput:\n%s\nslapd:\n%s", filepath.Base(path), err, out, ldif, s.log.String())
	}
}

// AddPerson adds an inetOrgPerson under ou=people and returns its DN. An
// empty mail leaves the attribute out.
func (s *Server) AddPerson(uid, password, displayName, mail string) string {
	s.tb.Helper()
	dn := "uid=" + ldap.EscapeDN(uid) + "," + PeopleDN
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n",
		dn, uid, displayName, displayName, SSHA(password))
	if displayName != "" {
		fmt.Fprintf(&b, "displayName: %s\n", displayName)
	}
	if mail != "" {
		fmt.Fprintf(&b, "mail: %s\n", mail)
	}
	s.Add(b.String())
	return dn
}

// AddGroup adds a groupOfNames under ou=groups with the given members (the
// placeholder NobodyDN when there are none) and returns its DN.
func (s *Server) AddGroup(cn string, members ...string) string {
	s.tb.Helper()
	dn := "cn=" + ldap.EscapeDN(cn) + "," + GroupsDN
	if len(members) == 0 {
		members = []string{NobodyDN}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: groupOfNames\ncn: %s\n", dn, cn)
	for _, m := range members {
		fmt.Fprintf(&b, "member: %s\n", m)
	}
	s.Add(b.String())
	return dn
}

// AddMember adds member to the group groupDN.
func (s *Server) AddMember(groupDN, member string) {
	s.tb.Helper()
	s.Modify(fmt.Sprintf("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n", groupDN, member))
}

// SetPassword replaces the password of the entry dn.
func (s *Server) SetPassword(dn, password string) {
	s.tb.Helper()
	s.Modify(fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n", dn, SSHA(password)))
}

// SSHA returns the {SSHA} userPassword value of password.
func SSHA(password string) string {
	salt := make([]byte, 8)
	rand.Read(salt)
	h := sha1.New()
	h.Write([]byte(password))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...))
}

// writeCertificates generates the test CA and the server's certificate.
func (s *Server) writeCertificates() {
	tb := s.tb
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pigp test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "slapd"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(s.opt.CertNames) == 0 {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		tmpl.DNSNames = s.opt.CertNames
		tmpl.Subject.CommonName = s.opt.CertNames[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	s.CAFile = filepath.Join(s.dir, "ca.pem")
	for name, block := range map[string]*pem.Block{
		"ca.pem":         {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem":     {Type: "CERTIFICATE", Bytes: der},
		"server-key.pem": {Type: "PRIVATE KEY", Bytes: pkcs8},
	} {
		if err := os.WriteFile(filepath.Join(s.dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// CAPool returns the test CA as a certificate pool (Options.TLS only).
func (s *Server) CAPool() *x509.CertPool {
	b, err := os.ReadFile(s.CAFile)
	if err != nil {
		s.tb.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b)
	return p
}

// TLSConfig returns a client configuration trusting the test CA.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CAPool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// lockedBuffer collects slapd's output from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
