package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flaat-extauthz/flaat-extauthz/internal/devswitch"
)

func (a *app) validateCmd() *cobra.Command {
	var cf configFlags
	var allowDev bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration and report every problem at once",
		Long: `validate loads the configuration exactly as serve would (file, environment, flags),
checks every section and prints every problem at once. It contacts no OP.
Exit status: 0 valid, 1 invalid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := cf.load(a.getenv)
			if _, derr := devswitch.FromEnv(a.getenv, allowDev); derr != nil {
				if err == nil {
					err = derr
				} else {
					err = fmt.Errorf("%w\n%w", err, derr)
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
