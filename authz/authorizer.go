package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
	"github.com/flaat-extauthz/flaat-extauthz/internal/resilience"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Observer receives metrics events. Package envoy implements it with Prometheus.
// Implementations must be safe for concurrent use and fast (they run on the request path).
type Observer interface {
	// OPRequest is called after every HTTP request to an OP. endpoint is "discovery",
	// "jwks", "userinfo" or "introspection"; status is the HTTP status, 0 for a transport
	// error (refused, timeout, TLS).
	OPRequest(issuer, endpoint string, status int, d time.Duration)
	// JWKSRefresh is called after every JWKS fetch (first load, unknown-kid refresh,
	// background refresh) with its outcome.
	JWKSRefresh(issuer string, err error)
}

type nopObserver struct{}

func (nopObserver) OPRequest(string, string, int, time.Duration) {}
func (nopObserver) JWKSRefresh(string, error)                    {}

// Option configures an Authorizer.
type Option func(*options)

type options struct {
	prev      *Authorizer
	index     bool
	transport http.RoundTripper
	wrap      func(http.RoundTripper) http.RoundTripper
	now       func() time.Time
	log       *slog.Logger
	obs       Observer
	project   bool
	keep      []string
	tp        trace.TracerProvider // WithTracing; nil: off
	prop      propagation.TextMapPropagator
}

