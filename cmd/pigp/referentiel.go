package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/fiscal"
)

type referentielCommand struct{}

func (referentielCommand) Run(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: import or generate")
	}
	switch args[0] {
	case "import":
		return referentielImport(ctx, m, args[1:])
	case "generate":
		return referentielGenerate(ctx, m, args[1:])
	}
	return usagef("unknown subcommand %q: import or generate", args[0])
}

func referentielImport(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("referentiel import")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: pigp referentiel import FILE.csv")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return pigp.WrapError(pigp.EINVALID, fmt.Sprintf("lecture de %s impossible", fs.Arg(0)), err)
	}
	defer f.Close()
	return withApp(ctx, m, &cf, func(a *App) error {
		n, err := importReferentiel(ctx, m, a, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "%d déclarants et %d montants importés depuis %s\n", n.persons, n.resources, fs.Arg(0))
		return nil
	})
}

type importCounts struct{ persons, resources int }

// importReferentiel reads a reference-data file, showing a progress bar on
// a terminal, and stores it all or nothing.
func importReferentiel(ctx context.Context, m *Main, a *App, f *os.File) (importCounts, error) {
	var progress func(int64)
	if out, ok := m.Stderr.(*os.File); ok && term.IsTerminal(int(out.Fd())) {
		size := int64(-1)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(out), progressbar.OptionSetDescription("lecture"),
			progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		progress = func(n int64) { bar.Set64(n) }
		defer bar.Finish()
	}
	data, err := fiscal.ReadCSV(bufio.NewReaderSize(f, 1<<20), progress)
	if err != nil {
		return importCounts{}, pigp.WrapError(pigp.EINVALID, "fichier refusé, rien n'a été importé : "+err.Error(), err)
	}
	if err := a.DB.ImportReferentiel(ctx, data.Persons, data.Resources, a.opAudit()...); err != nil {
		return importCounts{}, err
	}
	return importCounts{len(data.Persons), len(data.Resources)}, nil
}

func referentielGenerate(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("referentiel generate")
	count := fs.Int("count", 1000, "number of declarants")
	seed := fs.Uint64("seed", 1, "random seed (the same seed gives the same file)")
	year := fs.Int("year", time.Now().In(apa.Paris).Year()-1, "income year (année des revenus)")
	out := fs.String("out", "", "write to this file instead of standard output")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *count <= 0 {
		return usagef("--count must be positive")
	}
	var w io.Writer = m.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	n, err := fiscal.Generate(bw, fiscal.GenerateOptions{Count: *count, Seed: *seed, IncomeYear: *year})
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if *out != "" {
		fmt.Fprintf(m.Stderr, "%d déclarants écrits dans %s\n", n, *out)
	}
	return nil
}
