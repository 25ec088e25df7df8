package main

import (
	"context"
	"fmt"
)

type processCommand struct{}

func (processCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("process")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	return withApp(ctx, m, &cf, func(a *App) error {
		s, err := a.Process.Run(ctx)
		fmt.Fprintf(m.Stdout, "%d dépôt(s) traité(s), %d rejeté(s), %d en échec ; %d demande(s)\n",
			s.Processed, s.Rejected, s.Failed, s.Demandes)
		if err != nil {
			return err
		}
		if s.Failed > 0 {
			return fmt.Errorf("%d dépôt(s) en échec : voir les journaux", s.Failed)
		}
		return nil
	})
}
