// Package policy decides whether a claims document meets a requirement, and which
// requirement applies to a request (route table, Envoy context_extensions). It is pure:
// standard library only, no I/O, no knowledge of Envoy or of token verification.
package policy

import "errors"

// Config is the `policy:` section of the configuration file (JSON tags; YAML is
// converted to JSON first). STUB: the policy issue fills in the requirement forms.
type Config struct {
	// AccessLevels are named requirements that routes and other requirements refer to.
	AccessLevels map[string]Requirement `json:"access_levels,omitempty"`
	// Routes is the route table; the first match wins.
	Routes []Route `json:"routes,omitempty"`
	// Default applies when no route matches. nil: deny.
	Default *Requirement `json:"default,omitempty"`
	// ContextExtensionKey names the Envoy context_extensions key whose value selects an
	// access level by name, overriding the route table. Default "flaat_policy".
	ContextExtensionKey string `json:"context_extension_key,omitempty"`
}

// Requirement is the declarative (YAML/JSON) form of a requirement. STUB.
type Requirement struct {
	Authenticated bool `json:"authenticated,omitempty"`
}

// Route is one entry of the route table. STUB.
type Route struct {
	Name    string       `json:"name,omitempty"`
	Public  bool         `json:"public,omitempty"`
	Require *Requirement `json:"require,omitempty"`
}

// Request is what route selection looks at.
type Request struct {
	Method            string
	Host              string
	Path              string // as sent: may carry a query and percent-encoding
	ContextExtensions map[string]string
}

// Engine is a compiled, validated Config. It is safe for concurrent use.
type Engine struct{}

// New validates cfg, reporting every problem at once, and compiles it.
func New(cfg Config) (*Engine, error) { return &Engine{}, nil }

// Selection is the route or policy chosen for a request.
type Selection struct {
	// Name is the route name, or the access level named by context_extensions.
	Name string
	// Public routes need no token.
	Public bool
}

// ErrBadPath: the request path could not be normalised; the request must be denied.
var ErrBadPath = errors.New("policy: path cannot be normalised")

// Select picks the requirement for r. STUB: always the deny-all default.
func (e *Engine) Select(r Request) (Selection, error) { return Selection{Name: "default"}, nil }

// Evaluate checks claims against the selected requirement. STUB: denies.
func (s Selection) Evaluate(claims map[string]any) Result {
	return Result{Reason: "policy: not implemented"}
}
