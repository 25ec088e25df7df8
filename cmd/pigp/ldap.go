package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/directory"
)

type ldapCommand struct{}

const ldapUsage = "usage: pigp ldap map --group DN --siret S[,S…] [--role auditeur|operateur] | map list | map remove --group DN [--siret S[,S…]] | check [--login L --password-stdin]"

func (ldapCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		return usagef("%s", ldapUsage)
	}
	switch args[0] {
	case "map":
		rest := args[1:]
		if len(rest) > 0 {
			switch rest[0] {
			case "list":
				return ldapMapList(ctx, m, rest[1:])
			case "remove":
				return ldapMapRemove(ctx, m, rest[1:])
			}
		}
		return ldapMap(ctx, m, rest)
	case "check":
		return ldapCheck(ctx, m, args[1:])
	}
	return usagef("unknown subcommand %q; %s", args[0], ldapUsage)
}

// ldapMap maps a directory group to SIRETs with a role. A group named
// cn=pigp-siret-<SIRET> needs no mapping.
func ldapMap(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("ldap map")
	var cf configFlags
	cf.register(fs, false)
	group := fs.String("group", "", "DN of the directory group, e.g. cn=paierie-94,ou=groupes,dc=dgfip,dc=fr")
	sirets := fs.String("siret", "", "SIRET(s) the group's members act for, comma-separated")
	role := fs.String("role", pigp.RoleAgent, "agent (default: deposits, retrievals, histories), operateur or auditeur (read-only)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *group == "" || *sirets == "" {
		return usagef("--group and --siret are required; %s", ldapUsage)
	}
	if err := pigp.ValidateRole(*role); err != nil {
		return usagef("--role: %s", pigp.ErrorMessage(err))
	}
	key, err := directory.CanonicalDN(*group)
	if err != nil {
		return err
	}
	var ms []*pigp.GroupMapping
	for _, s := range splitList(*sirets) {
		if err := pigp.ValidateSIRET(s); err != nil {
			return err
		}
		ms = append(ms, &pigp.GroupMapping{GroupDN: strings.TrimSpace(*group), GroupKey: key, SIRET: s, Role: *role})
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		created, updated, err := app.DB.SaveGroupMappings(ctx, ms, app.opAudit()...)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "groupe %s → SIRET %s, rôle %s (%d association(s) créée(s), %d mise(s) à jour)\n",
			*group, strings.Join(splitList(*sirets), ", "), *role, created, updated)
		if !app.Config.LDAP.Enabled() {
			fmt.Fprintln(m.Stdout, "attention : aucun annuaire n'est configuré (ldap.url) ; l'association servira quand il le sera")
		}
		return nil
	})
}

func ldapMapList(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("ldap map list")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		ms, err := app.DB.ListGroupMappings(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUPE\tSIRET\tRÔLE\tCRÉÉE LE")
		for _, g := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.GroupDN, g.SIRET, g.Role, g.CreatedAt.Format("2006-01-02"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "(les groupes cn=%s<SIRET> donnent leur SIRET, rôle agent, sans association)\n", directory.AutoGroupPrefix)
		return nil
	})
}

func ldapMapRemove(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("ldap map remove")
	var cf configFlags
	cf.register(fs, false)
	group := fs.String("group", "", "DN of the directory group")
	sirets := fs.String("siret", "", "only these SIRET(s), comma-separated (default: every mapping of the group)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *group == "" {
		return usagef("--group is required; %s", ldapUsage)
	}
	key, err := directory.CanonicalDN(*group)
	if err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		n, err := app.DB.RemoveGroupMappings(ctx, key, splitList(*sirets), app.opAudit()...)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "groupe %s : %d association(s) supprimée(s)\n", *group, n)
		return nil
	})
}

// ldapCheck connects to the directory as the service account and, with
// --login, authenticates an agent (password on standard input) and prints
// what its groups grant.
func ldapCheck(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("ldap check")
	var cf configFlags
	cf.register(fs, false)
	login := fs.String("login", "", "also authenticate this agent (password on standard input) and show its grants")
	fromStdin := fs.Bool("password-stdin", false, "read the agent's password from standard input (with --login)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if (*login == "") != !*fromStdin {
		return usagef("--login and --password-stdin go together")
	}
	var password string
	if *login != "" {
		var err error
		if password, err = readPassword(m); err != nil {
			return err
		}
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		if app.Directory == nil {
			return pigp.Errorf(pigp.EINVALID, "aucun annuaire configuré (ldap.url)")
		}
		if err := app.Directory.Check(ctx); err != nil {
			return ldapFailure(err)
		}
		fmt.Fprintf(m.Stdout, "annuaire %s : connexion et compte de service OK\n", app.Config.LDAP.URL)
		if *login == "" {
			return nil
		}
		if app.Directory.IsLocal(*login) {
			return pigp.Errorf(pigp.EINVALID, "%s est un identifiant local (ldap.local_logins) : il n'est jamais envoyé à l'annuaire", *login)
		}
		a, err := app.Directory.Authenticate(ctx, *login, password)
		if err != nil {
			if code := pigp.ErrorCode(err); code == pigp.EUNAUTHORIZED || code == pigp.EEXPIRED {
				return pigp.Errorf(code, "%s refusé : %s", *login, directory.AuditDetail(err))
			}
			return ldapFailure(err)
		}
		fmt.Fprintf(m.Stdout, "%s : %s <%s>\nentrée : %s\n", a.Login, a.Name, a.Email, a.DN)
		for _, g := range a.Groups {
			fmt.Fprintf(m.Stdout, "groupe : %s\n", g)
		}
		for _, g := range a.Grants {
			fmt.Fprintf(m.Stdout, "habilitation : SIRET %s, rôle %s\n", g.SIRET, g.Role)
		}
		return nil
	})
}

// ldapFailure shows the operator why the directory cannot be used (the
// internal cause, which users never see).
func ldapFailure(err error) error {
	return pigp.WrapError(pigp.EUNAVAILABLE, pigp.MsgDirectoryUnavailable+" : "+errorCause(err), err)
}

func errorCause(err error) string {
	var pe *pigp.Error
	for e := err; e != nil; {
		if p, ok := e.(*pigp.Error); ok {
			pe = p
			e = p.Err
			continue
		}
		break
	}
	if pe != nil && pe.Err != nil {
		return pe.Err.Error()
	}
	return err.Error()
}
