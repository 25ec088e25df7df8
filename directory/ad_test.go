package directory_test

import (
	"context"
	"errors"
	"net"
	"regexp"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/directory"
	"github.com/pigp/pigp/internal/testutil"
)

// fakeAD answers like an Active Directory domain controller over the LDAP
// wire protocol: the service account binds, every search finds the agent
// named in the filter, and each agent's bind gets the diagnostic AD sends
// for its case (data 532: password expired, 773: must change at next
// logon, 52e: wrong password). slapd cannot produce these answers.
func fakeAD(t *testing.T, serviceDN, base string, data map[string]string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	uidRE := regexp.MustCompile(`sAMAccountName=([^)]*)\)`)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				defer conn.Close()
				for {
					p, err := ber.ReadPacket(conn)
					if err != nil || len(p.Children) < 2 {
						return
					}
					id, _ := p.Children[0].Value.(int64)
					op := p.Children[1]
					var out []*ber.Packet
					switch op.Tag {
					case ldap.ApplicationBindRequest:
						name, _ := op.Children[1].Value.(string)
						code, diag := int64(0), ""
						if name != serviceDN {
							code = ldap.LDAPResultInvalidCredentials
							diag = "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563"
							for login, d := range data {
								if name == "CN="+login+","+base {
									diag = "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data " + d + ", v4563"
								}
							}
						}
						out = append(out, result(ldap.ApplicationBindResponse, code, diag))
					case ldap.ApplicationSearchRequest:
						filter, _ := ldap.DecompileFilter(op.Children[6])
						if m := uidRE.FindStringSubmatch(filter); m != nil {
							if _, ok := data[m[1]]; ok {
								out = append(out, entry("CN="+m[1]+","+base, "memberOf", "CN=pigp-siret-"+siretA+",OU=Groupes,"+base))
							}
						}
						out = append(out, result(ldap.ApplicationSearchResultDone, 0, ""))
					default: // unbind, abandon
						return
					}
					for _, o := range out {
						msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
						msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
						msg.AppendChild(o)
						if _, err := conn.Write(msg.Bytes()); err != nil {
							return
						}
					}
				}
			}(conn)
		}
	}()
	return "ldap://" + l.Addr().String()
}

func result(app ber.Tag, code int64, diag string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, app, nil, "Result")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, "resultCode"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diagnosticMessage"))
	return op
}

func entry(dn, attr, value string) *ber.Packet {
	e := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "Entry")
	e.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "objectName"))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
	a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, attr, "type"))
	vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
	vals.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, value, "value"))
	a.AppendChild(vals)
	attrs.AppendChild(a)
	e.AppendChild(attrs)
	return e
}

func TestActiveDirectoryExpiredPassword(t *testing.T) {
	const base, service = "DC=dgfip,DC=test", "CN=pigp,OU=Services,DC=dgfip,DC=test"
	url := fakeAD(t, service, base, map[string]string{"jean.dupont": "532", "marie.curie": "773", "paul.martin": "52e"})
	db, _ := testutil.NewStore(t, "sqlite")
	if err := db.CreateOrganisation(context.Background(), &pigp.Organisation{SIRET: siretA, Name: "Val-de-Marne"}); err != nil {
		t.Fatal(err)
	}
	cfg := directory.DefaultConfig()
	cfg.URL, cfg.StartTLS, cfg.BindDN, cfg.BindPassword, cfg.BaseDN = url, false, service, "s", base
	cfg.UserFilter = "(&(objectClass=user)(sAMAccountName={login}))"
	c, err := directory.New(cfg, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, login := range []string{"jean.dupont", "marie.curie"} {
		_, err := c.Authenticate(context.Background(), login, "Ancien-Mot-De-Passe-1")
		if pigp.ErrorCode(err) != pigp.EEXPIRED || pigp.ErrorMessage(err) != pigp.MsgDirectoryPasswordExpired ||
			!errors.Is(err, directory.ErrPasswordExpired) {
			t.Fatalf("%s: %v; want EEXPIRED with the directory's message", login, err)
		}
	}
	_, err = c.Authenticate(context.Background(), "paul.martin", "faux")
	refusedBecause(t, err, directory.ErrBadPassword)
	_, err = c.Authenticate(context.Background(), "inconnu", "faux")
	refusedBecause(t, err, directory.ErrUnknownLogin)
}
