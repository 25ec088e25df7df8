package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/pigp/pigp"
)

type userCommand struct{}

func (userCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: add, list, update, disable, enable, reset-password or key add")
	}
	switch args[0] {
	case "add":
		return userAdd(ctx, m, args[1:])
	case "list":
		return userList(ctx, m, args[1:])
	case "update":
		return userUpdate(ctx, m, args[1:])
	case "disable":
		return userSetState(ctx, m, args[1:], pigp.AccountDisabled)
	case "enable":
		return userSetState(ctx, m, args[1:], pigp.AccountActive)
	case "reset-password":
		return userResetPassword(ctx, m, args[1:])
	case "key":
		if len(args) < 2 || args[1] != "add" {
			return usagef("usage: pigp user key add --login L --file KEY.pub")
		}
		return userKeyAdd(ctx, m, args[2:])
	}
	return usagef("unknown subcommand %q", args[0])
}

// readPassword reads one line from standard input.
func readPassword(m *Main) (string, error) {
	line, err := bufio.NewReader(m.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", usagef("--password-stdin: no password on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func userAdd(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("user add")
	var cf configFlags
	cf.register(fs, false)
	login := fs.String("login", "", "identifier, e.g. djouffre-xt")
	sirets := fs.String("siret", "", "SIRET(s) the account acts for, comma-separated")
	name := fs.String("name", "", "display name")
	civility := fs.String("civilite", "", "civility shown before the name: MR or MME")
	email := fs.String("email", "", "e-mail address")
	fromStdin := fs.Bool("password-stdin", false, "read the password from standard input instead of generating one")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *login == "" || *sirets == "" || *name == "" || *email == "" {
		return usagef("--login, --siret, --name and --email are required")
	}
	civ, err := pigp.ParseCivility(*civility)
	if err != nil {
		return err
	}
	a := &pigp.Account{Login: *login, Civility: civ, Name: *name, Email: *email, SIRETs: splitList(*sirets), State: pigp.AccountActive}
	if err := a.Validate(); err != nil {
		return err
	}
	password := pigp.GeneratePassword(16)
	if *fromStdin {
		var err error
		if password, err = readPassword(m); err != nil {
			return err
		}
		if err := pigp.CheckPassword(password, a.Login, a.Name, a.SIRETs); err != nil {
			return err
		}
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		if app.Directory != nil && !app.Directory.IsLocal(a.Login) {
			return pigp.Errorf(pigp.EINVALID, "identifiant %s refusé : un annuaire est configuré et seuls les identifiants de la forme ldap.local_logins (%s) sont des comptes locaux ; les autres se connectent avec l'annuaire",
				a.Login, app.Config.LDAP.LocalLogins)
		}
		hash, err := pigp.HashPassword(password)
		if err != nil {
			return err
		}
		now := app.Now()
		a.PasswordHash, a.PasswordSetAt = hash, now
		a.PasswordExpiresAt = pigp.PasswordExpiry(now, app.Config.PasswordValidityMonths)
		if err := app.DB.CreateAccount(ctx, a, app.opAudit()...); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "compte %s créé (SIRET %s), mot de passe valable jusqu'au %s\n",
			a.Login, strings.Join(a.SIRETs, ", "), a.PasswordExpiresAt.Format("2006-01-02"))
		if !*fromStdin {
			fmt.Fprintf(m.Stdout, "mot de passe (affiché une seule fois) : %s\n", password)
		}
		return nil
	})
}

func userList(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("user list")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		accounts, err := app.DB.ListAccounts(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IDENTIFIANT\tCIVILITÉ\tNOM\tCOURRIEL\tSIRET\tÉTAT\tORIGINE\tEXPIRATION MOT DE PASSE\tCLÉS SSH")
		for _, a := range accounts {
			civ := a.Civility
			if civ == "" {
				civ = "-"
			}
			if a.FromDirectory() {
				// The directory owns the password; the shadow row tells
				// when the agent last logged in.
				seen := "jamais"
				if !a.LastSeenAt.IsZero() {
					seen = a.LastSeenAt.Format("2006-01-02")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\tannuaire (vu le %s)\t-\t0\n", a.Login, civ, a.Name, a.Email,
					strings.Join(a.SIRETs, ","), a.State, seen)
				continue
			}
			keys, err := app.DB.ListSSHKeys(ctx, a.ID)
			if err != nil {
				return err
			}
			state := a.State
			if a.PasswordTemporary {
				state += " (mot de passe temporaire)"
			}
			if a.PasswordExpired(app.Now()) {
				state += " (mot de passe expiré)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\tlocal\t%s\t%d\n", a.Login, civ, a.Name, a.Email, strings.Join(a.SIRETs, ","),
				state, a.PasswordExpiresAt.Format("2006-01-02"), len(keys))
		}
		return tw.Flush()
	})
}

