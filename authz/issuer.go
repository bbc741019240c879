package authz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/flaat-extauthz/flaat-extauthz/internal/resilience"
)

// failBackoff is how long a failed discovery or first JWKS fetch is remembered before
// the next attempt, so that a flood of requests does not hammer an OP that is down.
const failBackoff = time.Second

// jwksBackgroundRefresh is how often the jwk.Cache refreshes a JWKS in the background,
// whatever the OP's cache headers say: keys the OP withdrew stop being trusted within
// about this long (plus jwksRefreshWindow).
const (
	jwksBackgroundRefresh = 15 * time.Minute
	jwksRefreshWindow     = time.Minute
)

// issuer is the runtime state of one trusted OP.
type issuer struct {
	a            *Authorizer
	cfg          IssuerConfig
	id           string // normalised issuer URL
	discoveryURL string
	userinfo     string // effective mode for JWTs
	introspect   string // effective mode
	ready        atomic.Bool

	// flights shares one discovery fetch and one JWKS fetch between concurrent
	// callers; each fetch runs on the Authorizer's context, and each waiter selects on
	// its own (await). Every flight gets a key of its own (flightKey), so that a caller
	// never joins a flight that has already recorded its outcome.
	flights   singleflight.Group
	flightSeq atomic.Uint64

	mu         sync.Mutex
	disc       *discovery
	discFlight string // key of the discovery flight running; "" none
	discErr    error
	discErrAt  time.Time

	keys        atomic.Pointer[keyIndex]
	kmu         sync.Mutex
	keyFlight   string    // key of the JWKS flight running; "" none
	forcedAt    time.Time // last refresh triggered by an unknown kid
	forcedErr   error
	forcedErrAt time.Time
	// missed are kids that the last forced refresh did not find (at most maxMissed):
	// while refreshes are rate-limited they are answered 401, every other unknown kid
	// 503 with Retry-After, since its key may be new.
	missed    map[string]struct{}
	initErr   error
	initErrAt time.Time
}

// maxMissed bounds issuer.missed; kids beyond it are answered 503 (never allowed).
const maxMissed = 256

// discovery is what we use from the OP's discovery document.
type discovery struct {
	issuer           string // the document's issuer, exactly as the OP spells it
	jwksURI          string
	userinfoURL      string
	introspectionURL string
	algs             map[string]bool // effective JWS alg allow-list
}

func newIssuer(a *Authorizer, c IssuerConfig) *issuer {
	is := &issuer{a: a, cfg: c, id: normalizeIssuer(c.Issuer)}
	is.discoveryURL = c.DiscoveryURL
	if is.discoveryURL == "" {
		is.discoveryURL = is.id + "/.well-known/openid-configuration"
	}
	is.userinfo = c.Userinfo
	if is.userinfo == "" {
		is.userinfo = UserinfoOptional
	}
	is.introspect = c.Introspect
	if is.introspect == "" {
		is.introspect = IntrospectNever
		if c.ClientID != "" && c.ClientSecret != "" {
			is.introspect = IntrospectOpaque
		}
	}
	return is
}

// searchable reports whether the OP takes part in the opaque-token search.
func (is *issuer) searchable() bool {
	return !is.cfg.IssuesJWT && (is.userinfo != UserinfoNever || is.introspect != IntrospectNever)
}

func (is *issuer) unavailable(endpoint string, err error) error {
	return &UnavailableError{Issuer: is.id, Endpoint: endpoint, Err: err}
}

// flightKey returns a new singleflight key for a fetch of what.
func (is *issuer) flightKey(what string) string {
	return what + "#" + strconv.FormatUint(is.flightSeq.Add(1), 10)
}

// await waits for a flight's result or for ctx (the flight carries on for the others).
func await[T any](ctx context.Context, ch <-chan singleflight.Result, onCancel func(error) error) (T, error) {
	select {
	case r := <-ch:
		v, _ := r.Val.(T)
		return v, r.Err
	case <-ctx.Done():
		var zero T
		return zero, onCancel(ctx.Err())
	}
}

