package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pigp/pigp/store"
)

type migrateCommand struct{}

func (migrateCommand) Run(ctx context.Context, m *Main, args []string) error {
	fs := m.flagSet("migrate")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.load(m)
	if err != nil {
		return err
	}
	dialect, dsn := c.Database()
	db, err := store.Open(ctx, dialect, dsn, newLogger(c, io.Discard))
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(m.Stdout, "schema up to date (version %d, %s)\n", v, dialect)
	} else {
		fmt.Fprintf(m.Stdout, "applied migrations %v; schema at version %d (%s)\n", applied, v, dialect)
	}
	return nil
}
