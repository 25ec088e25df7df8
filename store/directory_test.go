package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/store"
)

func TestDirectoryAccounts(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		local := mustOrgAndAccount(t, db, "djouffre-xt", siretA)
		if local.Source != pigp.SourceLocal {
			t.Fatalf("local account source = %q", local.Source)
		}
		if err := db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siretB, Name: "Paris"}); err != nil {
			t.Fatal(err)
		}
		agent := &pigp.DirectoryAccount{Login: "jean.dupont", DN: "uid=jean.dupont,ou=people,dc=dgfip,dc=test",
			Name: "Jean Dupont", Email: "jean.dupont@dgfip.test",
			Grants: []pigp.Grant{{SIRET: siretA, Role: pigp.RoleAgent}, {SIRET: siretB, Role: pigp.RoleAuditeur}}}
		a, err := db.UpsertDirectoryAccount(ctx, agent)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == 0 || a.Source != pigp.SourceLDAP || a.DirectoryDN != agent.DN || a.PasswordHash != "" ||
			a.State != pigp.AccountActive || a.LastSeenAt.IsZero() || len(a.SIRETs) != 2 {
			t.Fatalf("shadow row = %+v", a)
		}
		if pigp.VerifyPassword(a.PasswordHash, "") {
			t.Fatal("a shadow row's empty hash verified a password")
		}
		if !a.PasswordExpiresAt.Equal(pigp.NoPasswordExpiry) {
			t.Fatalf("shadow password expiry = %v", a.PasswordExpiresAt)
		}
		first := a.LastSeenAt

		// A later login refreshes the row; an operator's disable stays.
		if err := db.SetAccountState(ctx, "jean.dupont", pigp.AccountDisabled); err != nil {
			t.Fatal(err)
		}
		db.Now = func() time.Time { return first.Add(time.Hour) }
		agent.Name, agent.Email, agent.Grants = "Jean Dupont-Martin", "", []pigp.Grant{{SIRET: siretB, Role: pigp.RoleAgent}}
		b, err := db.UpsertDirectoryAccount(ctx, agent)
		if err != nil {
			t.Fatal(err)
		}
		if b.ID != a.ID || b.Name != "Jean Dupont-Martin" || b.Email != "" || b.State != pigp.AccountDisabled ||
			!b.LastSeenAt.After(first) || len(b.SIRETs) != 1 || b.SIRETs[0] != siretB {
			t.Fatalf("refreshed shadow row = %+v", b)
		}
		found, err := db.FindAccountByLogin(ctx, "jean.dupont")
		if err != nil || found.Source != pigp.SourceLDAP || found.Name != b.Name {
			t.Fatalf("FindAccountByLogin = %+v, %v", found, err)
		}

		// A directory login never takes over a local account.
		_, err = db.UpsertDirectoryAccount(ctx, &pigp.DirectoryAccount{Login: "djouffre-xt", Name: "X",
			Grants: []pigp.Grant{{SIRET: siretA, Role: pigp.RoleAgent}}})
		if pigp.ErrorCode(err) != pigp.ECONFLICT {
			t.Fatalf("upsert over a local account: %v, want ECONFLICT", err)
		}
		if l, _ := db.FindAccountByLogin(ctx, "djouffre-xt"); l.Source != pigp.SourceLocal || l.PasswordHash == "" {
			t.Fatalf("local account changed: %+v", l)
		}
		// An unknown organisation is refused and nothing changes.
		_, err = db.UpsertDirectoryAccount(ctx, &pigp.DirectoryAccount{Login: "marie.curie", Name: "Marie",
			Grants: []pigp.Grant{{SIRET: "35600000000048", Role: pigp.RoleAgent}}})
		if pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("unknown organisation: %v", err)
		}
		if _, err := db.FindAccountByLogin(ctx, "marie.curie"); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("half-created shadow row: %v", err)
		}
		// No grant: no row.
		if _, err := db.UpsertDirectoryAccount(ctx, &pigp.DirectoryAccount{Login: "paul.x", Name: "P"}); pigp.ErrorCode(err) != pigp.EINVALID {
			t.Fatalf("no grant: %v", err)
		}

		accounts, err := db.ListAccounts(ctx)
		if err != nil || len(accounts) != 2 {
			t.Fatalf("ListAccounts = %v, %v", accounts, err)
		}
		sources := map[string]string{}
		for _, x := range accounts {
			sources[x.Login] = x.Source
		}
		if sources["djouffre-xt"] != pigp.SourceLocal || sources["jean.dupont"] != pigp.SourceLDAP {
			t.Fatalf("sources = %v", sources)
		}

		// Password expiry and reminders never concern directory accounts.
		if err := db.SetAccountState(ctx, "jean.dupont", pigp.AccountActive); err != nil {
			t.Fatal(err)
		}
		exp, err := db.AccountsExpiringBetween(ctx, pigp.NoPasswordExpiry.AddDate(0, -1, 0), pigp.NoPasswordExpiry)
		if err != nil || len(exp) != 0 {
			t.Fatalf("AccountsExpiringBetween = %v, %v; want no directory account", exp, err)
		}
	})
}