// discover returns the discovery document, fetching it once (shared by concurrent
// callers, on a detached context) and keeping it for the life of the Authorizer.
func (is *issuer) discover(ctx context.Context) (*discovery, error) {
	is.mu.Lock()
	if d := is.disc; d != nil {
		is.mu.Unlock()
		return d, nil
	}
	if is.discFlight == "" {
		if is.discErr != nil && is.a.now().Sub(is.discErrAt) < failBackoff {
			err := is.discErr
			is.mu.Unlock()
			return nil, err
		}
		is.discFlight = is.flightKey("discovery")
	}
	parent := trace.SpanContextFromContext(ctx) // used only if this call starts the flight
	ch := is.flights.DoChan(is.discFlight, func() (any, error) {
		d, err := is.fetchDiscovery(parent)
		is.mu.Lock()
		if err == nil {
			is.disc = d
		} else {
			is.discErr, is.discErrAt = err, is.a.now()
		}
		is.discFlight = ""
		is.mu.Unlock()
		return d, err
	})
	is.mu.Unlock()
	return await[*discovery](ctx, ch, func(err error) error { return is.unavailable("discovery", err) })
}

// fetchDiscovery fetches the discovery document on a detached context; parent is the
// span context of the check that asked first (for tracing).
func (is *issuer) fetchDiscovery(parent trace.SpanContext) (*discovery, error) {
	ctx, cancel := context.WithTimeout(withParent(is.a.baseCtx, parent), is.a.cfg.HTTPTimeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, is.discoveryURL, nil)
	if err != nil {
		return nil, is.unavailable("discovery", err)
	}
	req.Header.Set("Accept", "application/json")
	status, body, _, err := is.a.send(req, is.id, "discovery")
	if err != nil {
		return nil, is.unavailable("discovery", err)
	}
	if status != http.StatusOK {
		return nil, is.unavailable("discovery", fmt.Errorf("status %d", status))
	}
	var doc struct {
		Issuer                string   `json:"issuer"`
		JWKSURI               string   `json:"jwks_uri"`
		UserinfoEndpoint      string   `json:"userinfo_endpoint"`
		IntrospectionEndpoint string   `json:"introspection_endpoint"`
		Algs                  []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, is.unavailable("discovery", fmt.Errorf("malformed document: %w", err))
	}
	if normalizeIssuer(doc.Issuer) != is.id {
		return nil, is.unavailable("discovery", fmt.Errorf("document names issuer %q, want %q", doc.Issuer, is.id))
	}
	for name, u := range map[string]string{"jwks_uri": doc.JWKSURI, "userinfo_endpoint": doc.UserinfoEndpoint, "introspection_endpoint": doc.IntrospectionEndpoint} {
		if u == "" {
			continue
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, is.unavailable("discovery", fmt.Errorf("%s %q is not an http(s) URL", name, u))
		}
	}
	d := &discovery{
		issuer:           doc.Issuer,
		jwksURI:          doc.JWKSURI,
		userinfoURL:      doc.UserinfoEndpoint,
		introspectionURL: doc.IntrospectionEndpoint,
		algs:             map[string]bool{},
	}
	algs := is.cfg.Algorithms
	if len(algs) == 0 {
		algs = doc.Algs
	}
	for _, alg := range algs {
		if supportedAlgs[alg] {
			d.algs[alg] = true
		}
	}
	if len(d.algs) == 0 { // nothing usable advertised: any asymmetric alg the keys fit
		for alg := range supportedAlgs {
			d.algs[alg] = true
		}
	}
	return d, nil
}

// --- keys ---

// pubKey is one verification key from a JWKS.
type pubKey struct {
	kid string
	alg string // the JWK's alg parameter; "" = any alg the key type fits
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey
}

// keyIndex is an immutable view of one fetched JWKS.
type keyIndex struct {
	byKid map[string][]pubKey
	all   []pubKey
	// unusable are kids the JWKS lists only with keys that may not verify signatures
	// (symmetric, use "enc", key_ops without "verify", unparsable): known, so a token
	// naming one is invalid without another refresh.
	unusable map[string]bool
	// withdrawn are kids that earlier sets of this issuer listed and this one does not
	// (at most maxWithdrawn): the OP has unpublished them, so a token naming one is
	// invalid, also while refreshes are rate-limited.
	withdrawn map[string]bool
	// fetchedAt is when this set was fetched.
	fetchedAt time.Time
}

// maxWithdrawn bounds keyIndex.withdrawn.
const maxWithdrawn = 256

// withWithdrawn returns a copy of idx whose withdrawn set lists the kids of prev (and
// those prev had withdrawn) that idx lacks.
func (idx *keyIndex) withWithdrawn(prev *keyIndex) *keyIndex {
	if prev == nil {
		return idx
	}
	out := *idx
	out.withdrawn = map[string]bool{}
	add := func(kid string) {
		if _, ok := idx.byKid[kid]; !ok && !idx.unusable[kid] && len(out.withdrawn) < maxWithdrawn {
			out.withdrawn[kid] = true
		}
	}
	for kid := range prev.byKid {
		add(kid)
	}
	for kid := range prev.unusable {
		add(kid)
	}
	for kid := range prev.withdrawn {
		add(kid)
	}
	return &out
}

