package main

import (
	"context"
	"fmt"
	"net"
	"text/tabwriter"
)

type banCommand struct{}

func (banCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: list or remove")
	}
	switch args[0] {
	case "list":
		return banList(ctx, m, args[1:])
	case "remove":
		return banRemove(ctx, m, args[1:])
	}
	return usagef("unknown subcommand %q: list or remove", args[0])
}

// banList prints the bans in force, shared by every node.
func banList(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("ban list")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		bans, err := a.DB.ListBans(ctx, a.Now())
		if err != nil {
			return err
		}
		if len(bans) == 0 {
			fmt.Fprintln(m.Stdout, "aucune adresse bloquée")
			return nil
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADRESSE\tDEPUIS\tJUSQU'AU\tMOTIF")
		for _, b := range bans {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.IP, b.BannedAt.Format("2006-01-02 15:04:05Z"), b.Until.Format("2006-01-02 15:04:05Z"), b.Reason)
		}
		return tw.Flush()
	})
}

// banRemove lifts the ban of an address (an audited operator action).
func banRemove(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("ban remove")
	var cf configFlags
	cf.register(fs, false)
	ip := fs.String("ip", "", "banned address")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if net.ParseIP(*ip) == nil {
		return usagef("--ip must be an IP address")
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		if err := a.DB.DeleteBan(ctx, *ip, a.opAudit()...); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "adresse %s débloquée\n", *ip)
		return nil
	})
}
