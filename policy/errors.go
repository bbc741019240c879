package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadPath: the request path could not be normalised (bad percent-encoding, control
// characters, invalid UTF-8, a double-encoded separator, not starting with "/"); the
// request must be denied. Select wraps it with the reason.
var ErrBadPath = errors.New("policy: path cannot be normalised")

// ErrAmbiguousPath: the readings of the request path select routes with different
// requirements; the request must be denied (Select returns an *AmbiguousPathError).
var ErrAmbiguousPath = errors.New("policy: ambiguous request path")

// PathReading is one reading of an ambiguous path and the route it selects.
type PathReading struct {
	// Path is the path as read (decoded segments; "%2F" for a "/" inside a segment),
	// lower-cased in the CaseFolded reading.
	Path string
	// Route is the route name, or "default".
	Route string
	// Case is how routes compared the path's case: "" as configured (case_insensitive
	// routes ignore it, the others do not), CaseSensitive or CaseFolded.
	Case string
}

// Values of PathReading.Case.
const (
	// CaseSensitive: every route compared case, case_insensitive routes too.
	CaseSensitive = "case-sensitive"
	// CaseFolded: every route ignored ASCII case.
	CaseFolded = "case-folded"
)

// describe formats the reading for an error message.
func (r PathReading) describe() string {
	s := strconv.Quote(short(r.Path))
	if r.Case != "" {
		s += " (" + r.Case + ")"
	}
	return s
}

// AmbiguousPathError says which readings of a path disagree. It wraps ErrAmbiguousPath.
type AmbiguousPathError struct {
	// Path is the request path as sent.
	Path string
	// Readings are the readings looked at, the canonical one first and the first one
	// that disagrees with it last.
	Readings []PathReading
}

// Error names the two readings that disagree.
func (e *AmbiguousPathError) Error() string {
	if len(e.Readings) < 2 {
		return ErrAmbiguousPath.Error()
	}
	a, b := e.Readings[0], e.Readings[len(e.Readings)-1]
	return fmt.Sprintf("policy: ambiguous request path: read as %s it selects route %q, read as %s route %q", a.describe(), a.Route, b.describe(), b.Route)
}

// short caps a path quoted in an error message (they end up in logs).
func short(p string) string {
	const max = 256
	if len(p) <= max {
		return p
	}
	return p[:max] + "…"
}

// Unwrap returns ErrAmbiguousPath.
func (e *AmbiguousPathError) Unwrap() error { return ErrAmbiguousPath }

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
