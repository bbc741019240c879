package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
)

// Environment variables read by every command that loads the configuration.
const (
	envConfig  = "FLAAT_EXTAUTHZ_CONFIG"
	envIssuers = "FLAAT_EXTAUTHZ_ISSUERS"
)

// configFlags are the flags that choose and override the configuration.
type configFlags struct {
	path    string
	issuers []string
	o       config.Overrides
}

// register adds --config and --issuer to fs; withListen adds the listener and log flags.
func (c *configFlags) register(fs *pflag.FlagSet, withListen bool) {
	fs.StringVarP(&c.path, "config", "c", "",
		"configuration file (YAML or JSON); default: $"+envConfig+", else the embedded default (see README)")
	fs.StringArrayVar(&c.issuers, "issuer", nil,
		"trusted issuer URL; repeat for several. Replaces the file's issuers: list (default: $"+envIssuers+", comma-separated)")
	if withListen {
		fs.StringVar(&c.o.GRPCListen, "grpc-listen", "", "ext_authz gRPC listen address, overrides server.grpc_listen (default \":9001\")")
		fs.StringVar(&c.o.HTTPListen, "http-listen", "", "HTTP auth-request listen address, overrides server.http_listen (default \":9002\")")
		fs.StringVar(&c.o.AdminListen, "admin-listen", "", "admin listen address (/metrics, /healthz, /readyz), overrides server.admin_listen (default \":9090\")")
		fs.StringVar(&c.o.LogLevel, "log-level", "", "log level: debug, info, warn or error; overrides log.level (default info)")
		fs.StringVar(&c.o.LogFormat, "log-format", "", "log format: json or text; overrides log.format (default json)")
	}
}

// source names where the configuration comes from, for messages.
func (c *configFlags) source(getenv func(string) string) string {
	if p := c.file(getenv); p != "" {
		return p
	}
	return "embedded default"
}

func (c *configFlags) file(getenv func(string) string) string {
	if c.path != "" {
		return c.path
	}
	return getenv(envConfig)
}

// load reads the file (or the embedded default), applies environment and flag overrides
// and validates the result, reporting every problem at once.
func (c *configFlags) load(getenv func(string) string) (*config.File, error) {
	f, err := c.loadUnvalidated(getenv)
	if err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.source(getenv), err)
	}
	return f, nil
}

func (c *configFlags) loadUnvalidated(getenv func(string) string) (*config.File, error) {
	var f *config.File
	if p := c.file(getenv); p != "" {
		var err error
		if f, err = config.Load(p); err != nil {
			return nil, err
		}
	} else {
		f = config.Default()
	}
	o := c.o
	switch {
	case len(c.issuers) > 0:
		o.Issuers = c.issuers
	default:
		o.Issuers = config.SplitList(getenv(envIssuers))
	}
	o.Apply(f)
	return f, nil
}