func buildIndex(set jwk.Set) *keyIndex {
	idx := &keyIndex{byKid: map[string][]pubKey{}, unusable: map[string]bool{}}
	for i := 0; i < set.Len(); i++ {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		if kid := k.KeyID(); kid != "" {
			idx.unusable[kid] = true // cleared below when a usable key has this kid
		}
		if k.KeyType() == jwa.OctetSeq {
			continue // symmetric keys are never used
		}
		if u := k.KeyUsage(); u != "" && u != "sig" {
			continue
		}
		if ops := k.KeyOps(); len(ops) > 0 {
			verify := false
			for _, op := range ops {
				verify = verify || op == jwk.KeyOpVerify
			}
			if !verify {
				continue
			}
		}
		raw, err := jwk.PublicRawKeyOf(k)
		if err != nil {
			continue
		}
		pk := pubKey{kid: k.KeyID(), pub: raw}
		if k.Algorithm() != nil {
			pk.alg = k.Algorithm().String()
		}
		idx.all = append(idx.all, pk)
		idx.byKid[pk.kid] = append(idx.byKid[pk.kid], pk)
	}
	for kid := range idx.byKid {
		delete(idx.unusable, kid)
	}
	return idx
}

// fits reports whether key k may verify a signature made with alg: the key type must
// fit the algorithm (RSA for RS*/PS*, the right curve for ES*, Ed25519 for EdDSA) and a
// key that names its alg must name this one.
func fits(alg string, k pubKey) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		_, ok := k.pub.(*rsa.PublicKey)
		return ok
	case "ES256", "ES384", "ES512":
		ec, ok := k.pub.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		switch alg {
		case "ES256":
			return ec.Curve == elliptic.P256()
		case "ES384":
			return ec.Curve == elliptic.P384()
		}
		return ec.Curve == elliptic.P521()
	case "EdDSA":
		_, ok := k.pub.(ed25519.PublicKey)
		return ok
	}
	return false
}

// candidates returns the keys that may verify a token with this kid and alg, and
// whether the kid is known at all. keys may be the index's own slice (when every key
// of the kid fits, as usual): callers only read it.
func (idx *keyIndex) candidates(kid, alg string) (keys []pubKey, known bool) {
	list := idx.all
	if kid != "" {
		list, known = idx.byKid[kid]
		known = known || idx.unusable[kid]
	}
	keys = list
	for i, k := range list {
		if !fits(alg, k) { // copy the ones that fit, from here on
			keys = append(make([]pubKey, 0, len(list)-1), list[:i]...)
			for _, k := range list[i+1:] {
				if fits(alg, k) {
					keys = append(keys, k)
				}
			}
			break
		}
	}
	if kid == "" {
		known = len(keys) > 0
	}
	return keys, known
}

// keySet returns the issuer's verification keys, fetching the JWKS on first use.
func (is *issuer) keySet(ctx context.Context, d *discovery) (*keyIndex, error) {
	if idx := is.keys.Load(); idx != nil {
		return idx, nil
	}
	idx, _, err := is.fetchKeys(ctx, d, false)
	return idx, err
}

// errRateLimited: an unknown kid arrived within JWKSRefreshInterval of the last refresh
// that an unknown kid triggered; no refresh is made. It is wrapped in an
// *UnavailableError whose RetryAfter says when the next refresh is allowed.
var errRateLimited = errors.New("authz: jwks refresh rate-limited")

// noteMissed records that a forced refresh did not find kid.
func (is *issuer) noteMissed(kid string) {
	is.kmu.Lock()
	defer is.kmu.Unlock()
	if is.missed == nil {
		is.missed = map[string]struct{}{}
	}
	if len(is.missed) < maxMissed {
		is.missed[kid] = struct{}{}
	}
}

// wasMissed reports whether the last forced refresh did not find kid.
func (is *issuer) wasMissed(kid string) bool {
	is.kmu.Lock()
	defer is.kmu.Unlock()
	_, ok := is.missed[kid]
	return ok
}

