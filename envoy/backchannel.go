package envoy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// BackchannelPath is the path of the back-channel logout receiver.
const BackchannelPath = "/backchannel-logout"

// maxLogoutBody bounds a logout request body (bytes).
const maxLogoutBody = 64 << 10

// LogoutReceiver verifies a logout token and evicts what it names. authz.Authorizer
// implements it.
type LogoutReceiver interface {
	Logout(ctx context.Context, logoutToken string) (authz.LogoutResult, error)
}

var _ LogoutReceiver = (*authz.Authorizer)(nil)

// BackchannelHandler returns the OIDC Back-Channel Logout 1.0 receiver (section 2.5 and
// 2.8): POST BackchannelPath with an application/x-www-form-urlencoded body holding
// exactly one logout_token. It answers 200 when the token was accepted (and the cached
// identities it names were evicted), 400 with {"error":"invalid_request",…} when the
// request or the token is not acceptable, 503 when the issuer's keys could not be
// fetched (the OP may retry), 405 for other methods and 404 for other paths; every
// answer carries Cache-Control: no-store. receiver returns the current receiver (nil:
// 503), so that a configuration reload takes effect. It logs the outcome (issuer,
// sub, sid, evictions; never the token) and records m (nil: no metrics).
//
// Serve it on its own listener (server.backchannel_listen) that the OPs can reach and
// clients cannot: it needs no client authentication (the token is signed by the OP),
// but it is a way to make this server evict and re-verify.
func BackchannelHandler(receiver func() LogoutReceiver, m *Metrics, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if req.URL.Path != BackchannelPath {
			http.NotFound(w, req)
			return
		}
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		m.logout("", 0)
		refuse := func(desc string) {
			m.logout("refused", 0)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, jsonBody("invalid_request", desc))
		}
		if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
			refuse("content type must be application/x-www-form-urlencoded")
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, maxLogoutBody+1))
		if err != nil || len(body) > maxLogoutBody {
			refuse("body unreadable or too large")
			return
		}
		form, err := url.ParseQuery(string(body))
		if err != nil || len(form["logout_token"]) != 1 {
			refuse("exactly one logout_token is required")
			return
		}
		rcv := receiver()
		if rcv == nil {
			m.logout("error", 0)
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		res, err := rcv.Logout(req.Context(), form.Get("logout_token"))
		switch {
		case err == nil:
			m.logout("accepted", res.Evicted)
			log.LogAttrs(req.Context(), slog.LevelInfo, "back-channel logout",
				slog.String("issuer", res.Issuer), slog.String("sub", res.Subject), slog.String("sid", res.SessionID),
				slog.Int("evicted", res.Evicted))
			w.WriteHeader(http.StatusOK)
		default:
			if te, ok := errors.AsType[*authz.TokenError](err); ok {
				log.LogAttrs(req.Context(), slog.LevelInfo, "back-channel logout refused", slog.String("reason", te.Reason))
				refuse(te.Reason)
				return
			}
			// The OP's keys could not be fetched, or logout is not enabled: not the
			// token's fault; the OP may retry.
			m.logout("error", 0)
			log.LogAttrs(req.Context(), slog.LevelWarn, "back-channel logout failed", slog.String("error", err.Error()))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, jsonBody("temporarily_unavailable", "logout could not be processed"))
		}
	})
}
