package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/internal/explain"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// check exit codes.
const (
	checkAllow = 0
	checkDeny  = 1
	checkError = 3
)

// checkReport is what the check command prints (-o json prints it as is).
type checkReport struct {
	Request struct {
		Method            string            `json:"method"`
		Host              string            `json:"host"`
		Path              string            `json:"path"`
		ContextExtensions map[string]string `json:"context_extensions,omitempty"`
		Token             string            `json:"token"` // "none", "sha256:<prefix>" or "skipped (--claims)"
	} `json:"request"`
	Route       string   `json:"route"`
	Source      string   `json:"selected_by,omitempty"`
	NormPath    string   `json:"normalised_path,omitempty"`
	Requirement string   `json:"requirement,omitempty"`
	Public      bool     `json:"public,omitempty"`
	Issuer      string   `json:"issuer,omitempty"`
	Subject     string   `json:"subject,omitempty"`
	Outcome     string   `json:"outcome"`
	Reason      string   `json:"reason,omitempty"`
	Error       string   `json:"error,omitempty"`
	Results     []string `json:"requirement_results,omitempty"`
	// The Envoy CheckResponse: gRPC status code, HTTP status, headers.
	GRPCStatus      string            `json:"grpc_status"`
	HTTPStatus      int               `json:"http_status"`
	UpstreamHeaders map[string]string `json:"upstream_headers,omitempty"`
	RemovedHeaders  []string          `json:"removed_headers,omitempty"`
	ResponseHeaders map[string]string `json:"response_headers,omitempty"`
	Body            string            `json:"body,omitempty"`
	Metadata        map[string]any    `json:"dynamic_metadata,omitempty"`
}