// fetchKeys fetches the JWKS through the jwk.Cache: at most one fetch per issuer is in
// flight (concurrent callers share it, each honouring its own ctx), it runs on a
// detached context, and when forced (an unknown kid) at most one is started per
// JWKSRefreshInterval. A rate-limited forced call returns errRateLimited, or the error of
// the last forced refresh if that one failed. refreshed reports whether this call waited
// for a fetch.
func (is *issuer) fetchKeys(ctx context.Context, d *discovery, forced bool) (idx *keyIndex, refreshed bool, err error) {
	a := is.a
	is.kmu.Lock()
	if is.keyFlight == "" {
		now := a.now()
		if forced {
			// After a failed refresh the next one is allowed after failBackoff (the OP
			// may be back); after a successful one, after JWKSRefreshInterval.
			next := is.forcedAt.Add(a.cfg.JWKSRefreshInterval.D())
			if is.forcedErr != nil {
				next = is.forcedErrAt.Add(failBackoff)
			}
			if !is.forcedAt.IsZero() && now.Before(next) {
				err := is.forcedErr
				is.kmu.Unlock()
				if err == nil {
					err = &UnavailableError{Issuer: is.id, Endpoint: "jwks", Err: errRateLimited, RetryAfter: next.Sub(now)}
				}
				return is.keys.Load(), false, err
			}
			is.forcedAt = now
			clear(is.missed)
		} else {
			if idx := is.keys.Load(); idx != nil {
				is.kmu.Unlock()
				return idx, false, nil
			}
			if is.initErr != nil && now.Sub(is.initErrAt) < failBackoff {
				err := is.initErr
				is.kmu.Unlock()
				return nil, false, err
			}
		}
		is.keyFlight = is.flightKey("jwks")
	}
	// Only the caller that set keyFlight starts the flight (its forced decides what is
	// recorded); the others join it.
	parent := trace.SpanContextFromContext(ctx) // used only if this call starts the flight
	ch := is.flights.DoChan(is.keyFlight, func() (any, error) {
		err := is.refreshJWKS(d.jwksURI, parent)
		idx := is.keys.Load()
		if err == nil && idx == nil {
			err = is.unavailable("jwks", errors.New("no usable keys"))
		}
		is.kmu.Lock()
		is.keyFlight = ""
		if forced {
			is.forcedErr, is.forcedErrAt = err, a.now()
		} else if err != nil {
			is.initErr, is.initErrAt = err, a.now()
		}
		is.kmu.Unlock()
		return idx, err
	})
	is.kmu.Unlock()
	idx, err = await[*keyIndex](ctx, ch, func(err error) error { return is.unavailable("jwks", err) })
	return idx, true, err
}

// refreshJWKS registers the JWKS URL with the jwk.Cache (first time) and fetches it now.
// On success the PostFetcher has stored the new key index. parent is the span context
// of the check that asked (for tracing; best effort when two issuers share a jwks_uri
// and refresh it at once).
func (is *issuer) refreshJWKS(jwksURI string, parent trace.SpanContext) error {
	a := is.a
	a.jwksMu.Lock()
	owners, registered := a.jwksOwners[jwksURI]
	mine := false
	for _, o := range owners {
		mine = mine || o == is
	}
	if !mine {
		a.jwksOwners[jwksURI] = append(owners, is)
	}
	var err error
	if !registered {
		err = a.jwks.Register(jwksURI,
			jwk.WithHTTPClient(jwksFetcher{a: a, issuer: is.id}),
			jwk.WithIgnoreParseError(true),
			jwk.WithRefreshInterval(jwksBackgroundRefresh),
			jwk.WithPostFetcher(jwk.PostFetchFunc(a.postFetch)),
		)
	}
	if err == nil && parent.IsValid() {
		a.jwksParent[jwksURI] = parent
		defer func() {
			a.jwksMu.Lock()
			delete(a.jwksParent, jwksURI)
			a.jwksMu.Unlock()
		}()
	}
	a.jwksMu.Unlock()
	if err != nil {
		return is.unavailable("jwks", err)
	}
	ctx, cancel := context.WithTimeout(a.baseCtx, a.cfg.HTTPTimeout.D()+time.Second)
	defer cancel()
	if _, err := a.jwks.Refresh(ctx, jwksURI); err != nil {
		a.obs.JWKSRefresh(is.id, err)
		return is.unavailable("jwks", err)
	}
	return nil
}

