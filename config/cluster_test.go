package config_test

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pigp/pigp/config"
)

func TestLoad_SeveralNodes(t *testing.T) {
	c, err := config.Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionLifetime.Std() != 8*time.Hour || c.DrainDelay != 0 || c.ProxyProtocol.HeaderTimeout.Std() != 5*time.Second ||
		len(c.ProxyProtocol.Trusted) != 0 || len(c.HTTPTrustedProxies) != 0 {
		t.Fatalf("defaults: %+v %v %+v %v", c.SessionLifetime, c.DrainDelay, c.ProxyProtocol, c.HTTPTrustedProxies)
	}
	path := writeFile(t, `
session_lifetime: 4h
drain_delay: 5s
http_trusted_proxies: ["10.0.0.0/8", "192.0.2.1"]
proxy_protocol:
  trusted: ["10.1.0.0/16"]
  header_timeout: 3s
`)
	c, err = config.Load(path, env(map[string]string{"PIGP_PROXY_PROTOCOL_TRUSTED": "192.0.2.10, 2001:db8::/32"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SessionLifetime.Std() != 4*time.Hour || c.DrainDelay.Std() != 5*time.Second || c.ProxyProtocol.HeaderTimeout.Std() != 3*time.Second {
		t.Fatalf("file: %+v", c)
	}
	if !reflect.DeepEqual(c.ProxyProtocol.Trusted, []string{"192.0.2.10", "2001:db8::/32"}) {
		t.Fatalf("environment did not win: %v", c.ProxyProtocol.Trusted)
	}
	p, err := config.ParsePrefixes(append(c.HTTPTrustedProxies, c.ProxyProtocol.Trusted...))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32"),
		netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("2001:db8::/32")}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("prefixes %v, want %v", p, want)
	}
	c, _ = config.Load("", env(map[string]string{"PIGP_HTTP_TRUSTED_PROXIES": "127.0.0.1", "PIGP_SESSION_LIFETIME": "2h",
		"PIGP_DRAIN_DELAY": "10s", "PIGP_PROXY_PROTOCOL_HEADER_TIMEOUT": "1s"}))
	if len(c.HTTPTrustedProxies) != 1 || c.SessionLifetime.Std() != 2*time.Hour || c.DrainDelay.Std() != 10*time.Second ||
		c.ProxyProtocol.HeaderTimeout.Std() != time.Second {
		t.Fatalf("environment: %+v", c)
	}
}

func TestValidate_SeveralNodes(t *testing.T) {
	for _, c := range []struct {
		field string
		set   func(c *config.Config)
	}{
		{"http_trusted_proxies", func(c *config.Config) { c.HTTPTrustedProxies = []string{"10.0.0.0/33"} }},
		{"http_trusted_proxies", func(c *config.Config) { c.HTTPTrustedProxies = []string{"proxy.internal"} }},
		{"proxy_protocol.trusted", func(c *config.Config) { c.ProxyProtocol.Trusted = []string{"10.0.0.1/8/2"} }},
		{"proxy_protocol.header_timeout", func(c *config.Config) { c.ProxyProtocol.HeaderTimeout = 0 }},
		{"session_lifetime", func(c *config.Config) { c.SessionLifetime = config.Duration(time.Minute) }},
		{"drain_delay", func(c *config.Config) { c.DrainDelay = config.Duration(-time.Second) }},
	} {
		cfg := config.Default()
		c.set(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v, want an error naming it", c.field, err)
		}
	}
}