func TestGroupMappings(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		mustOrgAndAccount(t, db, "djouffre-xt", siretA)
		if err := db.CreateOrganisation(ctx, &pigp.Organisation{SIRET: siretB, Name: "Paris"}); err != nil {
			t.Fatal(err)
		}
		const dn, key = "CN=Paierie 94,OU=Groupes,DC=dgfip,DC=test", "cn=paierie 94,ou=groupes,dc=dgfip,dc=test"
		created, updated, err := db.SaveGroupMappings(ctx, []*pigp.GroupMapping{
			{GroupDN: dn, GroupKey: key, SIRET: siretA, Role: pigp.RoleAgent},
			{GroupDN: dn, GroupKey: key, SIRET: siretB, Role: pigp.RoleAgent},
		})
		if err != nil || created != 2 || updated != 0 {
			t.Fatalf("SaveGroupMappings = %d, %d, %v", created, updated, err)
		}
		// Saving again changes the role.
		created, updated, err = db.SaveGroupMappings(ctx, []*pigp.GroupMapping{{GroupDN: dn, GroupKey: key, SIRET: siretB, Role: pigp.RoleAuditeur}})
		if err != nil || created != 0 || updated != 1 {
			t.Fatalf("SaveGroupMappings again = %d, %d, %v", created, updated, err)
		}
		// All or nothing: an unknown organisation or role keeps everything as it was.
		_, _, err = db.SaveGroupMappings(ctx, []*pigp.GroupMapping{
			{GroupDN: "cn=x", GroupKey: "cn=x", SIRET: siretA, Role: pigp.RoleOperateur},
			{GroupDN: "cn=x", GroupKey: "cn=x", SIRET: "35600000000048", Role: pigp.RoleOperateur},
		})
		if pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("unknown organisation: %v", err)
		}
		if _, _, err := db.SaveGroupMappings(ctx, []*pigp.GroupMapping{{GroupDN: "cn=x", GroupKey: "cn=x", SIRET: siretA, Role: "admin"}}); pigp.ErrorCode(err) != pigp.EINVALID {
			t.Fatalf("unknown role: %v", err)
		}
		all, err := db.ListGroupMappings(ctx)
		// Ordered by group then SIRET: siretB (2275…) before siretA (2294…).
		if err != nil || len(all) != 2 || all[1].SIRET != siretA || all[1].Role != pigp.RoleAgent ||
			all[0].SIRET != siretB || all[0].Role != pigp.RoleAuditeur || all[0].GroupDN != dn || all[0].CreatedAt.IsZero() {
			t.Fatalf("ListGroupMappings = %+v %+v, %v", all[0], all[len(all)-1], err)
		}
		got, err := db.GroupMappingsFor(ctx, []string{"cn=other,dc=test", key})
		if err != nil || len(got) != 2 {
			t.Fatalf("GroupMappingsFor = %+v, %v", got, err)
		}
		if got, err := db.GroupMappingsFor(ctx, []string{"cn=other,dc=test"}); err != nil || len(got) != 0 {
			t.Fatalf("GroupMappingsFor(other) = %+v, %v", got, err)
		}
		if got, err := db.GroupMappingsFor(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("GroupMappingsFor(nil) = %+v, %v", got, err)
		}

		if n, err := db.RemoveGroupMappings(ctx, key, []string{siretB}); err != nil || n != 1 {
			t.Fatalf("RemoveGroupMappings(siretB) = %d, %v", n, err)
		}
		if _, err := db.RemoveGroupMappings(ctx, key, []string{siretB}); pigp.ErrorCode(err) != pigp.ENOTFOUND {
			t.Fatalf("removing again: %v", err)
		}
		if n, err := db.RemoveGroupMappings(ctx, key, nil); err != nil || n != 1 {
			t.Fatalf("RemoveGroupMappings(all) = %d, %v", n, err)
		}
		if all, _ := db.ListGroupMappings(ctx); len(all) != 0 {
			t.Fatalf("left: %+v", all)
		}
	})
}
