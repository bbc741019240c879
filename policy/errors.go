package policy

import (
	"errors"
	"strings"
)

// ErrBadPath: the request path could not be normalised (bad percent-encoding, control
// characters, invalid UTF-8, a double-encoded separator, not starting with "/"); the
// request must be denied. Select wraps it with the reason.
var ErrBadPath = errors.New("policy: path cannot be normalised")

// ErrUnknownAccessLevel: Envoy context_extensions (or Engine.Level) named an access
// level that the configuration does not define. The request must be denied; it usually
// means the Envoy configuration and this server's configuration disagree.
var ErrUnknownAccessLevel = errors.New("policy: unknown access level")

// ErrInvalidConfig is wrapped by every *ConfigError returned from New.
var ErrInvalidConfig = errors.New("policy: invalid configuration")

// ErrBadEntitlement: a string is not an AARC-G002/G069 entitlement.
var ErrBadEntitlement = errors.New("policy: not an AARC entitlement")

// Problem is one configuration error at one location, e.g.
// Path "routes[2].require.groups.match", Message "must be all, one or a positive integer".
type Problem struct {
	// Path locates the problem inside the `policy:` section (JSON/YAML key names).
	Path string
	// Message says what is wrong and what is allowed.
	Message string
}

// String formats the problem as "path: message".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ConfigError lists every problem New found in a Config. It wraps ErrInvalidConfig.
type ConfigError struct {
	// Problems are in a stable order: context_extension_key, access levels (by name),
	// reference cycles, routes, default.
	Problems []Problem
}

// Error lists all problems on one line, separated by "; ".
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("policy: invalid configuration: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }
