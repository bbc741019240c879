package policy

// Result is the verdict of evaluating a requirement on a claims document.
type Result struct {
	// Allowed is true when the requirement is met.
	Allowed bool
	// Reason is one line a human can act on, e.g.
	// `groups: 1 of 2 required values in claim "groups" (missing: "ops")`.
	// It names claims and required values only, never other token contents.
	Reason string
	// Details holds one line per evaluated sub-requirement. The slice may be shared
	// with other Results of the same requirement (texts of met requirements are
	// prepared once): read it, copy it, append to it (its capacity is its length, so an
	// append copies), but do not assign to its elements.
	Details []string
	// Scopes lists required scope values when a scope requirement failed (for
	// WWW-Authenticate scope=…).
	Scopes []string
}
