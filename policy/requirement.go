package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Requirement is the declarative (YAML/JSON) form of one requirement. Exactly one form
// must be set per Requirement; combine forms with AllOf, AnyOf or NOf. In YAML a bare
// string is shorthand for a reference to an access level (`require: admin` is
// `require: {level: admin}`).
//
// There is deliberately no `not`: a requirement that is met by the absence of a claim
// turns every token that lacks the claim (for whatever reason) into an allow.
type Requirement struct {
	// Authenticated: the claims `sub` and `iss` are present and non-empty (flaat's
	// login_required / is_authenticated). `authenticated: false` is a configuration
	// error: use a public route for "no token needed".
	Authenticated bool `json:"authenticated,omitempty"`
	// Claim: the named claim has at least one non-empty value.
	Claim *ClaimRequirement `json:"claim,omitempty"`
	// Groups: flaat's group_required. Default claim "groups".
	Groups *ValuesRequirement `json:"groups,omitempty"`
	// Entitlements: like Groups, but values are matched as AARC-G002/G069 entitlement
	// URNs. Default claim "eduperson_entitlement".
	Entitlements *ValuesRequirement `json:"entitlements,omitempty"`
	// Issuer: the `iss` claim equals one of these (exact string comparison).
	Issuer StringList `json:"issuer,omitempty"`
	// Subject: the `sub` claim equals one of these (exact). A subject is only unique per
	// issuer: with more than one trusted OP, combine it with Issuer in AllOf.
	Subject StringList `json:"subject,omitempty"`
	// Scope: the space-separated `scope` claim (or, when absent, the `scp` claim, string
	// or list) contains every one of these.
	Scope StringList `json:"scope,omitempty"`
	// Audience: the `aud` claim (string or list) contains at least one of these.
	Audience StringList `json:"audience,omitempty"`
	// AllOf is met when every listed requirement is met. An empty list is never met.
	AllOf []Requirement `json:"all_of,omitempty"`
	// AnyOf is met when at least one listed requirement is met. An empty list is never met.
	AnyOf []Requirement `json:"any_of,omitempty"`
	// NOf is met when at least Min of its requirements are met.
	NOf *NOfRequirement `json:"n_of,omitempty"`
	// Level refers to a named access level (Config.AccessLevels).
	Level string `json:"level,omitempty"`

	// problems found while decoding JSON; New reports them with their location so that
	// every problem of a configuration is reported at once.
	problems []Problem
	// set records which keys appeared in JSON (so that `authenticated: false` and
	// `issuer: []` can be told from absent keys).
	set map[string]bool
}

// ClaimRequirement requires a claim to have a value. In YAML a bare string is shorthand
// for the claim name (`claim: email`).
type ClaimRequirement struct {
	// Name is the claim: the literal name first (claims may be URLs), then a dotted
	// path (`realm_access.roles`). Required.
	Name string `json:"name"`
	// Separator, when set, splits string values (e.g. "," for "a,b"; " " splits on any
	// run of white space). Default: strings are never split.
	Separator string `json:"separator,omitempty"`
}

// ValuesRequirement is the shape of the `groups` and `entitlements` forms: how many of
// Values the claim must hold.
type ValuesRequirement struct {
	// Claim names the claim holding the user's values (literal name first, then dotted
	// path). Default "groups" (Groups) or "eduperson_entitlement" (Entitlements); other
	// common choices: "wlcg.groups", "eduperson_scoped_affiliation", "roles",
	// "realm_access.roles".
	Claim string `json:"claim,omitempty"`
	// Values are the required values; at least one. Duplicates count once.
	Values StringList `json:"values"`
	// Match is how many distinct Values the user must hold: all (default), one, or N.
	Match Match `json:"match,omitempty"`
	// Separator, when set, splits string claim values (e.g. "," or " "). Default: none.
	Separator string `json:"separator,omitempty"`
}

// UnmarshalJSON decodes strictly (unknown keys are errors) and locates a problem in
// Values ("values[2]").
func (v *ValuesRequirement) UnmarshalJSON(b []byte) error {
	type plain ValuesRequirement
	var p plain
	if err := decodeStrict(b, &p); err != nil {
		var le *locatedError
		if errors.As(err, &le) { // only Values can produce one
			return &locatedError{Path: "values" + le.Path, Msg: le.Msg}
		}
		return err
	}
	*v = ValuesRequirement(p)
	return nil
}

