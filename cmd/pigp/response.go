package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pigp/pigp"
)

type responseCommand struct{}

func (responseCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 || args[0] != "publish" {
		return usagef("usage: pigp response publish --siret S [--report] FILE")
	}
	fs := m.flagSet("response publish")
	var cf configFlags
	cf.register(fs, false)
	siret := fs.String("siret", "", "SIRET whose /retrait receives the file")
	name := fs.String("name", "", "name in /retrait (default: the file's base name)")
	report := fs.Bool("report", false, "the file is a rejection report (Compte rendu de rejet APA)")
	if err := parse(fs, args[1:], 1); err != nil {
		return err
	}
	if *siret == "" || fs.NArg() != 1 {
		return usagef("--siret and FILE are required")
	}
	path := fs.Arg(0)
	if *name == "" {
		*name = filepath.Base(path)
	}
	docType := pigp.DocResponse
	if *report {
		docType = pigp.DocReport
	}
	f, err := os.Open(path)
	if err != nil {
		return pigp.WrapError(pigp.EINVALID, fmt.Sprintf("lecture de %s impossible", path), err)
	}
	defer f.Close()
	return withApp(ctx, m, &cf, func(app *App) error {
		if _, err := app.DB.FindOrganisation(ctx, *siret); err != nil {
			return err
		}
		r, err := app.Exchange.Publish(ctx, *siret, *name, docType, "", f, app.opAudit()...)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "%s publié dans /retrait du SIRET %s (%d octets, sha256 %s), disponible jusqu'au %s\n",
			r.Name, r.SIRET, r.Size, r.SHA256, r.ExpiresAt.Format("2006-01-02 15:04"))
		return nil
	})
}
