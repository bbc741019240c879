package load

import (
	"fmt"
	"strings"
)

// The identity-size scenarios (issue 16): real research-infrastructure identities hold
// hundreds of entitlements and groups, and their tokens are large. Each scenario is a
// claims set and, where the requirement differs, an edit of FlaatConfig's document; the
// in-process benchmarks (bench/) and the load benchmark use the same ones.

// EntitlementRequirement is the required entitlement of the entitlement scenario.
const EntitlementRequirement = "urn:geant:example.org:group:bench-users"

// ManyEntitlements returns Claims(i) holding n AARC entitlements (n >= 1): n-1 that do
// not meet EntitlementRequirement (other groups, subgroups and roles of other
// namespaces) and, last, one that does (a role in a subgroup of it). With n = 200 the
// token is about 18 KB, as the one measured in issue 16.
func ManyEntitlements(i, n int) map[string]any {
	c := Claims(i)
	ents := make([]string, 0, n)
	for k := range n - 1 {
		ents = append(ents, fmt.Sprintf("urn:geant:vo%d.example.org:group:project-%d:sub-%d:role=member", k%23, k, k%7))
	}
	ents = append(ents, EntitlementRequirement+":sub-1:role=member#aai.example.org")
	c["eduperson_entitlement"] = ents
	return c
}

// WithEntitlementRequirement edits a FlaatConfig document so that the "member" access
// level (the request's route) requires EntitlementRequirement instead of a group.
func WithEntitlementRequirement(doc map[string]any) {
	LargeTokens(doc)
	levels := doc["policy"].(map[string]any)["access_levels"].(map[string]any)
	levels["member"] = map[string]any{"entitlements": map[string]any{"values": []string{EntitlementRequirement}, "match": "one"}}
}

// ManyGroups returns Claims(i) holding n groups (n >= 1), the required "bench-users"
// last. With n = 1 000 the token is about 11 KB, as the one measured in issue 16.
func ManyGroups(i, n int) map[string]any {
	c := Claims(i)
	groups := make([]string, 0, n)
	for k := range n - 1 {
		groups = append(groups, fmt.Sprintf("g%d", k))
	}
	c["groups"] = append(groups, "bench-users")
	return c
}

// Padded returns Claims(i) with an extra claim that no policy reads ("ext_profile"),
// sized so that the claims JSON is about size bytes (a token of about 4/3 of that
// plus header and signature).
func Padded(i, size int) map[string]any {
	c := Claims(i)
	var b strings.Builder
	for k := 0; b.Len() < size; k++ {
		fmt.Fprintf(&b, "attribute-%d=value-%d;", k, k)
	}
	c["ext_profile"] = b.String()
	return c
}

// WithRoutes edits a FlaatConfig document to put n prefix routes (/svc-0 … /svc-n-1,
// requiring "user") before its own routes, so that the request is matched after them.
func WithRoutes(doc map[string]any, n int) {
	p := doc["policy"].(map[string]any)
	routes := make([]any, 0, n+len(p["routes"].([]any)))
	for k := range n {
		routes = append(routes, map[string]any{"name": fmt.Sprintf("svc-%d", k), "path": map[string]any{"prefix": fmt.Sprintf("/svc-%d", k)}, "require": "user"})
	}
	p["routes"] = append(routes, p["routes"].([]any)...)
}

// LargeTokens edits a FlaatConfig document to accept tokens of up to 64 KiB (the
// default limit, 8 KiB, rejects the identity-size scenarios' tokens).
func LargeTokens(doc map[string]any) {
	doc["verification"].(map[string]any)["max_token_size"] = 64 << 10
}