func (a *app) checkCmd() *cobra.Command {
	var cf configFlags
	var token, method, host, path, claimsFile, output string
	var exts []string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Explain the decision the server would make for one request",
		Long: `check runs the server's exact pipeline — token verification (authz), route selection
and policy evaluation, and the Envoy response building — for one request, and prints the
decision, the route and requirement that applied, each requirement's result, and the
headers that would go upstream (or the denial the client would get).

With --claims FILE.json no token is verified: the policy is evaluated on the given claims
(policy unit testing; no issuer needed).

Exit status: 0 allow, 1 deny, 3 error (OP unreachable, bad configuration or flags).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return exit(checkError, fmt.Errorf("--output %q: want text or json", output))
			}
			ce := map[string]string{}
			for _, kv := range exts {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return exit(checkError, fmt.Errorf("--context-extension %q: want key=value", kv))
				}
				ce[k] = v
			}
			if token == "-" {
				t, err := a.readToken([]string{"-"})
				if err != nil {
					return exit(checkError, err)
				}
				token = t
			}
			rep, code, err := a.check(cmd.Context(), &cf, token, method, host, path, ce, claimsFile)
			if err != nil {
				return exit(checkError, err)
			}
			if output == "json" {
				if err := writeJSON(a.stdout, rep); err != nil {
					return exit(checkError, err)
				}
			} else {
				printCheck(a.stdout, rep)
			}
			if code != checkAllow {
				return exit(code, nil)
			}
			return nil
		},
	}
	cf.register(cmd.Flags(), false)
	fl := cmd.Flags()
	fl.StringVarP(&token, "token", "t", "", `access token to check ("-": read it from stdin); empty: a request without Authorization`)
	fl.StringVarP(&method, "method", "X", "GET", "HTTP method of the request")
	fl.StringVar(&host, "host", "", "host (:authority) of the request")
	fl.StringVar(&path, "path", "/", "path of the request, as sent (may carry a query)")
	fl.StringArrayVar(&exts, "context-extension", nil, "Envoy context_extensions entry key=value; repeat for several")
	fl.StringVar(&claimsFile, "claims", "", "evaluate the policy on the claims in this JSON file instead of verifying a token")
	fl.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// check runs one request through envoy.Server.Check with the configured authorizer (or
// the claims file) and reports what happened.
func (a *app) check(ctx context.Context, cf *configFlags, token, method, host, path string, ce map[string]string, claimsFile string) (*checkReport, int, error) {
	rep := &checkReport{}
	rep.Request.Method, rep.Request.Host, rep.Request.Path, rep.Request.ContextExtensions = method, host, path, ce
	rep.Request.Token = "none"
	if token != "" {
		rep.Request.Token = "sha256:" + authz.TokenHash(token)
	}
	f, err := cf.loadUnvalidated(a.getenv)
	if err != nil {
		return nil, checkError, err
	}
	var pol *policy.Engine
	var res explain.Result
	xreq := explain.Request{Method: method, Host: host, Path: path, ContextExtensions: ce, Token: token}
	if claimsFile != "" {
		// Only the policy and server sections matter: no issuer needed.
		if pol, err = policy.New(f.Policy); err != nil {
			return nil, checkError, err
		}
		claims, err := readClaims(claimsFile)
		if err != nil {
			return nil, checkError, err
		}
		rep.Request.Token = "skipped (--claims " + claimsFile + ")"
		if res, err = explain.Claims(ctx, pol, f.ServerConfig(), a.now, claims, xreq); err != nil {
			return nil, checkError, err
		}
	} else {
		if err := f.Validate(); err != nil {
			return nil, checkError, fmt.Errorf("%s: %w", cf.source(a.getenv), err)
		}
		if pol, err = policy.New(f.Policy); err != nil {
			return nil, checkError, err
		}
		ac := f.AuthzConfig()
		ac.Cache.Disabled = true
		real, err := authz.New(ac, pol, authz.WithTransport(a.transport), authz.WithClock(a.now),
			authz.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return nil, checkError, err
		}
		defer real.Close()
		if res, err = explain.Run(ctx, real, f.ServerConfig(), a.now, xreq); err != nil {
			return nil, checkError, err
		}
	}
	resp := res.Response
	if sel, err := pol.Select(policy.Request{Method: method, Host: host, Path: path, ContextExtensions: ce}); err == nil {
		rep.Source, rep.NormPath, rep.Requirement, rep.Public = string(sel.Source), sel.Path, sel.Description, sel.Public
	}
	d := res.Decision
	rep.Route, rep.Outcome, rep.Reason, rep.Results = d.Route, d.Outcome.String(), d.Reason, d.Policy.Details
	if d.Err != nil {
		rep.Error = d.Err.Error()
	}
	if d.Identity != nil {
		rep.Issuer, rep.Subject = d.Identity.Issuer, d.Identity.Subject()
	}
	fillResponse(rep, resp)
	switch d.Outcome {
	case authz.OutcomeAllow:
		return rep, checkAllow, nil
	case authz.OutcomeUnavailable, authz.OutcomeCancelled:
		return rep, checkError, nil
	default:
		return rep, checkDeny, nil
	}
}

// fillResponse copies what Envoy would do with resp into the report.
func fillResponse(rep *checkReport, resp *authv3.CheckResponse) {
	rep.GRPCStatus = codes.Code(resp.GetStatus().GetCode()).String()
	if ok := resp.GetOkResponse(); ok != nil {
		rep.HTTPStatus = 200
		rep.UpstreamHeaders = headerMap(ok.GetHeaders())
		rep.RemovedHeaders = append([]string(nil), ok.GetHeadersToRemove()...)
		sort.Strings(rep.RemovedHeaders)
	}
	if den := resp.GetDeniedResponse(); den != nil {
		rep.HTTPStatus = int(den.GetStatus().GetCode())
		rep.ResponseHeaders = headerMap(den.GetHeaders())
		rep.Body = den.GetBody()
	}
	if md := resp.GetDynamicMetadata(); md != nil && len(md.GetFields()) > 0 {
		rep.Metadata = md.AsMap()
	}
}

func headerMap(hs []*corev3.HeaderValueOption) map[string]string {
	if len(hs) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, h := range hs {
		m[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return m
}

func printCheck(w io.Writer, r *checkReport) {
	fmt.Fprintf(w, "Request:     %s %s%s (token: %s)\n", r.Request.Method, r.Request.Host, r.Request.Path, r.Request.Token)
	if len(r.Request.ContextExtensions) > 0 {
		fmt.Fprintf(w, "Context ext: %s\n", sortedKV(r.Request.ContextExtensions))
	}
	route := r.Route
	if route == "" {
		route = "(none)"
	}
	fmt.Fprintf(w, "Route:       %s", route)
	if r.Source != "" {
		fmt.Fprintf(w, " (selected by %s, normalised path %s)", r.Source, r.NormPath)
	}
	fmt.Fprintln(w)
	switch {
	case r.Public:
		fmt.Fprintln(w, "Requirement: none (public route)")
	case r.Requirement != "":
		fmt.Fprintf(w, "Requirement: %s\n", r.Requirement)
	}
	if r.Subject != "" || r.Issuer != "" {
		fmt.Fprintf(w, "Identity:    sub %q from %s\n", r.Subject, r.Issuer)
	}
	for _, d := range r.Results {
		fmt.Fprintf(w, "  - %s\n", d)
	}
	verdict := "DENY"
	switch r.Outcome {
	case "allow":
		verdict = "ALLOW"
	case "unavailable", "cancelled":
		verdict = "ERROR (fail closed)"
	}
	fmt.Fprintf(w, "Decision:    %s (%s) — gRPC %s, HTTP %d\n", verdict, r.Outcome, r.GRPCStatus, r.HTTPStatus)
	if r.Reason != "" {
		fmt.Fprintf(w, "Reason:      %s\n", r.Reason)
	}
	if r.Error != "" && r.Error != r.Reason {
		fmt.Fprintf(w, "Cause:       %s\n", r.Error)
	}
	if r.HTTPStatus == 200 {
		fmt.Fprintln(w, "Headers to the upstream (overwriting client copies):")
		for _, kv := range sortedPairs(r.UpstreamHeaders) {
			fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
		}
		if len(r.RemovedHeaders) > 0 {
			fmt.Fprintf(w, "Headers removed before the upstream: %s\n", strings.Join(r.RemovedHeaders, ", "))
		}
		return
	}
	fmt.Fprintln(w, "Response to the client:")
	for _, kv := range sortedPairs(r.ResponseHeaders) {
		fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
	}
	if r.Body != "" {
		fmt.Fprintf(w, "  body: %s\n", r.Body)
	}
}

func sortedPairs(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func sortedKV(m map[string]string) string {
	var parts []string
	for _, kv := range sortedPairs(m) {
		parts = append(parts, kv[0]+"="+kv[1])
	}
	return strings.Join(parts, " ")
}

// readClaims reads a JSON object from path ("-": not supported, stdin is for tokens).
func readClaims(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--claims: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, fmt.Errorf("--claims %s: want a JSON object of claims: %v", path, err)
	}
	return m, nil
}
