// Package explain runs one request through the server's decision pipeline — an
// envoy.Authorizer (package authz, a development-switch authorizer, or Claims for a
// fixed claims document) behind envoy.Server.Check with the configured server settings —
// and returns the decision together with the CheckResponse Envoy would get.
//
// The check command prints what Run and Claims return; the flaat-compatibility suite
// asserts on it, so that the suite measures exactly what `flaat-extauthz check` shows.
// explain adds no logic of its own: it builds the Envoy request and records the decision.
package explain

import (
	"context"
	"log/slog"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Request is one HTTP request as the proxy saw it.
type Request struct {
	// Method, Host and Path as sent (Path may carry a query).
	Method, Host, Path string
	// ContextExtensions are Envoy's per-route context_extensions.
	ContextExtensions map[string]string
	// Token is sent as "Authorization: Bearer <Token>"; "" sends no Authorization header.
	Token string
}

// Result is what happened to a Request.
type Result struct {
	// Decision is what the authorizer decided.
	Decision authz.Decision
	// Response is the CheckResponse Envoy would get.
	Response *authv3.CheckResponse
}

// Run sends r through envoy.Server.Check with the authorizer az and the server settings
// scfg (identity headers, realm, …), with clock now (nil: time.Now). An error means the
// server could not be built or Check failed; a denial is a Result.
func Run(ctx context.Context, az envoy.Authorizer, scfg envoy.Config, now func() time.Time, r Request) (Result, error) {
	if now == nil {
		now = time.Now
	}
	rec := &recorder{next: az}
	srv, err := envoy.NewServer(rec, scfg, envoy.WithLogger(slog.New(slog.DiscardHandler)), envoy.WithClock(now))
	if err != nil {
		return Result{}, err
	}
	hdrs := map[string]string{}
	if r.Host != "" {
		hdrs[":authority"] = r.Host
		hdrs["host"] = r.Host
	}
	if r.Token != "" {
		hdrs["authorization"] = "Bearer " + r.Token
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: r.Method, Host: r.Host, Path: r.Path, Headers: hdrs, Protocol: "HTTP/1.1",
		}},
		ContextExtensions: r.ContextExtensions,
	}}
	resp, err := srv.Check(ctx, req)
	if err != nil {
		return Result{}, err
	}
	return Result{Decision: rec.d, Response: resp}, nil
}

// ClaimsToken is the token Claims sends when r has none, so that the request is not a
// "no token" request: the claims stand for a verified token.
const ClaimsToken = "claims-file"

// Claims is `check --claims`: it evaluates pol on claims as if a token carrying them had
// been verified (no issuer, no signature, no OP), through Run.
func Claims(ctx context.Context, pol *policy.Engine, scfg envoy.Config, now func() time.Time, claims map[string]any, r Request) (Result, error) {
	if r.Token == "" {
		r.Token = ClaimsToken
	}
	return Run(ctx, ClaimsAuthorizer{Policy: pol, Claims: claims}, scfg, now, r)
}

// ClaimsAuthorizer evaluates Policy on the fixed Claims instead of a verified token. It
// ignores the Authorization header. For explaining and testing policies only.
type ClaimsAuthorizer struct {
	Policy *policy.Engine
	Claims map[string]any
}

// Authorize selects the route of r and evaluates its requirement on the claims.
func (c ClaimsAuthorizer) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	sel, err := c.Policy.Select(policy.Request{Method: r.Method, Host: r.Host, Path: r.Path, ContextExtensions: r.ContextExtensions})
	if err != nil {
		return authz.SelectDenial(err)
	}
	res := sel.Evaluate(c.Claims)
	var id *authz.Identity
	if !sel.Public {
		iss, _ := c.Claims["iss"].(string)
		id = &authz.Identity{Issuer: iss, Claims: policy.MapClaims(c.Claims), Parts: &authz.Parts{TokenClaims: c.Claims}}
	}
	d := authz.PolicyDecision(sel.Name, id, res, "policy not met by the claims file")
	d.Public = sel.Public
	return d
}

// recorder remembers the decision of the one check it passes on.
type recorder struct {
	next envoy.Authorizer
	d    authz.Decision
}

func (r *recorder) Authorize(ctx context.Context, req authz.Request) authz.Decision {
	r.d = r.next.Authorize(ctx, req)
	return r.d
}
