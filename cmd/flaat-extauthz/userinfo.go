package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// tokenEnvVars are the environment variables flaat-userinfo reads a token from, in order.
var tokenEnvVars = []string{"ACCESS_TOKEN", "OIDC", "OS_ACCESS_TOKEN", "OIDC_ACCESS_TOKEN", "WATTS_TOKEN", "WATTSON_TOKEN"}

// userinfo exit codes.
const (
	uiValid   = 0
	uiNoToken = 1
	uiInvalid = 2
	uiError   = 3
)

// userinfoReport is what the userinfo command prints (-o json prints it as is).
type userinfoReport struct {
	TokenType string `json:"token_type"` // jwt | opaque
	// Verified: the token was verified (signature and/or OP) — Header/Claims are trustworthy.
	Verified      bool           `json:"verified"`
	Header        map[string]any `json:"header,omitempty"`
	Claims        map[string]any `json:"claims,omitempty"`
	Issuer        string         `json:"issuer,omitempty"`
	Trust         string         `json:"trust"`
	Sources       []string       `json:"verified_by,omitempty"`
	Userinfo      map[string]any `json:"userinfo,omitempty"`
	Introspection map[string]any `json:"introspection,omitempty"`
	Merged        map[string]any `json:"merged_claims,omitempty"`
	Subject       string         `json:"subject,omitempty"`
	ExpiresAt     *time.Time     `json:"expires_at,omitempty"`
	ValidFor      *int64         `json:"valid_for_seconds,omitempty"`
	ExpiredAgo    *int64         `json:"expired_seconds_ago,omitempty"`
	Result        string         `json:"result"` // valid | invalid | error
	Error         string         `json:"error,omitempty"`
	TokenHash     string         `json:"token_hash"`
}

