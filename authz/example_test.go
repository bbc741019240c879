package authz_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

func ExampleParseBearer() {
	tok, err := authz.ParseBearer("bearer abc.def.ghi", 0)
	fmt.Println(tok, err)
	_, err = authz.ParseBearer("Bearer a b", 0)
	fmt.Println(errors.Is(err, authz.ErrMalformed))
	_, err = authz.ParseBearer("", 0)
	fmt.Println(errors.Is(err, authz.ErrNoToken))
	// Output:
	// abc.def.ghi <nil>
	// true
	// true
}

// Verify and Authorize against a fake OP, as the server does for each request.
func ExampleAuthorizer_Authorize() {
	op, err := oidctest.Start()
	if err != nil {
		panic(err)
	}
	defer op.Close()

	pol, err := policy.New(policy.Config{Default: &policy.Requirement{Authenticated: true}})
	if err != nil {
		panic(err)
	}
	cfg := authz.Config{Issuers: []authz.IssuerConfig{{Issuer: op.Issuer(), Userinfo: authz.UserinfoNever}}}
	a, err := authz.New(cfg, pol, authz.WithLogger(quiet))
	if err != nil {
		panic(err)
	}
	defer a.Close()

	token := op.MintJWT(map[string]any{"sub": "alice"}, oidctest.WithAlg("ES256"))
	d := a.Authorize(context.Background(), authz.Request{Method: "GET", Path: "/", Authorization: "Bearer " + token})
	fmt.Println(d.Outcome, d.Identity.Subject(), d.Identity.Sources == authz.SourceJWT)

	d = a.Authorize(context.Background(), authz.Request{Method: "GET", Path: "/"})
	fmt.Println(d.Outcome, d.Reason)
	// Output:
	// allow alice true
	// no_token no bearer token
}

// A DPoP request: the token says which key it is bound to (cnf.jkt), the proof is
// signed with that key for this method and URI. ParseDPoPProof checks the proof's form
// and signature; Authorize adds the request, freshness, ath, binding and replay checks.
func ExampleParseDPoPProof() {
	key, err := oidctest.NewDPoPKey("ES256", nil)
	if err != nil {
		panic(err)
	}
	proof := key.Proof("GET", "https://api.example.org/items", "the-access-token")
	p, err := authz.ParseDPoPProof(proof, authz.DefaultDPoPAlgorithms)
	fmt.Println(err, p.HTM, p.HTU, p.JKT == key.JKT())
	_, err = authz.ParseDPoPProof(proof+","+proof, authz.DefaultDPoPAlgorithms)
	fmt.Println(errors.Is(err, authz.ErrInvalidDPoPProof))
	_, err = authz.ParseDPoPProof(proof, []string{"RS256"}) // ES256 not allowed
	fmt.Println(errors.Is(err, authz.ErrInvalidDPoPProof))
	// Output:
	// <nil> GET https://api.example.org/items true
	// true
	// true
}