// NOfRequirement is met when at least Min of Of are met: `n_of: {min: 2, of: [...]}`.
//
// The count key is `min`. Its old name `n` is still accepted when quoted (`"n": 2`, or
// in JSON), but a bare `n:` in YAML is the boolean false under YAML 1.1 (which the
// configuration loader follows); that key is refused with a hint to write `min:`.
type NOfRequirement struct {
	// Min is at least 1. Min larger than len(Of) can never be met.
	Min int `json:"min"`
	// Of lists the candidate requirements. An empty list is never met.
	Of []Requirement `json:"of"`

	// key is the name the count was given under ("min" or "n"), for error locations.
	key string
}

// UnmarshalJSON accepts {min|"n": N, of: [...]}, rejecting unknown keys, both count
// keys at once, and the key "false" (a bare YAML 1.1 `n`) with a hint.
func (n *NOfRequirement) UnmarshalJSON(b []byte) error {
	*n = NOfRequirement{}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return errors.New("must be a mapping {min: N, of: [...]}")
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		switch k {
		case "min", "n":
			if n.key != "" {
				return &locatedError{Path: k, Msg: `give the count once: "min" (its old name "n" is the same key)`}
			}
			n.key = k
			if err := decodeStrict(v, &n.Min); err != nil {
				p := decodeProblem(k, err)
				return &locatedError{Path: p.Path, Msg: p.Message}
			}
		case "of":
			if err := decodeStrict(v, &n.Of); err != nil {
				p := decodeProblem(k, err)
				return &locatedError{Path: p.Path, Msg: p.Message}
			}
		case "false":
			return &locatedError{Path: k, Msg: `YAML 1.1 reads the bare key n as the boolean false: write min: (or quote "n")`}
		default:
			return &locatedError{Path: k, Msg: "unknown field (known: min, of)"}
		}
	}
	if n.key == "" {
		n.key = "min"
	}
	return nil
}

// locatedError is a decoding problem below the value being decoded; Path is relative
// to it ("min", "[2]").
type locatedError struct{ Path, Msg string }

func (e *locatedError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	if e.Path[0] == '[' {
		return "element " + e.Path + ": " + e.Msg
	}
	return e.Path + ": " + e.Msg
}

// isBool reports whether the JSON value b (trimmed) is true or false.
func isBool(b []byte) bool { return string(b) == "true" || string(b) == "false" }

// yaml11Hint explains a boolean where a string was expected; under `groups` the
// located problem says "quote the group name".
const yaml11Hint = "YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the value"

// Match says how many distinct required values must be held: "all" (the default when
// empty), "one", or a positive integer N ("2"). In YAML it is written `match: all`,
// `match: one` or `match: 2`. N larger than the number of distinct values can never be
// met; 0 or a negative number is a configuration error.
type Match string

const (
	// MatchAll requires every distinct value.
	MatchAll Match = "all"
	// MatchOne requires at least one value.
	MatchOne Match = "one"
)

// MatchAtLeast returns the Match requiring at least n distinct values.
func MatchAtLeast(n int) Match { return Match(strconv.Itoa(n)) }

// UnmarshalJSON accepts a string or a number; anything else is kept as written so that
// New can report it with its location.
func (m *Match) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*m = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("policy: match: %w", err)
		}
		*m = Match(s)
		return nil
	}
	*m = Match(b)
	return nil
}

// MarshalJSON writes a number for N and a string otherwise.
func (m Match) MarshalJSON() ([]byte, error) {
	if n, err := strconv.Atoi(string(m)); err == nil {
		return []byte(strconv.Itoa(n)), nil
	}
	return json.Marshal(string(m))
}

// count returns how many of total distinct values must be held, or an error message.
func (m Match) count(total int) (int, string) {
	switch strings.ToLower(strings.TrimSpace(string(m))) {
	case "", "all":
		return total, ""
	case "one":
		return 1, ""
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(m)))
	if err != nil || n < 1 {
		return 0, "must be all, one or a positive integer"
	}
	return n, ""
}

// StringList is a list of strings that may be written as a single string in YAML/JSON
// (`issuer: https://op.example.org` or `issuer: [a, b]`).
type StringList []string

// UnmarshalJSON accepts a string or a list of strings.
func (l *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	if isBool(b) {
		return &locatedError{Msg: "got boolean " + string(b) + " — " + yaml11Hint}
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	list := make([]string, len(raw))
	for i, v := range raw {
		v = bytes.TrimSpace(v)
		if isBool(v) {
			return &locatedError{Path: fmt.Sprintf("[%d]", i), Msg: "got boolean " + string(v) + " — " + yaml11Hint}
		}
		if err := json.Unmarshal(v, &list[i]); err != nil {
			return errors.New("must be a string or a list of strings")
		}
	}
	*l = list
	return nil
}

// UnmarshalJSON accepts a claim name or an object {name, separator}.
func (c *ClaimRequirement) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if isBool(b) {
		return &locatedError{Msg: "got boolean " + string(b) + " — " + yaml11Hint}
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = ClaimRequirement{Name: s}
		return nil
	}
	type plain ClaimRequirement
	var p plain
	if err := decodeStrict(b, &p); err != nil {
		return err
	}
	*c = ClaimRequirement(p)
	return nil
}