func (a *app) userinfoCmd() *cobra.Command {
	var cf configFlags
	var trustAny bool
	var clientID, clientSecret, output, only string
	cmd := &cobra.Command{
		Use:   "userinfo [TOKEN|-]",
		Short: "Show everything about an access token (flaat-userinfo)",
		Long: `userinfo verifies an access token exactly as the server would and prints the decoded
JWT header and claims (marked verified or NOT verified), the trusted issuer it matched,
the OP's userinfo and introspection replies, the merged claims, and how long the token
stays valid.

The token is the argument, or stdin with "-", or the first set of the environment
variables ` + strings.Join(tokenEnvVars, ", ") + `.

Issuers come from --issuer, --config / $FLAAT_EXTAUTHZ_CONFIG or
$FLAAT_EXTAUTHZ_ISSUERS. --trust-any trusts whatever issuer the token names: for
debugging only.

Exit status: 0 valid, 1 no token, 2 token invalid, 3 OP unreachable or other error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "text", "json":
			default:
				return exit(uiError, fmt.Errorf("--output %q: want text or json", output))
			}
			switch only {
			case "", "at", "userinfo", "introspection":
			default:
				return exit(uiError, fmt.Errorf("--only %q: want at, userinfo or introspection", only))
			}
			token, err := a.readToken(args)
			if err != nil {
				return exit(uiError, err)
			}
			if token == "" {
				return exit(uiNoToken, errors.New("no token: pass it as the argument, \"-\" for stdin, or set one of "+strings.Join(tokenEnvVars, ", ")))
			}
			rep, code, err := a.inspect(cmd.Context(), token, &cf, trustAny, clientID, clientSecret)
			if err != nil {
				return exit(code, err)
			}
			if err := a.printReport(rep, output, only); err != nil {
				return exit(uiError, err)
			}
			if code != uiValid {
				return exit(code, nil)
			}
			return nil
		},
	}
	cf.register(cmd.Flags(), false)
	fl := cmd.Flags()
	fl.BoolVar(&trustAny, "trust-any", false, "DEBUGGING ONLY: trust the issuer the token itself names (a JWT's iss), ignoring the configured issuers")
	fl.StringVar(&clientID, "client-id", "", "client id for introspection at every trusted issuer (default: the configuration's)")
	fl.StringVar(&clientSecret, "client-secret", "", "client secret for introspection (prefer the configuration file: flags show up in process lists)")
	fl.StringVarP(&output, "output", "o", "text", "output format: text or json")
	fl.StringVar(&only, "only", "", "print only one part as JSON: at (the token's claims), userinfo or introspection")
	return cmd
}

// readToken takes the token from the argument, stdin ("-") or the flaat-userinfo
// environment variables. A leading "Bearer " is dropped.
func (a *app) readToken(args []string) (string, error) {
	var t string
	switch {
	case len(args) == 1 && args[0] == "-":
		r := bufio.NewReader(io.LimitReader(a.stdin, maxPeekSize+1))
		b, err := io.ReadAll(r)
		if err != nil {
			return "", fmt.Errorf("read token from stdin: %w", err)
		}
		if len(b) > maxPeekSize {
			return "", errors.New("token on stdin is larger than 1 MiB")
		}
		t = string(b)
	case len(args) == 1:
		t = args[0]
	default:
		for _, k := range tokenEnvVars {
			if v := strings.TrimSpace(a.getenv(k)); v != "" {
				t = v
				break
			}
		}
	}
	t = strings.TrimSpace(t)
	if len(t) > 7 && strings.EqualFold(t[:7], "bearer ") {
		t = strings.TrimSpace(t[7:])
	}
	return t, nil
}

// inspect verifies token and fills the report. code is the exit code; err is set only
// when nothing can be reported (configuration problems).
func (a *app) inspect(ctx context.Context, token string, cf *configFlags, trustAny bool, clientID, clientSecret string) (*userinfoReport, int, error) {
	rep := &userinfoReport{TokenType: "opaque", Trust: "configuration", TokenHash: authz.TokenHash(token)}
	hdr, claims, isJWT := decodeUnverified(token)
	if isJWT {
		rep.TokenType, rep.Header, rep.Claims = "jwt", hdr, claims
	}
	f, err := cf.loadUnvalidated(a.getenv)
	if err != nil {
		return nil, uiError, err
	}
	if len(cf.issuers) > 0 {
		rep.Trust = "--issuer"
	}
	if trustAny {
		iss, _ := claims["iss"].(string)
		if !isJWT || iss == "" {
			return nil, uiError, errors.New("--trust-any needs a JWT with an iss claim; for an opaque token name the OP with --issuer")
		}
		fmt.Fprintf(a.stderr, "WARNING: --trust-any: trusting %q because the token says so. DEBUGGING ONLY: anyone can mint a token that passes this check with their own OP.\n", iss)
		f.Issuers = f.Issuers[:0:0]
		o := cf.o
		o.Issuers = []string{iss}
		o.Apply(f)
		rep.Trust = "--trust-any (DEBUGGING ONLY: the token chose its own issuer)"
	}
	if len(f.Issuers) == 0 {
		return nil, uiError, errors.New("no trusted issuer: use --issuer URL, --config FILE or $FLAAT_EXTAUTHZ_ISSUERS (or --trust-any for debugging)")
	}
	for i := range f.Issuers {
		is := &f.Issuers[i]
		if clientID != "" {
			is.ClientID = clientID
		}
		if clientSecret != "" {
			is.ClientSecret = clientSecret
		}
		if is.ClientID != "" && is.ClientSecret != "" && is.Introspect == "" {
			is.Introspect = authz.IntrospectAlways // show the introspection reply for JWTs too
		}
	}
	ac := f.AuthzConfig()
	ac.Cache.Disabled = true
	az, err := authz.New(ac, nil, authz.WithTransport(a.transport), authz.WithClock(a.now),
		authz.WithLogger(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelError}))))
	if err != nil {
		return nil, uiError, err
	}
	defer az.Close()
	id, verr := az.Verify(ctx, token)
	now := a.now()
	var exp time.Time
	if id != nil {
		rep.Verified = true
		rep.Issuer, rep.Subject = id.Issuer, id.Subject()
		if p := id.Parts; p != nil { // always: this command verifies without the cache
			if p.Header != nil {
				rep.Header = p.Header
			}
			if p.TokenClaims != nil {
				rep.Claims = p.TokenClaims
			}
			rep.Userinfo, rep.Introspection = p.Userinfo, p.Introspection
		}
		rep.Merged = id.Claims.Map()
		rep.Sources = sourceNames(id.Sources)
		exp = id.Expiry.Time()
	} else if e, ok := numericClaim(claims, "exp"); ok {
		exp = time.Unix(e, 0)
	}
	if !exp.IsZero() {
		exp = exp.UTC()
		rep.ExpiresAt = &exp
		if d := int64(exp.Sub(now) / time.Second); d >= 0 {
			rep.ValidFor = &d
		} else {
			d = -d
			rep.ExpiredAgo = &d
		}
	}
	switch {
	case verr == nil:
		rep.Result = "valid"
		return rep, uiValid, nil
	case authz.IsCredentialError(verr):
		rep.Result, rep.Error = "invalid", verr.Error()
		return rep, uiInvalid, nil
	default:
		rep.Result, rep.Error = "error", verr.Error()
		return rep, uiError, nil
	}
}

func sourceNames(s authz.Source) []string {
	var out []string
	for _, x := range []struct {
		bit  authz.Source
		name string
	}{{authz.SourceJWT, "jwt-signature"}, {authz.SourceUserinfo, "userinfo"}, {authz.SourceIntrospection, "introspection"}, {authz.SourceInsecureDevSwitch, "INSECURE-dev-switch"}} {
		if s&x.bit != 0 {
			out = append(out, x.name)
		}
	}
	return out
}

func (a *app) printReport(rep *userinfoReport, output, only string) error {
	if only != "" {
		var part map[string]any
		switch only {
		case "at":
			part = rep.Claims
		case "userinfo":
			part = rep.Userinfo
		case "introspection":
			part = rep.Introspection
		}
		if part == nil {
			part = map[string]any{}
		}
		return writeJSON(a.stdout, part)
	}
	if output == "json" {
		return writeJSON(a.stdout, rep)
	}
	w := a.stdout
	mark := "NOT verified"
	if rep.Verified {
		mark = "verified"
	}
	switch rep.TokenType {
	case "jwt":
		fmt.Fprintf(w, "Access token: JWT (%s), sha256 prefix %s\n", mark, rep.TokenHash)
		fmt.Fprintf(w, "Header (%s):\n%s", mark, indentJSON(rep.Header))
		fmt.Fprintf(w, "Claims (%s):\n%s", mark, indentJSON(rep.Claims))
	default:
		fmt.Fprintf(w, "Access token: opaque (%s), sha256 prefix %s\n", mark, rep.TokenHash)
	}
	if rep.Issuer != "" {
		fmt.Fprintf(w, "Issuer: %s (trusted via %s)\n", rep.Issuer, rep.Trust)
	} else {
		fmt.Fprintf(w, "Issuer: none matched (trusted via %s)\n", rep.Trust)
	}
	if len(rep.Sources) > 0 {
		fmt.Fprintf(w, "Verified by: %s\n", strings.Join(rep.Sources, ", "))
	}
	section := func(name string, m map[string]any, missing string) {
		if m == nil {
			fmt.Fprintf(w, "%s: %s\n", name, missing)
			return
		}
		fmt.Fprintf(w, "%s:\n%s", name, indentJSON(m))
	}
	section("Userinfo", rep.Userinfo, "not obtained")
	section("Introspection", rep.Introspection, "not obtained (needs client credentials: --client-id/--client-secret or the issuer's client_id/client_secret)")
	section("Merged claims", rep.Merged, "none (token not verified)")
	switch {
	case rep.ValidFor != nil:
		fmt.Fprintf(w, "Valid for %d more seconds (until %s)\n", *rep.ValidFor, rep.ExpiresAt.Format(time.RFC3339))
	case rep.ExpiredAgo != nil:
		fmt.Fprintf(w, "Expired %d seconds ago (at %s)\n", *rep.ExpiredAgo, rep.ExpiresAt.Format(time.RFC3339))
	default:
		fmt.Fprintln(w, "Expiry: unknown")
	}
	switch rep.Result {
	case "valid":
		fmt.Fprintln(w, "Result: valid")
	case "invalid":
		fmt.Fprintf(w, "Result: INVALID: %s\n", rep.Error)
	default:
		fmt.Fprintf(w, "Result: ERROR: %s\n", rep.Error)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// indentJSON renders m as indented JSON with sorted keys, each line indented by two
// spaces, ending in a newline.
func indentJSON(m map[string]any) string {
	b, err := json.MarshalIndent(m, "  ", "  ")
	if err != nil {
		return "  (unprintable)\n"
	}
	return "  " + string(b) + "\n"
}
