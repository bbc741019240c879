package authz

import "time"

// SetDPoPReplayWindow replaces a's DPoP replay cache by one of the same size that
// remembers a jti for window (0: forgets it at once), so that a benchmark can verify one
// proof many times and still pay for the replay check.
func SetDPoPReplayWindow(a *Authorizer, window time.Duration) {
	a.dpopReplay = newReplayCache(a.dpopReplay.size, window)
}