// postFetch runs after every successful JWKS fetch (first, forced or background) and
// publishes the new key index to every issuer using that URL.
func (a *Authorizer) postFetch(u string, set jwk.Set) (jwk.Set, error) {
	idx := buildIndex(set)
	a.jwksMu.Lock()
	owners := a.jwksOwners[u]
	a.jwksMu.Unlock()
	idx.fetchedAt = a.now()
	for _, is := range owners {
		if len(idx.all) > 0 {
			is.keys.Store(idx.withWithdrawn(is.keys.Load()))
		}
		a.obs.JWKSRefresh(is.id, nil)
	}
	return set, nil
}

// jwksFetcher is the jwk.Cache's HTTP client: it bounds the request with HTTPTimeout,
// reports it to the Observer, limits the body to MaxResponseSize and turns non-200
// replies into errors.
type jwksFetcher struct {
	a      *Authorizer
	issuer string
}

func (f jwksFetcher) Get(u string) (*http.Response, error) {
	base := f.a.baseCtx
	if f.a.traced {
		f.a.jwksMu.Lock()
		base = withParent(base, f.a.jwksParent[u])
		f.a.jwksMu.Unlock()
	}
	ctx, cancel := context.WithTimeout(base, f.a.cfg.HTTPTimeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	status, body, hdr, err := f.a.send(req, f.issuer, "jwks")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("jwks: status %d", status)
	}
	return &http.Response{
		Status:     "200 OK",
		StatusCode: http.StatusOK,
		Header:     hdr,
		Body:       io.NopCloser(bytes.NewReader(body)),
		Request:    req,
	}, nil
}

// --- HTTP ---

var errTooLarge = fmt.Errorf("response larger than %d bytes", MaxResponseSize)

// send performs req, reports it to the Observer and reads at most MaxResponseSize bytes
// of the body. err is set for transport errors and oversized or unreadable bodies.
func (a *Authorizer) send(req *http.Request, issuer, endpoint string) (int, []byte, http.Header, error) {
	if a.traced {
		req = req.WithContext(context.WithValue(req.Context(), opCallKey{}, opCall{issuer, endpoint}))
	}
	start := time.Now() // measurement only: the injected clock may stand still in tests
	res, err := a.client.Do(req)
	if err != nil {
		a.obs.OPRequest(issuer, endpoint, 0, time.Since(start))
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseSize+1))
	a.obs.OPRequest(issuer, endpoint, res.StatusCode, time.Since(start))
	if err != nil {
		return res.StatusCode, nil, nil, fmt.Errorf("reading response: %w", err)
	}
	if len(body) > MaxResponseSize {
		return res.StatusCode, nil, nil, errTooLarge
	}
	return res.StatusCode, body, res.Header, nil
}

// newHTTPClient builds the Authorizer's OP client with resilience.NewClient, the one
// constructor of an OP client: TLS 1.2+, the system roots plus CAFile, and
// InsecureSkipTLSVerify if (dangerously) configured, over base (nil: a clone of
// http.DefaultTransport; WithTransport sets it), wrapped by wrap if set
// (WithTransportWrap).
//
// Per OP host at most Breaker.MaxConcurrent requests are in flight, and a circuit
// breaker fails fast (→ 503) after Breaker.FailureThreshold consecutive failures
// (transport errors, 5xx, 429, and broken replies: over MaxResponseSize, or a 200 that
// is not JSON although JSON was asked for) and lets one probe through after
// Breaker.OpenDuration. Redirects to another host are never followed.
func newHTTPClient(cfg Config, base http.RoundTripper, wrap func(http.RoundTripper) http.RoundTripper, now func() time.Time, log *slog.Logger) (*http.Client, *resilience.Transport, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("authz: ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("authz: ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.InsecureSkipTLSVerify {
		tc.InsecureSkipVerify = true //nolint:gosec // documented: MUST NOT be used in production
	}
	b := cfg.Breaker
	c, tr := resilience.NewClient(resilience.ClientConfig{TLS: tc, Base: base, Wrap: wrap},
		resilience.WithClock(now), resilience.WithMaxBodyBytes(MaxResponseSize),
		resilience.WithFailureThreshold(b.FailureThreshold), resilience.WithOpenDuration(b.OpenDuration.D()),
		resilience.WithMaxConcurrent(b.MaxConcurrent), resilience.WithMaxRetryAfter(b.MaxRetryAfter.D()),
		resilience.WithStateChange(func(host string, from, to resilience.State) {
			log.Warn("authz: OP circuit breaker changed state", slog.String("host", host),
				slog.String("from", from.String()), slog.String("to", to.String()))
		}))
	return c, tr, nil
}
