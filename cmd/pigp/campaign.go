package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/pigp/pigp"
)

type campaignCommand struct{}

func (campaignCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: list, set or remove")
	}
	switch args[0] {
	case "list":
		return campaignList(ctx, m, args[1:])
	case "set":
		return campaignSet(ctx, m, args[1:])
	case "remove":
		return campaignRemove(ctx, m, args[1:])
	}
	return usagef("unknown subcommand %q: list, set or remove", args[0])
}

// campaigns returns the campaign windows in force: the configuration
// file's, and the database's for the other years.
func (a *App) campaigns(ctx context.Context) ([]pigp.Campaign, error) {
	configured, err := a.Config.CampaignWindows()
	if err != nil {
		return nil, err
	}
	stored, err := a.DB.ListCampaigns(ctx)
	if err != nil {
		return nil, err
	}
	return pigp.MergeCampaigns(configured, stored), nil
}

// campaignList prints the windows in force, where each comes from and
// whether it is open now.
func campaignList(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("campaign list")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		cs, err := a.campaigns(ctx)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			fmt.Fprintln(m.Stdout, "aucune période de campagne : toutes les campagnes sont ouvertes (pas de code E008)")
			return nil
		}
		now := a.Now()
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CAMPAGNE\tOUVERTURE\tCLÔTURE (INCLUSE)\tSOURCE\tÉTAT")
		for _, c := range cs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", c.Year, c.Opens.Format(time.DateOnly), c.Closes.Format(time.DateOnly), c.Source, c.State(now))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(m.Stdout, "Une campagne sans période est fermée (E008) tant qu'au moins une période est définie.")
		return nil
	})
}

// campaignSet records a window in the database (an audited operator
// action); a year the configuration file sets is refused.
func campaignSet(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("campaign set")
	var cf configFlags
	cf.register(fs, false)
	year := fs.Int("year", 0, "campaign (the year of the call files' names), e.g. 2026")
	opens := fs.String("opens", "", "first day, 2006-01-02 (Paris time)")
	closes := fs.String("closes", "", "last day, included, 2006-01-02 (Paris time)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *year == 0 || *opens == "" || *closes == "" {
		return usagef("--year, --opens and --closes are required")
	}
	c, err := pigp.NewCampaign(*year, *opens, *closes)
	if err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		if err := a.checkNotConfigured(*year); err != nil {
			return err
		}
		if err := a.DB.SetCampaign(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "campagne %s (%s aujourd'hui)\n", c, c.State(a.Now()))
		return nil
	})
}

// campaignRemove deletes a window from the database.
func campaignRemove(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("campaign remove")
	var cf configFlags
	cf.register(fs, false)
	year := fs.Int("year", 0, "campaign whose window to remove")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *year == 0 {
		return usagef("--year is required")
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		if err := a.checkNotConfigured(*year); err != nil {
			return err
		}
		if err := a.DB.DeleteCampaign(ctx, *year); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "période de la campagne %d supprimée\n", *year)
		return nil
	})
}

// checkNotConfigured refuses to change a year the configuration file sets:
// the file would win anyway.
func (a *App) checkNotConfigured(year int) error {
	configured, err := a.Config.CampaignWindows()
	if err != nil {
		return err
	}
	for _, c := range configured {
		if c.Year == year {
			return pigp.Errorf(pigp.ECONFLICT, "la campagne %d est fixée par le fichier de configuration (campaigns) : modifiez-la là", year)
		}
	}
	return nil
}