// WithTransport sets the innermost RoundTripper of the OP client (tests count, fake or
// fail requests there). Default: a clone of http.DefaultTransport whose TLS settings
// come from Config (CAFile, InsecureSkipTLSVerify); with WithTransport they do not
// apply. Whatever the transport, the Authorizer's client is built the one way
// (resilience.NewClient): the circuit breaker and concurrency limit of Config.Breaker,
// the response-size limit, and a redirect policy that never follows a redirect to
// another host or from https to http (the redirect is then answered as a broken OP).
// Per-call timeouts come from Config.HTTPTimeout via contexts.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithTransportWrap wraps the innermost RoundTripper of the OP client (the default one,
// with Config's TLS settings, or WithTransport's), inside the circuit breaker: the
// wrapper sees every request that is really sent to an OP, e.g. to trace it.
func WithTransportWrap(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// WithReplayState makes the new Authorizer share the DPoP and logout jti replay caches
// of prev (the Authorizer of the configuration it replaces on a reload), so that a proof
// or logout token accepted just before a reload cannot be replayed just after it. A
// cache is shared only when its size and window are unchanged; otherwise the new one
// starts empty. nil: fresh caches.
func WithReplayState(prev *Authorizer) Option { return func(o *options) { o.prev = prev } }

// WithLogoutIndex keeps the index of cached identities by issuer+subject and
// issuer+session that Logout evicts through (about 100 bytes per cached identity and
// tag, maintained on cache misses and removals only). Without it Logout refuses to run
// (ErrLogoutDisabled): enable it where the back-channel logout receiver is served.
func WithLogoutIndex() Option { return func(o *options) { o.index = true } }

// WithClock sets the clock for every time check (exp, nbf, iat, leeway, refresh limits,
// cache expiry). Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithLogger sets the logger. Default slog.Default(). Tokens are never logged, only
// TokenHash(token).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithObserver sets the metrics hook. nil: no metrics.
func WithObserver(obs Observer) Option {
	return func(o *options) {
		if obs != nil {
			o.obs = obs
		}
	}
}

// projectedAlways are the claims WithClaimProjection always keeps. exp, aud, scope and
// scp are kept only when named (policy.Engine.ClaimNames names aud, scope and scp when
// a requirement reads them): every kept claim costs 16 bytes or more per cached
// identity.
var projectedAlways = []string{"sub", "iss"}

// WithClaimProjection makes Identity.Claims keep only the top-level claims that can be
// read: sub, iss and names; for a dotted name
// ("realm_access.roles") both the literal name and its first segment ("realm_access",
// kept whole). Every other claim is dropped before the identity is cached, which is
// what keeps memory per cached token small (the CLI's serve passes the policy's
// policy.Engine.ClaimNames and the claims of the identity headers and metadata).
//
// names must list every claim anything reads from Identity.Claims: a claim left out
// reads as absent (no requirement is met by an absent claim, so a policy fails closed,
// but an identity header or metadata value would go missing). Default (no option):
// every claim is kept. Identity.Parts (uncached identities) is never projected.
func WithClaimProjection(names []string) Option {
	return func(o *options) {
		o.project = true
		o.keep = append(o.keep, names...)
	}
}

// projection returns the sorted, distinct top-level claim names WithClaimProjection keeps.
func projection(names []string) []string {
	set := map[string]bool{}
	for _, n := range append(append([]string(nil), projectedAlways...), names...) {
		if n == "" {
			continue
		}
		set[n] = true
		if first, _, dotted := strings.Cut(n, "."); dotted && first != "" {
			set[first] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// project returns the claims of names (sorted, distinct) that claims holds, in the
// compact form: the names present are a policy.Shape shared by every identity with the
// same ones (in.shape), the values (but sub's) are shared through in.
func project(claims policy.Claims, names []string, in *interner) policy.Claims {
	var present uint64 // bit i: names[i] is present (the first 64 names)
	n := 0
	for i, k := range names {
		if _, ok := claims.Lookup(k); ok {
			n++
			if i < 64 {
				present |= 1 << i
			}
		}
	}
	vals := make([]any, 0, n)
	for _, k := range names {
		if v, ok := claims.Lookup(k); ok {
			if k != "sub" { // unique per user: sharing it would only churn the interner
				v = in.value(v)
			}
			vals = append(vals, v)
		}
	}
	return policy.CompactClaims(in.shape(names, present, claims), vals)
}

// Authorizer verifies bearer tokens against the configured trusted OPs and asks the
// policy engine whether the verified identity may make a request. It is safe for
// concurrent use. Close it to stop its background JWKS refreshers.
type Authorizer struct {
	cfg        Config // with defaults
	pol        *policy.Engine
	client     *http.Client
	breaker    *resilience.Transport
	now        func() time.Time
	log        *slog.Logger
	obs        Observer
	issuers    []*issuer
	byID       map[string]*issuer
	candidates []*issuer // the opaque-token search, in configuration order
	cache      *cache.Cache[*Identity]
	indexed    bool         // WithLogoutIndex
	dpopReplay *replayCache // jti of accepted DPoP proofs
	logout     *logoutState // back-channel logout: replay cache, tombstones
	keep       []string     // WithClaimProjection: the claims kept; nil: all
	interned   *interner    // WithClaimProjection: shares equal claim values
	traced     bool         // WithTracing: OP requests carry their opCall

	baseCtx context.Context // detached fetches; cancelled by Close
	cancel  context.CancelFunc
	jwks    *jwk.Cache

	jwksMu     sync.Mutex
	jwksOwners map[string][]*issuer // jwks_uri → issuers using it
	// jwksParent is the span context of the check whose JWKS fetch of a jwks_uri is
	// running (WithTracing): the jwk.Cache calls jwksFetcher.Get without a context.
	jwksParent map[string]trace.SpanContext
	closeOnce  sync.Once
}

// New validates cfg (every problem at once, see Config.Validate) and returns an
// Authorizer. pol may be nil when only Verify is used (the userinfo command); Authorize
// then fails closed. New makes no network request: discovery and JWKS are fetched on
// first use or by Ready.
func New(cfg Config, pol *policy.Engine, opts ...Option) (*Authorizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{now: time.Now, log: slog.Default(), obs: nopObserver{}}
	for _, opt := range opts {
		opt(&o)
	}
	a := &Authorizer{
		cfg:        cfg,
		pol:        pol,
		now:        o.now,
		log:        o.log,
		obs:        o.obs,
		byID:       map[string]*issuer{},
		jwksOwners: map[string][]*issuer{},
		jwksParent: map[string]trace.SpanContext{},
	}
	if o.project {
		a.keep, a.interned = projection(o.keep), newInterner()
	}
	a.indexed = o.index
	wrap := o.wrap
	if o.tp != nil { // the one place the OP client gets its spans: inside the breaker
		inner := wrap
		wrap = func(rt http.RoundTripper) http.RoundTripper {
			if inner != nil {
				rt = inner(rt)
			}
			return traceTransport(rt, o.tp, o.prop)
		}
		a.traced = true
	}
	c, tr, err := newHTTPClient(cfg, o.transport, wrap, o.now, o.log)
	if err != nil {
		return nil, err
	}
	a.client, a.breaker = c, tr
	var hint *regexp.Regexp
	if cfg.OPHint != "" {
		hint = regexp.MustCompile(cfg.OPHint) // validated above
	}
	for _, ic := range cfg.Issuers {
		is := newIssuer(a, ic)
		a.issuers = append(a.issuers, is)
		a.byID[is.id] = is
		if is.searchable() && (hint == nil || hint.MatchString(is.id)) {
			a.candidates = append(a.candidates, is)
		}
	}
	if !cfg.Cache.Disabled {
		var neg time.Duration // 0: the cache's default
		if n := cfg.Cache.NegativeTTL; n != nil {
			neg = n.D()
			if neg <= 0 {
				neg = -1 // explicitly off
			}
		}
		var tags func(*Identity) []cache.Tag
		if o.index {
			tags = identityTags
		}
		c, err := cache.NewTagged[*Identity](cache.Options{
			Size:         cfg.Cache.Size,
			MaxTTL:       cfg.Cache.MaxTTL.D(),
			NegativeTTL:  neg,
			StaleIfError: cfg.Cache.StaleIfError.D(),
			// A load may chain discovery, JWKS, userinfo and introspection calls.
			LoadTimeout: 4*cfg.HTTPTimeout.D() + time.Second,
			Now:         a.now,
			IsNegative:  IsCredentialError,
		}, tags)
		if err != nil {
			return nil, fmt.Errorf("authz: cache: %w", err)
		}
		a.cache = c
	}
	a.dpopReplay = newReplayCache(cfg.DPoP.ReplayCacheSize, cfg.DPoP.MaxAge.D()+cfg.DPoP.ClockSkew.D())
	a.logout = newLogoutState(cfg.Logout)
	if p := o.prev; p != nil {
		if p.dpopReplay.size == a.dpopReplay.size && p.dpopReplay.window == a.dpopReplay.window {
			a.dpopReplay = p.dpopReplay
		}
		if p.logout.replay.size == a.logout.replay.size && p.logout.replay.window == a.logout.replay.window {
			a.logout.replay = p.logout.replay
		}
	}
	a.baseCtx, a.cancel = context.WithCancel(context.Background())
	a.jwks = jwk.NewCache(a.baseCtx, jwk.WithErrSink(errSink{a}), jwk.WithRefreshWindow(jwksRefreshWindow))
	return a, nil
}

// Close stops the background JWKS refreshers and cancels fetches in flight. Idempotent.
// Verify and Authorize fail closed (unavailable) afterwards.
func (a *Authorizer) Close() error {
	a.closeOnce.Do(func() {
		a.cancel()
		a.breaker.CloseIdleConnections()
	})
	return nil
}

func (a *Authorizer) OPStats() map[string]resilience.Stats { return a.breaker.Stats() }

// Issuers returns the configured issuers as Identity.Issuer, metrics and logs name
// them (normalised: no trailing slash), in configuration order.
func (a *Authorizer) Issuers() []string {
	ids := make([]string, len(a.issuers))
	for i, is := range a.issuers {
		ids[i] = is.id
	}
	return ids
}

// DPoPAlgorithms returns the accepted DPoP proof algorithms (for the algs parameter of
// a DPoP challenge). The slice must not be modified.
func (a *Authorizer) DPoPAlgorithms() []string { return a.cfg.DPoP.Algorithms }

// CacheStats returns the identity cache's counters; the zero Stats if the cache is
// disabled.
func (a *Authorizer) CacheStats() cache.Stats {
	if a.cache == nil {
		return cache.Stats{}
	}
	return a.cache.Stats()
}

// Ready returns nil once every configured issuer's discovery document and (when it
// advertises one) JWKS have been fetched successfully at least once. Issuers not yet
// ready are tried now; the error lists every one that failed.
func (a *Authorizer) Ready(ctx context.Context) error {
	var errs []error
	for _, is := range a.issuers {
		if is.ready.Load() {
			continue
		}
		d, err := is.discover(ctx)
		if err == nil && d.jwksURI != "" {
			_, err = is.keySet(ctx, d)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		is.ready.Store(true)
	}
	return errors.Join(errs...)
}

// Verify verifies token (the raw token, without "Bearer ") and returns the identity, or
// an error: a credential error (IsCredentialError; wraps ErrNoToken, ErrMalformed,
// ErrUntrustedIssuer, ErrInvalidToken, ErrExpired or ErrInactive) or an
// *UnavailableError. It does not evaluate any policy. Results are cached by the token's
// SHA-256 (unless the cache is disabled); the returned Identity may be shared with other
// callers and must not be modified.
//
// With the cache on (the default) the identity is the slim form that the cache holds:
// Issuer, Subject, Claims, Expiry, Sources, Confirmation and SessionID; Parts is nil.
// Disable the cache (CacheConfig.Disabled) to get every part, as the userinfo and check
// commands do.
func (a *Authorizer) Verify(ctx context.Context, token string) (*Identity, error) {
	if err := checkToken(token, a.cfg.MaxTokenSize); err != nil {
		return nil, err
	}
	id, _, err := a.verify(ctx, token, nil)
	return id, err
}

// verify verifies a token that already passed checkToken (in Verify, or in authorize
// after a cache miss: the characters are checked at most once per request). sum is
// tokenSum(token) when the caller has it (Authorize needs it for TokenHash too), nil
// otherwise: SHA-256 is computed at most once per request.
func (a *Authorizer) verify(ctx context.Context, token string, sum *[32]byte) (*Identity, bool, error) {
	if a.cache == nil {
		id, err := a.identity(ctx, token)
		return id, false, err
	}
	if sum == nil {
		s := tokenSum(token)
		sum = &s
	}
	key := cache.Key(*sum)
	id, hit, err := a.cache.Lookup(key)
	if !hit {
		gen := a.logout.gen.Load()
		id, hit, err = a.load(ctx, token, key)
		if a.logout.gen.Load() != gen {
			// A logout arrived while this token was being verified: its result must not
			// outlive the logout in the cache (the loader also declines to store it).
			a.cache.Remove(key)
		}
	}
	return verified(id, hit, err)
}

// verified is verify's answer for a cache lookup's or load's result.
func verified(id *Identity, hit bool, err error) (*Identity, bool, error) {
	if err != nil {
		if !IsCredentialError(err) && !errors.Is(err, ErrUnavailable) {
			// The caller's context ended while waiting, or the loader failed internally.
			err = &UnavailableError{Endpoint: "verify", Err: err}
		}
		return nil, hit, err
	}
	return id, hit, nil
}

// load is the cache-miss half of verify: Get with a loader closure over token, built
// only here so that a hit (Lookup) allocates nothing.
func (a *Authorizer) load(ctx context.Context, token string, key cache.Key) (*Identity, bool, error) {
	return a.cache.Get(ctx, key, func(ctx context.Context) (*Identity, time.Time, error) {
		gen := a.logout.gen.Load()
		id, err := a.identity(ctx, token)
		if err != nil {
			return nil, time.Time{}, err
		}
		if a.logout.gen.Load() != gen {
			// A logout arrived during verification: answer the waiters, store nothing
			// (an end of life in the past is not stored).
			return id.slim(), a.now().Add(-time.Second), nil
		}
		return id.slim(), id.Expiry, nil
	})
}

// identity verifies token (no cache) and applies the claim projection.
func (a *Authorizer) identity(ctx context.Context, token string) (*Identity, error) {
	id, err := a.verifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if a.keep != nil {
		id.Claims = project(id.Claims, a.keep, a.interned)
	}
	return id, nil
}

// Authorize decides r: route selection first (a public route is allowed without looking
// at the Authorization header), then ParseBearer, Verify and the policy. It always
// returns a Decision; errors are mapped to outcomes in decisionFor.
//
// Route selection errors deny before any token is parsed, since they are about a
// request this server will not let through whatever the token (401 would mislead
// clients into retrying with another one): policy.ErrBadPath (the path cannot be
// normalised, or a policy.paths switch rejects it) and policy.ErrAmbiguousPath (its
// readings select different routes) are OutcomeBadRequest (400) with ReasonCode
// ReasonBadPath or ReasonAmbiguousPath; policy.ErrUnknownAccessLevel (Envoy's
// context_extensions name an access level this configuration lacks) is
// OutcomeForbidden.
//
// When ctx has ended by the time the decision is made, the outcome is
// OutcomeCancelled: a decision nobody waits for any more is never an allow, and the
// caller giving up is not an OP outage. An OP failure that is not the caller's context
// ending (our own http_timeout included) stays OutcomeUnavailable.
func (a *Authorizer) Authorize(ctx context.Context, r Request) Decision {
	d := a.authorize(ctx, r)
	if err := ctx.Err(); err != nil && (d.Outcome != OutcomeUnavailable || errors.Is(d.Err, err)) {
		d = cancelled(d, err)
	}
	return d
}

// cancelled turns d into the decision for a request whose context ended with err.
func cancelled(d Decision, err error) Decision {
	d.Outcome = OutcomeCancelled
	d.Reason = "request cancelled"
	if !errors.Is(d.Err, err) {
		d.Err = errors.Join(err, d.Err)
	}
	return d
}

func (a *Authorizer) authorize(ctx context.Context, r Request) Decision {
	if a.pol == nil {
		return Decision{Outcome: OutcomeUnavailable, Reason: "no policy configured",
			Err: errors.New("authz: Authorize called without a policy engine")}
	}
	sel, err := a.pol.Select(policy.Request{
		Method:            r.Method,
		Host:              r.Host,
		Path:              r.Path,
		ContextExtensions: r.ContextExtensions,
	})
	if err != nil {
		return SelectDenial(err)
	}
	if sel.Public {
		return Decision{Outcome: OutcomeAllow, Route: sel.Name, Public: true, Policy: sel.Evaluate(nil)}
	}
	d := Decision{Route: sel.Name}
	token, dpop, err := credentialShape(r.Authorization, a.cfg.MaxTokenSize)
	d.DPoP = dpop
	if err != nil {
		d.Outcome, d.Reason, d.Err = decisionFor(err)
		return d
	}
	sum := tokenSum(token)
	// A cache hit is a token whose SHA-256 equals that of one that passed checkToken
	// before it was verified: the same bytes. Only a miss looks at every character (for a
	// 16 KB token that is a fifth of a hit's cost).
	var id *Identity
	hit := false
	if a.cache != nil {
		id, hit, err = a.cache.Lookup(cache.Key(sum))
	}
	if !hit {
		if err := checkToken(token, a.cfg.MaxTokenSize); err != nil {
			d.Outcome, d.Reason, d.Err = decisionFor(err)
			return d
		}
	}
	d.TokenHash = sumHex(&sum)
	if hit {
		id, hit, err = verified(id, hit, err)
	} else {
		id, hit, err = a.verify(ctx, token, &sum)
	}
	d.Cached = hit
	if err != nil {
		d.Outcome, d.Reason, d.Err = decisionFor(err)
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return cancelled(d, cerr) // the caller gave up waiting: not an outage to warn about
		}
		if ue, ok := errors.AsType[*UnavailableError](err); ok && d.Outcome == OutcomeUnavailable {
			d.RetryAfter = ue.RetryAfter
		}
		a.logDenial(ctx, r, d)
		return d
	}
	if err := a.checkBinding(&r, &sum, dpop, id); err != nil {
		d.Outcome, d.Reason, d.Err = decisionFor(err)
		a.logDenial(ctx, r, d)
		return d
	}
	d.Identity = id
	d.Policy = sel.EvaluateMemo(id.Claims, id.memo)
	if !d.Policy.Allowed {
		d.Outcome = OutcomeForbidden
		d.Reason = d.Policy.Reason
		if d.Reason == "" {
			d.Reason = "policy not met"
		}
		return d
	}
	d.Outcome = OutcomeAllow
	return d
}

// SelectDenial is the decision for an error of policy.Engine.Select, the one mapping
// used by the Authorizer and by every other caller of Select that answers requests (the
// check command, the development switches): ErrAmbiguousPath and ErrBadPath are
// OutcomeBadRequest (400) with ReasonCode ReasonAmbiguousPath / ReasonBadPath;
// ErrUnknownAccessLevel and anything else are OutcomeForbidden.
func SelectDenial(err error) Decision {
	switch {
	case errors.Is(err, policy.ErrAmbiguousPath):
		return Decision{Outcome: OutcomeBadRequest, ReasonCode: ReasonAmbiguousPath, Err: err,
			Reason: "ambiguous request path: its readings select different routes"}
	case errors.Is(err, policy.ErrBadPath):
		return Decision{Outcome: OutcomeBadRequest, ReasonCode: ReasonBadPath, Err: err,
			Reason: "request path cannot be normalised"}
	case errors.Is(err, policy.ErrUnknownAccessLevel):
		return Decision{Outcome: OutcomeForbidden, Reason: "no access level configured for this route", Err: err}
	}
	return Decision{Outcome: OutcomeForbidden, Reason: "request not allowed", Err: err}
}

// PolicyDecision is the decision of a caller of policy.Engine.Select that evaluates the
// claims itself (the check command's claims file, the development switches): the policy
// result res of the route for the identity id, OutcomeAllow when res is met, otherwise
// OutcomeForbidden with an error that says notMet.
func PolicyDecision(route string, id *Identity, res policy.Result, notMet string) Decision {
	d := Decision{Identity: id, Route: route, Policy: res, Reason: res.Reason}
	if res.Allowed {
		d.Outcome = OutcomeAllow
	} else {
		d.Outcome = OutcomeForbidden
		d.Err = errors.New(notMet)
	}
	return d
}

// decisionFor is the one place where errors become outcomes and client-safe reasons.
func decisionFor(err error) (Outcome, string, error) {
	switch {
	case errors.Is(err, ErrUnavailable):
		return OutcomeUnavailable, "identity provider unavailable", err
	case errors.Is(err, ErrInvalidDPoPProof):
		if te, ok := errors.AsType[*TokenError](err); ok {
			return OutcomeInvalidDPoPProof, te.Reason, err
		}
		return OutcomeInvalidDPoPProof, "invalid DPoP proof", err
	case errors.Is(err, ErrNoToken):
		return OutcomeNoToken, "no bearer token", err
	case errors.Is(err, ErrMalformed):
		if te, ok := errors.AsType[*TokenError](err); ok {
			return OutcomeNoToken, te.Reason, err
		}
		return OutcomeNoToken, "malformed bearer token", err
	case IsCredentialError(err):
		if te, ok := errors.AsType[*TokenError](err); ok {
			return OutcomeInvalidToken, te.Reason, err
		}
		return OutcomeInvalidToken, "invalid token", err
	default:
		return OutcomeUnavailable, "internal error", err
	}
}

func (a *Authorizer) logDenial(ctx context.Context, r Request, d Decision) {
	level := slog.LevelDebug
	if d.Outcome == OutcomeUnavailable {
		level = slog.LevelWarn
	}
	if !a.log.Enabled(ctx, level) { // a denial is cheap when its level is off: no boxing
		return
	}
	a.log.LogAttrs(ctx, level, "authz: token not accepted",
		slog.String("outcome", d.Outcome.String()), slog.String("token_hash", d.TokenHash),
		slog.String("request_id", r.RequestID), slog.String("reason", d.Reason), slog.Any("error", d.Err))
}

// errSink receives errors of background JWKS refreshes.
type errSink struct{ a *Authorizer }

func (s errSink) Error(err error) {
	var re *httprc.RefreshError
	if !errors.As(err, &re) {
		s.a.log.Warn("authz: background JWKS refresh failed", "error", err)
		return
	}
	s.a.jwksMu.Lock()
	owners := s.a.jwksOwners[re.URL]
	s.a.jwksMu.Unlock()
	for _, is := range owners {
		s.a.obs.JWKSRefresh(is.id, err)
		s.a.log.Warn("authz: background JWKS refresh failed", "issuer", is.id, "error", err)
	}
}
