package policy

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// largeDoc is a claims document whose lists are long enough to be kept in a Memo: 40
// groups in each of the claims g0 … g{n-1}, 40 entitlements, 40 scopes.
func largeDoc(n int) map[string]any {
	c := map[string]any{"sub": "u", "iss": "https://op"}
	var groups, ents []any
	var scopes []string
	for i := range 40 {
		groups = append(groups, fmt.Sprintf("group-%d", i))
		ents = append(ents, fmt.Sprintf("urn:geant:h-df.de:group:g%d:role=member", i))
		scopes = append(scopes, fmt.Sprintf("s%d", i))
	}
	for i := range n {
		c[fmt.Sprintf("g%d", i)] = groups
	}
	c["eduperson_entitlement"] = ents
	c["scope"] = strings.Join(scopes, " ")
	return c
}

// TestMemoConcurrent: many goroutines evaluating one identity with one Memo (as
// concurrent requests of a cached identity do) all get Evaluate's answers; run with
// -race.
func TestMemoConcurrent(t *testing.T) {
	e := mustEngine(t, `{"default":{"all_of":[
		{"groups":{"claim":"g0","values":["group-39","group-7"]}},
		{"entitlements":{"values":["urn:geant:h-df.de:group:g12","urn:geant:h-df.de:group:nope"],"match":"one"}},
		{"scope":["s3","s38"]}]}}`)
	sel, err := e.Select(Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	claims := largeDoc(1)
	want := sel.Evaluate(claims)
	if !want.Allowed {
		t.Fatalf("the policy should allow: %+v", want)
	}
	var memo Memo
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if got := sel.EvaluateMemo(compactOf(claims), &memo); !reflect.DeepEqual(got, want) {
					errs <- fmt.Sprintf("%+v", got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("EvaluateMemo differs from Evaluate: %s", e)
	}
	if p := memo.held.Load(); p == nil || len(*p) != 3 {
		t.Fatalf("memo holds %v, want the three large claims", p)
	}
}

// TestMemoBounded: a Memo keeps at most maxMemo claims; evaluations needing more still
// get Evaluate's answers (computed per call).
func TestMemoBounded(t *testing.T) {
	const n = maxMemo + 4
	claims := largeDoc(n)
	var memo Memo
	for round := range 2 {
		for i := range n {
			e := mustEngine(t, fmt.Sprintf(`{"default":{"groups":{"claim":"g%d","values":["group-%d","absent"],"match":%d}}}`, i, i, 1+i%2))
			sel, err := e.Select(Request{Method: "GET", Path: "/"})
			if err != nil {
				t.Fatal(err)
			}
			want := sel.Evaluate(claims)
			if got := sel.EvaluateMemo(MapClaims(claims), &memo); !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, claim g%d: %+v, want %+v", round, i, got, want)
			}
		}
	}
	if p := memo.held.Load(); p == nil || len(*p) != maxMemo {
		t.Fatalf("memo holds %d entries, want %d", len(*p), maxMemo)
	}
}
