package devswitch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The flaat development switches (environment variables), kept for compatibility.
const (
	// EnvAssumeUser makes every request come from an authenticated (fabricated) user.
	EnvAssumeUser = "DISABLE_AUTHENTICATION_AND_ASSUME_AUTHENTICATED_USER"
	// EnvAssumeValidGroups makes every requirement hold (flaat: all group requirements true).
	EnvAssumeValidGroups = "DISABLE_AUTHENTICATION_AND_ASSUME_VALID_GROUPS"
	// EnvAssumeGroups is a JSON list of groups the fabricated user is a member of.
	EnvAssumeGroups = "DISABLE_AUTHENTICATION_AND_ASSUME_GROUPS"
	// EnvAssumeAuthorized is flaat 1.x's authorization switch: tokens are still
	// verified, but every requirement counts as met for a verified user.
	EnvAssumeAuthorized = "DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER"
)

// ErrNotAllowed: a DISABLE_AUTHENTICATION_* variable is set but
// --allow-insecure-dev-switches was not given. Start-up must fail.
var ErrNotAllowed = errors.New("devswitch: DISABLE_AUTHENTICATION_* or DISABLE_AUTHORIZATION_* is set but --allow-insecure-dev-switches was not given")

// Switches are flaat's DISABLE_AUTHENTICATION_* switches (flaat 0.13.3) and its
// DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER switch (flaat 1.x). When one of the
// first three is on, tokens are not verified at all: an identity is made up for every
// request. With AssumeAuthorized alone, tokens are verified but the policy is not
// enforced. They MUST NOT be used anywhere but on a developer's machine.
type Switches struct {
	// AssumeUser: every request is from an authenticated user (groups are not assumed).
	AssumeUser bool
	// AssumeValidGroups: every requirement is taken as met.
	AssumeValidGroups bool
	// AssumeGroups: the made-up user is a member of these groups (and authenticated).
	AssumeGroups []string
	// AssumeAuthorized: every requirement is taken as met for a user whose token was
	// verified (or made up by one of the switches above); a request without a valid
	// token is still denied (flaat 1.x's authorization switch).
	AssumeAuthorized bool
}

// Enabled reports whether any switch is on.
func (d Switches) Enabled() bool {
	return d.MakesUpIdentity() || d.AssumeAuthorized
}

// MakesUpIdentity reports whether a DISABLE_AUTHENTICATION_* switch is on, so that
// tokens are not verified at all.
func (d Switches) MakesUpIdentity() bool {
	return d.AssumeUser || d.AssumeValidGroups || len(d.AssumeGroups) > 0
}

// String names the switches that are on, for the start-up warning.
func (d Switches) String() string {
	var on []string
	if d.AssumeUser {
		on = append(on, EnvAssumeUser+"=YES")
	}
	if d.AssumeValidGroups {
		on = append(on, EnvAssumeValidGroups+"=YES")
	}
	if len(d.AssumeGroups) > 0 {
		b, _ := json.Marshal(d.AssumeGroups)
		on = append(on, EnvAssumeGroups+"="+string(b))
	}
	if d.AssumeAuthorized {
		on = append(on, EnvAssumeAuthorized+"=YES")
	}
	return strings.Join(on, " ")
}

// FromEnv reads the switches with getenv (os.Getenv in production). A boolean
// switch is on for YES (any case), off when empty or NO/FALSE/0; anything else is an
// error, as is an EnvAssumeGroups value that is not a JSON list of strings. When allowed
// is false and any switch is on, it returns ErrNotAllowed.
func FromEnv(getenv func(string) string, allowed bool) (Switches, error) {
	var d Switches
	var errs []error
	for _, v := range []struct {
		name string
		dst  *bool
	}{{EnvAssumeUser, &d.AssumeUser}, {EnvAssumeValidGroups, &d.AssumeValidGroups}, {EnvAssumeAuthorized, &d.AssumeAuthorized}} {
		switch strings.ToLower(strings.TrimSpace(getenv(v.name))) {
		case "", "no", "false", "0":
		case "yes", "true", "1":
			*v.dst = true
		default:
			errs = append(errs, fmt.Errorf("devswitch: %s: want YES or NO", v.name))
		}
	}
	if s := strings.TrimSpace(getenv(EnvAssumeGroups)); s != "" {
		if err := json.Unmarshal([]byte(s), &d.AssumeGroups); err != nil {
			errs = append(errs, fmt.Errorf("devswitch: %s: want a JSON list of strings like '[\"a\",\"b\"]': %w", EnvAssumeGroups, err))
		} else if len(d.AssumeGroups) == 0 {
			errs = append(errs, fmt.Errorf("devswitch: %s: empty list", EnvAssumeGroups))
		}
	}
	if len(errs) > 0 {
		return Switches{}, errors.Join(errs...)
	}
	if d.Enabled() && !allowed {
		return Switches{}, fmt.Errorf("%w (%s)", ErrNotAllowed, d)
	}
	return d, nil
}