// requirementKeys are the keys of Requirement, in the order they are documented.
var requirementKeys = []string{
	"authenticated", "claim", "groups", "entitlements", "issuer", "subject", "scope",
	"audience", "all_of", "any_of", "n_of", "level",
}

// UnmarshalJSON accepts an object with exactly one requirement form, or a string naming
// an access level. Unknown keys and malformed values do not abort decoding: they are
// recorded and reported by New together with every other problem, with their location.
func (r *Requirement) UnmarshalJSON(b []byte) error {
	*r = Requirement{}
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			r.problems = append(r.problems, Problem{Message: "malformed string"})
			return nil
		}
		r.Level = s
		r.set = map[string]bool{"level": true}
		return nil
	}
	if isBool(b) {
		r.problems = append(r.problems, Problem{Message: "got boolean " + string(b) + " — " + strings.TrimSuffix(yaml11Hint, "value") + "access level name"})
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		r.problems = append(r.problems, Problem{Message: "must be a mapping with one requirement form or the name of an access level"})
		return nil
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	r.set = make(map[string]bool, len(raw))
	for _, k := range keys {
		v := raw[k]
		var target any
		switch k {
		case "authenticated":
			target = &r.Authenticated
		case "claim":
			target = &r.Claim
		case "groups":
			target = &r.Groups
		case "entitlements":
			target = &r.Entitlements
		case "issuer":
			target = &r.Issuer
		case "subject":
			target = &r.Subject
		case "scope":
			target = &r.Scope
		case "audience":
			target = &r.Audience
		case "all_of":
			target = &r.AllOf
		case "any_of":
			target = &r.AnyOf
		case "n_of":
			target = &r.NOf
		case "level":
			target = &r.Level
		default:
			r.problems = append(r.problems, Problem{Path: k, Message: "unknown requirement form (known: " + strings.Join(requirementKeys, ", ") + ")"})
			continue
		}
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			r.problems = append(r.problems, Problem{Path: k, Message: "must not be empty (null)"})
			continue
		}
		r.set[k] = true
		if err := decodeStrict(v, target); err != nil {
			r.problems = append(r.problems, decodeProblem(k, err))
		}
	}
	return nil
}

// decodeStrict decodes one JSON value, rejecting unknown object keys.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// decodeProblem turns an encoding/json error into a located Problem.
func decodeProblem(path string, err error) Problem {
	var le *locatedError
	if errors.As(err, &le) {
		p := path
		switch {
		case le.Path == "":
		case le.Path[0] == '[':
			p += le.Path
		default:
			p += "." + le.Path
		}
		msg := le.Msg
		if strings.HasPrefix(p, "groups") {
			msg = strings.Replace(msg, yaml11Hint, strings.TrimSuffix(yaml11Hint, "value")+"group name", 1)
		}
		return Problem{Path: p, Message: msg}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		p := path
		if te.Field != "" {
			p = path + "." + te.Field
		}
		return Problem{Path: p, Message: fmt.Sprintf("must be %s, not a JSON %s", goTypeName(te.Type.String()), te.Value)}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return Problem{Path: path + "." + strings.Trim(f, `"`), Message: "unknown field"}
	}
	return Problem{Path: path, Message: strings.TrimPrefix(msg, "json: ")}
}

// goTypeName describes a Go type in configuration terms.
func goTypeName(t string) string {
	switch {
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "policy.") || strings.HasPrefix(t, "*policy.") || strings.HasPrefix(t, "map"):
		return "a mapping"
	}
	return "a " + t
}

// forms returns the names of the forms set in r (keys as written in YAML/JSON).
func (r *Requirement) forms() []string {
	var f []string
	has := func(k string, ok bool) {
		if ok || r.set[k] {
			f = append(f, k)
		}
	}
	has("authenticated", r.Authenticated)
	has("claim", r.Claim != nil)
	has("groups", r.Groups != nil)
	has("entitlements", r.Entitlements != nil)
	has("issuer", r.Issuer != nil)
	has("subject", r.Subject != nil)
	has("scope", r.Scope != nil)
	has("audience", r.Audience != nil)
	has("all_of", r.AllOf != nil)
	has("any_of", r.AnyOf != nil)
	has("n_of", r.NOf != nil)
	has("level", r.Level != "")
	return f
}
