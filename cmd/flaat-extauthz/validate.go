package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flaat-extauthz/flaat-extauthz/internal/devswitch"
	"github.com/flaat-extauthz/flaat-extauthz/internal/tracing"
)

func (a *app) validateCmd() *cobra.Command {
	var cf configFlags
	var allowDev bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration and report every problem at once",
		Long: `validate loads the configuration exactly as serve would (file, environment, flags),
checks every section and prints every problem at once, including the development
switches and the OTEL_* tracing variables of the environment. It contacts no OP.
Exit status: 0 valid, 1 invalid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := cf.load(a.getenv)
			_, derr := devswitch.FromEnv(a.getenv, allowDev)
			_, terr := tracing.FromEnv(a.getenv) // serve refuses bad OTEL_* values too
			for _, e := range []error{derr, terr} {
				if e == nil {
					continue
				}
				if err == nil {
					err = e
				} else {
					err = fmt.Errorf("%w\n%w", err, e)
				}
			}
			if err != nil {
				return exit(exitFail, err)
			}
			fmt.Fprintf(a.stdout, "%s: valid (%d issuer(s), %d route(s))\n", cf.source(a.getenv), len(f.Issuers), len(f.Policy.Routes))
			for _, w := range f.Warnings() {
				fmt.Fprintln(a.stdout, "warning:", w)
			}
			return nil
		},
	}
	cf.register(cmd.Flags(), false)
	cmd.Flags().BoolVar(&allowDev, "allow-insecure-dev-switches", false,
		"accept the DISABLE_AUTHENTICATION_* and DISABLE_AUTHORIZATION_* environment variables as serve would with this flag")
	return cmd
}
