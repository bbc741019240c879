package config

import (
	"errors"
	"strings"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
)

func applyListen(s *envoy.Config, o Overrides) {
	if o.GRPCListen != "" {
		s.GRPCListen = o.GRPCListen
	}
	if o.HTTPListen != "" {
		s.HTTPListen = o.HTTPListen
	}
	if o.AdminListen != "" {
		s.AdminListen = o.AdminListen
	}
}

// validateServer runs envoy's validator. Its messages already carry "server.<field>".
func validateServer(s *envoy.Config) error {
	return s.Validate()
}

// validateDenials checks that log.denials and server.deny_log_level do not disagree.
func (f *File) validateDenials() error {
	if f.Log.Denials != "" && f.Server.DenyLogLevel != "" &&
		!strings.EqualFold(f.Log.Denials, f.Server.DenyLogLevel) {
		return errors.New("denials: disagrees with server.deny_log_level; set only one")
	}
	return nil
}

// ServerConfig returns the `server:` section with log.denials applied as its
// DenyLogLevel (when the server section does not set one).
func (f *File) ServerConfig() envoy.Config {
	s := f.Server
	if s.DenyLogLevel == "" && f.Log.Denials != "" {
		s.DenyLogLevel = strings.ToLower(f.Log.Denials)
	}
	return s
}
