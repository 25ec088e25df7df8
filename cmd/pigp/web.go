package main

import (
	"context"

	"github.com/pigp/pigp/apa"
	"github.com/pigp/pigp/config"
	"github.com/pigp/pigp/docs"
	"github.com/pigp/pigp/web"
)

// newWeb builds the portal from the configuration; the cahier des charges
// and the XSDs are embedded in the binary.
func (a *App) newWeb() (*web.Server, error) {
	c := a.Config
	trusted, err := config.ParsePrefixes(c.HTTPTrustedProxies)
	if err != nil {
		return nil, err
	}
	srv := &web.Server{
		Config: web.Config{
			Addr:                   c.HTTPListen,
			TLSCertFile:            c.TLSCert,
			TLSKeyFile:             c.TLSKey,
			SessionIdle:            c.SessionIdle.Std(),
			SessionMax:             c.SessionLifetime.Std(),
			TrustedProxies:         trusted,
			MaxUploadSize:          int64(c.MaxUploadSize),
			Retention:              c.Retention.Std(),
			HistoryMonths:          c.HistoryMonths,
			PasswordValidityMonths: c.PasswordValidityMonths,
			Schemas:                apa.Schemas(),
			Docs:                   docs.FS,
			Now:                    a.Exchange.Now,
			ShutdownTimeout:        c.ShutdownTimeout.Std(),
			MaxSessionsPerAccount:  c.Limits.MaxSessionsPerAccount,
		},
		Exchange: a.Exchange,
		History:  a.DB,
		DB:       a.DB,
		Sessions: a.DB,
		Space:    a.Exchange,
		Contents: a.Blobs,
		Logger:   a.Logger.With("component", "web"),
	}
	if a.Directory != nil { // never a typed nil in the interface
		srv.Directory = a.Directory
	}
	return srv, nil
}

// StartWeb starts the portal on the configured HTTP address; an empty
// address disables it.
func (a *App) StartWeb() error {
	if a.Config.HTTPListen == "" || a.Config.HTTPListen == "off" {
		a.Logger.Info("portal disabled (empty http_listen)")
		return nil
	}
	srv, err := a.newWeb()
	if err != nil {
		return err
	}
	if err := srv.Open(); err != nil {
		return err
	}
	a.Web = srv
	return nil
}

// CloseWeb stops the portal, letting requests in flight end within ctx.
func (a *App) CloseWeb(ctx context.Context) error {
	if a.Web == nil {
		return nil
	}
	err := a.Web.Close(ctx)
	a.Web = nil
	return err
}
