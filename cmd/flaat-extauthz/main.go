// Command flaat-extauthz is an Envoy external-authorization server that verifies OIDC
// access tokens and evaluates flaat-style claim policies.
//
//	flaat-extauthz serve       run the ext_authz gRPC + HTTP server and the admin listener
//	flaat-extauthz userinfo    show everything about a token (flaat-userinfo)
//	flaat-extauthz check       explain the decision the server would make for one request
//	flaat-extauthz validate    report every configuration problem at once
//	flaat-extauthz demo        a local stack with a development OP, for a first look
//	flaat-extauthz version     version, commit, Go version
//	flaat-extauthz healthcheck probe a running server (/readyz or gRPC health): exit 0 or 1
//
// This package is flags and wiring only: configuration is loaded and validated by
// internal/config, the server's lifecycle (listeners, reload, readiness, shutdown) is
// internal/server, tokens are verified by authz, policies evaluated by policy, and
// requests answered by envoy.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes shared by the subcommands. userinfo and check document their own meanings
// of 1 and 2 (see their help); every command exits 3 on an unexpected error.
const (
	exitOK    = 0
	exitFail  = 1 // serve/validate: bad configuration; check: deny; userinfo: no token
	exitUsage = 2 // bad flags or arguments (userinfo: invalid token)
	exitError = 3 // OP unreachable or other error
)

// exitErr carries an exit code through cobra. A nil err means: print nothing more.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitErr) Unwrap() error { return e.err }

// exit returns an error that makes run return code; err (may be nil) is printed.
func exit(code int, err error) error { return &exitErr{code: code, err: err} }

// app is the process environment of one invocation. Tests fill it with buffers, a fake
// environment and a signal channel; main uses the real ones.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	transport      http.RoundTripper // innermost OP transport; nil: authz's default
	// signals delivers SIGHUP/SIGTERM/SIGINT to serve and demo. nil: the process's.
	signals <-chan os.Signal
	// listening, when set, is called by serve/demo with the bound addresses once every
	// listener is up (tests use it instead of fixed ports).
	listening func(addrs map[string]string)
}

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now}
	os.Exit(a.run(context.Background(), os.Args[1:]))
}

// run executes the command line args and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(a.stderr, "flaat-extauthz:", ee.err)
		}
		return ee.code
	}
	// cobra's own errors (unknown command or flag, wrong arguments). pflag quotes the
	// offending argument whole, and a token that starts with "-" reads as flags: never
	// echo a long argument (it may be a token), name its hash instead.
	fmt.Fprintln(a.stderr, "flaat-extauthz:", redactArgs(err.Error(), args))
	return exitUsage
}

// redactArgs replaces, in a usage error message, every command-line argument long enough
// to be a credential (more than 32 bytes) by "<argument sha256:xxxxxxxx>", the same
// correlation hash the logs use, and says how to pass a token that starts with "-".
func redactArgs(msg string, args []string) string {
	redacted := false
	for _, arg := range args {
		for _, a := range []string{arg, strings.TrimLeft(arg, "-")} {
			if len(a) > 32 && strings.Contains(msg, a) {
				sum := sha256.Sum256([]byte(a))
				msg = strings.ReplaceAll(msg, a, fmt.Sprintf("<argument sha256:%x>", sum[:4]))
				redacted = true
			}
		}
	}
	if redacted {
		msg += ` (a token that starts with "-" goes after "--")`
	}
	return msg
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "flaat-extauthz",
		Short: "Envoy ext_authz server for OIDC access tokens (flaat rebuilt)",
		Long: `flaat-extauthz verifies OIDC access tokens (JWT signatures, userinfo, RFC 7662
introspection) and evaluates flaat-style claim policies for Envoy, Istio, nginx and
Traefik, speaking Envoy's ext_authz gRPC API and the HTTP auth-request form.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(a.serveCmd(), a.validateCmd(), a.versionCmd(), a.userinfoCmd(), a.checkCmd(), a.demoCmd(), a.healthcheckCmd())
	return root
}