// userUpdate changes what an operator may change of an account without
// touching its password: the civility.
func userUpdate(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("user update")
	var cf configFlags
	cf.register(fs, false)
	login := fs.String("login", "", "identifier")
	civility := fs.String("civilite", "", "civility shown before the name: MR, MME, or - for none")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *login == "" || *civility == "" {
		return usagef("--login and --civilite are required")
	}
	civ := ""
	if *civility != "-" {
		var err error
		if civ, err = pigp.ParseCivility(*civility); err != nil {
			return err
		}
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		if err := app.DB.SetCivility(ctx, *login, civ); err != nil {
			return err
		}
		if civ == "" {
			civ = "aucune"
		}
		fmt.Fprintf(m.Stdout, "compte %s : civilité %s\n", *login, civ)
		return nil
	})
}

func userSetState(ctx context.Context, m *Main, args []string, state string) error {
	fs := m.flagSet("user " + map[string]string{pigp.AccountActive: "enable", pigp.AccountDisabled: "disable"}[state])
	var cf configFlags
	cf.register(fs, false)
	login := fs.String("login", "", "identifier")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *login == "" {
		return usagef("--login is required")
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		if err := app.DB.SetAccountState(ctx, *login, state, app.opAudit()...); err != nil {
			return err
		}
		word := map[string]string{pigp.AccountActive: "activé", pigp.AccountDisabled: "désactivé"}[state]
		fmt.Fprintf(m.Stdout, "compte %s %s\n", *login, word)
		return nil
	})
}

func userResetPassword(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("user reset-password")
	var cf configFlags
	cf.register(fs, false)
	login := fs.String("login", "", "identifier")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *login == "" {
		return usagef("--login is required")
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		a, err := app.DB.FindAccountByLogin(ctx, *login)
		if err != nil {
			return err
		}
		if a.FromDirectory() {
			return pigp.Errorf(pigp.EINVALID, "%s est un compte de l'annuaire : son mot de passe se change dans l'annuaire, pas dans pigp", a.Login)
		}
		password := pigp.GeneratePassword(16)
		hash, err := pigp.HashPassword(password)
		if err != nil {
			return err
		}
		now := app.Now()
		expires := pigp.PasswordExpiry(now, app.Config.PasswordValidityMonths)
		if err := app.DB.SetPassword(ctx, *login, hash, now, expires, true, app.opAudit()...); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "mot de passe temporaire de %s (à changer à la prochaine connexion) : %s\n", *login, password)
		return nil
	})
}

func userKeyAdd(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("user key add")
	var cf configFlags
	cf.register(fs, false)
	login := fs.String("login", "", "identifier")
	file := fs.String("file", "", "public key file (authorized_keys format, e.g. id_ed25519.pub)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *login == "" || *file == "" {
		return usagef("--login and --file are required")
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return pigp.WrapError(pigp.EINVALID, fmt.Sprintf("lecture de %s impossible", *file), err)
	}
	key, err := pigp.ParseSSHKey(b)
	if err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(app *App) error {
		a, err := app.DB.FindAccountByLogin(ctx, *login)
		if err != nil {
			return err
		}
		if a.FromDirectory() {
			return pigp.Errorf(pigp.EINVALID, "%s est un compte de l'annuaire : il se connecte avec l'annuaire, sans clé SSH (ses groupes sont vérifiés à chaque connexion)", a.Login)
		}
		key.AccountID = a.ID
		if err := app.DB.AddSSHKey(ctx, key, app.opAudit()...); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "clé %s ajoutée au compte %s\n", key.Fingerprint, a.Login)
		return nil
	})
}
