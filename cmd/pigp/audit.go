package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/exchange"
)

type auditCommand struct{}

func (auditCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: verify, checkpoint or export")
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, m, args[1:])
	case "checkpoint":
		return auditCheckpoint(ctx, m, args[1:])
	case "export":
		return auditExport(ctx, m, args[1:])
	}
	return usagef("unknown subcommand %q: verify, checkpoint or export", args[0])
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// auditVerify walks the chain under the audit key, in one read snapshot,
// and checks it against the checkpoints of the checkpoint file and those
// given; any break makes the command fail.
func auditVerify(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("audit verify")
	var cf configFlags
	cf.register(fs, false)
	var given stringList
	fs.Var(&given, "checkpoint", "a checkpoint line kept outside (as printed by `pigp audit checkpoint`), or a file of them; repeatable")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	extra, err := checkpointsFrom(given)
	if err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		cps, err := readCheckpoints(a.Config.AuditCheckpointPath())
		if err != nil {
			return err
		}
		rep, err := a.DB.VerifyAudit(ctx, append(cps, extra...)...)
		if err != nil {
			return err
		}
		if !rep.OK() {
			for _, p := range rep.Problems {
				fmt.Fprintln(m.Stdout, p)
			}
			return pigp.Errorf(pigp.ECONFLICT, "journal d'audit altéré : %d anomalie(s) sur %d ligne(s)", len(rep.Problems), rep.Rows)
		}
		fmt.Fprintf(m.Stdout, "journal d'audit intègre : %d ligne(s), clé %s, %d point(s) de contrôle vérifié(s), dernier lien %s\n",
			rep.Rows, rep.KeyID, rep.Checkpoints, rep.LastHash)
		return nil
	})
}

// auditCheckpoint prints the latest checkpoint of the checkpoint file, or
// with --new seals one now, appends it and prints it.
func auditCheckpoint(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("audit checkpoint")
	var cf configFlags
	cf.register(fs, false)
	fresh := fs.Bool("new", false, "seal a checkpoint of the chain now (appended to the checkpoint file) and print it")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		if *fresh {
			c, err := a.writeCheckpoint(ctx, a.DB.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(m.Stdout, c)
			return nil
		}
		path := a.Config.AuditCheckpointPath()
		cps, err := readCheckpoints(path)
		if err != nil {
			return err
		}
		if len(cps) == 0 {
			return pigp.Errorf(pigp.ENOTFOUND, "aucun point de contrôle dans %s (le serveur en écrit selon audit_checkpoint_schedule ; `pigp audit checkpoint --new` en scelle un)", path)
		}
		fmt.Fprintln(m.Stdout, cps[len(cps)-1])
		return nil
	})
}

func auditExport(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("audit export")
	var cf configFlags
	cf.register(fs, false)
	from := fs.String("from", "", "first day or instant (2026-01-31 or RFC 3339), included")
	to := fs.String("to", "", "last day (included) or instant (excluded)")
	out := fs.String("out", "", "CSV file to write (default: standard output)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	var f pigp.AuditFilter
	var err error
	if *from != "" {
		if f.From, _, err = parseAuditTime(*from); err != nil {
			return usagef("--from: %v", err)
		}
	}
	if *to != "" {
		var day bool
		if f.To, day, err = parseAuditTime(*to); err != nil {
			return usagef("--to: %v", err)
		}
		if day {
			f.To = f.To.AddDate(0, 0, 1)
		}
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		var w io.Writer = m.Stdout
		if *out != "" {
			file, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			defer file.Close()
			w = file
		}
		out, err := exchange.NewAuditCSV(w)
		if err != nil {
			return err
		}
		if err := a.DB.EachAudit(ctx, f, out.Write); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(m.Stderr, "%d ligne(s) exportée(s)\n", out.Rows())
		return nil
	})
}

// parseAuditTime parses a day (Paris time; day reports it) or an RFC 3339 instant.
func parseAuditTime(s string) (t time.Time, day bool, err error) {
	if t, err := time.ParseInLocation("2006-01-02", s, apa.Paris); err == nil {
		return t, true, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, false, nil
	}
	return time.Time{}, false, fmt.Errorf("%q is neither a day (2006-01-02) nor an RFC 3339 time", s)
}

// operatorActions are the commands that change state: each run is an
// audit row (its arguments, who ran it, the outcome).
var operatorActions = map[string]bool{
	"org add": true, "user add": true, "user update": true, "user disable": true, "user enable": true, "user reset-password": true,
	"user key": true, "response publish": true, "referentiel import": true, "referentiel generate": true,
	"process": true, "expire": true, "ban remove": true, "ldap map": true, "backup": true, "restore": true,
	"campaign set": true, "campaign remove": true,
}

// readOnlyActions are sub-commands of operator actions that change nothing.
var readOnlyActions = map[string]bool{"ldap map list": true}

// operatorEvent returns the audit row of the command m runs when it is an
// operator action (nil otherwise), with outcome OK: the state change
// records it in its own transaction (App.opAudit), so that the change and
// its row are committed together.
func operatorEvent(m *Main) *pigp.AuditEvent {
	if len(m.args) == 0 {
		return nil
	}
	name := m.args[0]
	if len(m.args) > 1 && !strings.HasPrefix(m.args[1], "-") {
		name += " " + m.args[1]
	}
	if !operatorActions[name] {
		return nil
	}
	if len(m.args) > 2 && readOnlyActions[name+" "+m.args[2]] {
		return nil
	}
	operator := m.Getenv("SUDO_USER")
	if operator == "" {
		operator = m.Getenv("USER")
	}
	return &pigp.AuditEvent{Action: pigp.AuditOperator, Outcome: pigp.AuditOK, Protocol: pigp.ProtocolCLI,
		Object: "pigp " + strings.Join(m.args, " "), Login: flagValue(m.args, "login"), SIRET: flagValue(m.args, "siret"),
		Detail: "opérateur " + operator}
}

// opAudit returns the operator's audit row for the state change about to
// be committed, which records it in its transaction; nil when the command
// is not an operator action or the row was handed out already.
func (a *App) opAudit() []*pigp.AuditEvent {
	if a.op == nil || a.opUsed {
		return nil
	}
	a.opUsed = true
	return []*pigp.AuditEvent{a.op}
}

// finishOperator records the operator's row when no state change did: a
// failed action (outcome "echec" and the reason), or a batch action whose
// changes carry rows of their own (process, expire, referentiel
// generate). A row that cannot be recorded fails the command.
func (a *App) finishOperator(ctx context.Context, runErr error) error {
	if a.op == nil || (a.opUsed && runErr == nil) {
		return nil
	}
	e := *a.op
	e.ID, e.Time, e.PrevHash, e.Hash = 0, time.Time{}, "", ""
	if runErr != nil {
		e.Outcome = pigp.AuditFailed
		e.Detail += " : " + pigp.ErrorMessage(runErr)
	}
	if err := a.DB.Audit(ctx, &e); err != nil {
		a.Logger.Error("audit operator action", "action", e.Object, "error", err)
		return fmt.Errorf("record the operator action in the audit trail: %w", err)
	}
	return nil
}

// flagValue returns the value of --name (or -name) in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) && strings.HasPrefix(args[i], "-") {
			return args[i+1]
		}
	}
	return ""
}
