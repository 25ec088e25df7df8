package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/pigp/pigp"
)

type orgCommand struct{}

func (orgCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: add or list")
	}
	switch args[0] {
	case "add":
		return orgAdd(ctx, m, args[1:])
	case "list":
		return orgList(ctx, m, args[1:])
	}
	return usagef("unknown subcommand %q: add or list", args[0])
}

func orgAdd(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("org add")
	var cf configFlags
	cf.register(fs, false)
	siret := fs.String("siret", "", "SIRET (14 digits, Luhn-checked)")
	name := fs.String("name", "", "organisation name")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *siret == "" || *name == "" {
		return usagef("--siret and --name are required")
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		o := &pigp.Organisation{SIRET: *siret, Name: *name}
		if err := a.DB.CreateOrganisation(ctx, o, a.opAudit()...); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "organisation %s créée : %s\n", o.SIRET, o.Name)
		return nil
	})
}

func orgList(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("org list")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		orgs, err := a.DB.ListOrganisations(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SIRET\tNOM\tCRÉÉE LE")
		for _, o := range orgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", o.SIRET, o.Name, o.CreatedAt.Format("2006-01-02"))
		}
		return tw.Flush()
	})
}
