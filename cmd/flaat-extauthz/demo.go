package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/devop"
)

// demoPolicy is the demo's configuration; %s is the development OP's issuer.
const demoConfig = `
issuers:
  - issuer: %s
server:
  readiness: eager
policy:
  routes:
    - name: admin
      path: {prefix: /admin}
      require: {groups: {values: [admins]}}
    - name: any-valid-token
      path: {prefix: /}
      require: {authenticated: true}
log: {level: info, format: text}
`

func (a *app) demoCmd() *cobra.Command {
	var o config.Overrides
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local stack with a development OP and print commands to try",
		Long: `demo starts, on loopback only, an in-process DEVELOPMENT OpenID provider (it signs
whatever it is asked to; never expose it) and the server with an example policy: paths
below /admin need group "admins", every other path any valid token. It prints two fresh
tokens (an admin and a non-admin) and ready-to-paste curl and grpcurl commands that show
allow, 403 and 401. Ctrl-C stops everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			op, err := devop.Start(devop.WithClock(a.now))
			if err != nil {
				return exit(exitError, err)
			}
			defer op.Close()
			f, err := config.Parse([]byte(fmt.Sprintf(demoConfig, op.Issuer())))
			if err != nil {
				return exit(exitError, err)
			}
			o.Apply(f)
			if err := f.Validate(); err != nil {
				return exit(exitFail, err)
			}
			admin := op.MintJWT(map[string]any{"sub": "alice", "email": "alice@example.org", "groups": []string{"admins", "users"}})
			user := op.MintJWT(map[string]any{"sub": "bob", "email": "bob@example.org", "groups": []string{"users"}})
			o := a.serverOptions("demo", func() (*config.File, error) { return f, nil })
			o.OnListening = func(addrs map[string]string) {
				demoBanner(a.stdout, op.Issuer(), addrs, admin, user)
				if a.listening != nil {
					a.listening(addrs)
				}
			}
			return a.serve(cmd.Context(), o, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.GRPCListen, "grpc-listen", "127.0.0.1:0", "ext_authz gRPC listen address (loopback, random port by default)")
	fl.StringVar(&o.HTTPListen, "http-listen", "127.0.0.1:0", "HTTP auth-request listen address (loopback, random port by default)")
	fl.StringVar(&o.AdminListen, "admin-listen", "127.0.0.1:0", "admin listen address (loopback, random port by default)")
	fl.StringVar(&o.LogLevel, "log-level", "", "log level: debug shows one line per decision (default info: denials only)")
	return cmd
}

func demoBanner(w io.Writer, issuer string, addrs map[string]string, admin, user string) {
	h, g := addrs["http"], addrs["grpc"]
	grpcReq := func(path, tokenVar string) string {
		return `grpcurl -plaintext -d '{"attributes":{"request":{"http":{"method":"GET","path":"` + path +
			`","headers":{"authorization":"Bearer '"$` + tokenVar + `"'"}}}}}' ` + g + ` envoy.service.auth.v3.Authorization/Check`
	}
	lines := []string{
		"flaat-extauthz demo: a local, throw-away stack on loopback. Ctrl-C stops it.",
		"",
		"  DEVELOPMENT OP (not a real identity provider, signs anything): " + issuer,
		"  ext_authz gRPC:     " + g,
		"  HTTP auth-request:  http://" + h,
		"  admin:              http://" + addrs["admin"] + "/metrics  /healthz  /readyz",
		"",
		`Policy: paths below /admin need group "admins"; every other path needs any valid token.`,
		"",
		"# two fresh tokens (valid for 1 hour): alice is in admins and users, bob only in users",
		"export ADMIN_TOKEN=" + admin,
		"export USER_TOKEN=" + user,
		"",
		"# allow: 200 with identity headers (x-auth-request-user: alice, …) for the upstream",
		`curl -i -H "Authorization: Bearer $ADMIN_TOKEN" http://` + h + "/admin/settings",
		"# 403: a valid token, but bob is not in admins",
		`curl -i -H "Authorization: Bearer $USER_TOKEN" http://` + h + "/admin/settings",
		"# 200: any valid token will do outside /admin",
		`curl -i -H "Authorization: Bearer $USER_TOKEN" http://` + h + "/hello",
		"# 401: no token",
		"curl -i http://" + h + "/hello",
		"",
		"# the same over Envoy's gRPC ext_authz API (server reflection: no .proto files needed)",
		"# status code 0 (OK) with headers for the upstream:",
		grpcReq("/admin/settings", "ADMIN_TOKEN"),
		"# status code 7 (PERMISSION_DENIED), HTTP 403 in denied_response:",
		grpcReq("/admin/settings", "USER_TOKEN"),
		"# status code 16 (UNAUTHENTICATED), HTTP 401:",
		`grpcurl -plaintext -d '{"attributes":{"request":{"http":{"method":"GET","path":"/hello"}}}}' ` + g + ` envoy.service.auth.v3.Authorization/Check`,
		"",
		"# explain a decision, or inspect a token:",
		`go run ./cmd/flaat-extauthz userinfo --issuer ` + issuer + ` "$USER_TOKEN"`,
		"",
	}
	io.WriteString(w, strings.Join(lines, "\n"))
}
