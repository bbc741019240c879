package policy_test

import (
	"slices"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// TestSelectionNames: every name Select or Level can return is listed, unnamed routes
// under their default name, and nothing else.
func TestSelectionNames(t *testing.T) {
	eng := exampleEngine()
	want := []string{"health", "admin", "ops", "user", "default"} // route and level "admin": once
	if got := eng.SelectionNames(); !slices.Equal(got, want) {
		t.Errorf("SelectionNames = %v, want %v", got, want)
	}
	unnamed, err := policy.New(policy.Config{Routes: []policy.Route{{Public: true}}})
	if err != nil {
		t.Fatal(err)
	}
	names := unnamed.SelectionNames()
	sel, err := unnamed.Select(policy.Request{Method: "GET", Host: "h", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, sel.Name) || len(names) != 2 {
		t.Errorf("SelectionNames = %v; Select named the route %q", names, sel.Name)
	}
	for _, r := range []policy.Request{
		{Method: "GET", Host: "api.example.org", Path: "/healthz"},
		{Method: "GET", Host: "api.example.org", Path: "/admin/x"},
		{Method: "GET", Host: "a.ops.example.org", Path: "/x"},
		{Method: "GET", Host: "api.example.org", Path: "/x"},
		{Method: "GET", Host: "api.example.org", Path: "/x", ContextExtensions: map[string]string{"flaat_policy": "user"}},
	} {
		sel, err := eng.Select(r)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(eng.SelectionNames(), sel.Name) {
			t.Errorf("Select(%v) = %q, not among %v", r, sel.Name, eng.SelectionNames())
		}
	}
}
