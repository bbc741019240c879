package authz_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/internal/devop"
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
	op, err := devop.Start()
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

	token := op.MintJWT(map[string]any{"sub": "alice"}, devop.WithAlg("ES256"))
	d := a.Authorize(context.Background(), authz.Request{Method: "GET", Path: "/", Authorization: "Bearer " + token})
	fmt.Println(d.Outcome, d.Identity.Subject, d.Identity.Sources == authz.SourceJWT)

	d = a.Authorize(context.Background(), authz.Request{Method: "GET", Path: "/"})
	fmt.Println(d.Outcome, d.Reason)
	// Output:
	// allow alice true
	// no_token no bearer token
}
