// Command pigp is the APA exchange server and its operator CLI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	_ "time/tzdata" // Europe/Paris even on machines without a zoneinfo database

	"github.com/pigp/pigp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	os.Exit(m.Run(ctx, os.Args[1:]))
}

// Main is the program, with its I/O injected so that tests can run it.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string

	args []string // the command line being run, for the audit trail
}

// command is one subcommand.
type command interface {
	Run(ctx context.Context, m *Main, args []string) error
}

var commands = map[string]command{
	"serve":       serveCommand{},
	"demo":        demoCommand{},
	"migrate":     migrateCommand{},
	"org":         orgCommand{},
	"user":        userCommand{},
	"response":    responseCommand{},
	"referentiel": referentielCommand{},
	"process":     processCommand{},
	"jobs":        jobsCommand{},
	"expire":      expireCommand{},
	"version":     versionCommand{},
	"healthcheck": healthcheckCommand{},
	"backup":      backupCommand{},
	"restore":     restoreCommand{},
	"audit":       auditCommand{},
	"ban":         banCommand{},
	"ldap":        ldapCommand{},
	"campaign":    campaignCommand{},
	"storage":     storageCommand{},
}

const usage = `pigp — serveur d'échange APA (SFTP) entre départements et DGFiP

Usage: pigp COMMAND [options]

Commands:
  serve                 run the SFTP server (and the portal when configured)
  demo                  run a throw-away server with a demo account
  migrate               apply pending database migrations
  org add|list          manage organisations (SIRET)
  user add|list|update|disable|enable|reset-password|key add
                        manage accounts
  response publish      make a file available in a SIRET's /retrait
  referentiel import|generate
                        load fiscal reference data from CSV, or generate synthetic data
  process               answer every waiting deposit now, then exit
  jobs                  list the scheduled jobs: schedule, last run, next run
  expire [--at TIME]    run the expiry jobs once as of TIME and print the counts
  audit verify|checkpoint|export
                        check the keyed audit chain, print its latest signed
                        checkpoint, or export it as CSV
  ban list|remove       list or lift the address bans (brute force)
  ldap map|map list|map remove|check
                        map directory groups to SIRETs and roles; test the directory
  healthcheck [--sftp]  exit 0 when the local node is ready (/readyz, SSH banner)
  backup --out DIR      copy the embedded database and contents, with a SHA-256 manifest
  restore --from DIR --data-dir NEW
                        restore a backup into a new data directory, checking it
  campaign list|set|remove
                        campaign windows: call files outside get E008
  storage check|migrate --to s3
                        check the content store (probe object); copy DATA_DIR/store
                        to the S3 bucket, checking every SHA-256 (resumable)
  version               print the version, the commit and the Go version

Every command accepts --config FILE (YAML); PIGP_* environment variables win
over the file. Run "pigp COMMAND -h" for a command's options.
`

// usageError is a command-line mistake: the message is followed by a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// Run runs the command in args and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(m.Stdout, usage)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(m.Stderr, "pigp: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	m.args = args
	err := cmd.Run(ctx, m, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(m.Stderr, "pigp %s: %s\n(see \"pigp %s -h\")\n", args[0], ue.msg, args[0])
		return 2
	}
	var pe *pigp.Error
	if errors.As(err, &pe) && pe.Code != pigp.EINTERNAL {
		fmt.Fprintf(m.Stderr, "pigp %s: %s\n", args[0], pe.Message)
	} else {
		fmt.Fprintf(m.Stderr, "pigp %s: %v\n", args[0], err)
	}
	return 1
}

// flagSet returns a flag set that reports errors instead of exiting.
func (m *Main) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("pigp "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

// parse parses args and refuses stray positional arguments unless allowed.
func parse(fs *flag.FlagSet, args []string, positional int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > positional {
		return usagef("unexpected argument %q", fs.Arg(positional))
	}
	return nil
}

type versionCommand struct{}

// Run prints the version, the source commit and the Go version of the
// build, one per line ("pigp 1.4.0", "commit 0123abc…", "go go1.26.10").
func (versionCommand) Run(_ context.Context, m *Main, args []string) error {
	fs := m.flagSet("version")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "pigp %s\ncommit %s\ngo %s\n", pigp.Version, pigp.BuildCommit(), runtime.Version())
	return nil
}
