package envoy

import (
	"context"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.opentelemetry.io/otel/trace"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// Headers every gRPC denial carries; shared by all denials, never modified.
var (
	contentTypeJSON = headerOption("content-type", "application/json")
	cacheNoStore    = headerOption("cache-control", "no-store")
)

// denyMemoSlots bounds the memo of denial answers (a power of two).
const denyMemoSlots = 256

// denyKey is everything a gRPC denial answer depends on, apart from the snapshot's
// realm: outcome, whether a credential was sent, and the client-facing description.
// Denials that name scopes (insufficient_scope with scope="…") are not memoised.
type denyKey struct {
	outcome   authz.Outcome
	tokenSent bool
	dpop      bool // a DPoP challenge
	desc      string
	retry     string // Retry-After value, "" for none
}

type denyEntry struct {
	key  denyKey
	resp *authv3.CheckResponse
}

// denyMemo keeps recent denial answers: a flood of one bad token (or of requests without
// one) is answered with one prebuilt, shared message instead of a new challenge, body
// and headers each time. Direct-mapped and lock-free like allowMemo; per snapshot.
type denyMemo struct {
	seed  maphash.Seed
	slots [denyMemoSlots]atomic.Pointer[denyEntry]
}

func newDenyMemo() *denyMemo { return &denyMemo{seed: maphash.MakeSeed()} }

// denied builds (or reuses) the CheckResponse for a denial. The result may be shared:
// callers must not modify it.
func (v *snapshot) denied(d *authz.Decision, tokenSent bool) *authv3.CheckResponse {
	row := ResponseFor(d.Outcome)
	desc := description(d)
	scopes := d.Policy.Scopes
	if row.Challenge != "insufficient_scope" {
		scopes = nil // not part of the answer
	}
	algs := v.dpopChallenge(row, d)
	retry := retryAfter(d)
	if len(scopes) > 0 {
		return v.buildDenied(d.Outcome, row, tokenSent, desc, scopes, algs, retry)
	}
	k := denyKey{outcome: d.Outcome, tokenSent: tokenSent, dpop: algs != "", desc: desc, retry: retry}
	h := maphash.String(v.deny.seed, desc) ^ maphash.String(v.deny.seed, retry)<<1 ^ uint64(d.Outcome)<<2
	if tokenSent {
		h ^= 1
	}
	if k.dpop {
		h ^= 2
	}
	slot := &v.deny.slots[h&(denyMemoSlots-1)]
	if e := slot.Load(); e != nil && e.key == k {
		return e.resp
	}
	resp := v.buildDenied(d.Outcome, row, tokenSent, desc, nil, algs, retry)
	v.wire.put(resp)
	if old := slot.Swap(&denyEntry{key: k, resp: resp}); old != nil {
		v.wire.drop(old.resp)
	}
	return resp
}

func (v *snapshot) buildDenied(o authz.Outcome, row Response, tokenSent bool, desc string, scopes []string, algs, retry string) *authv3.CheckResponse {
	hs := make([]*corev3.HeaderValueOption, 0, 4)
	if c := challenge(v.cfg.Realm, row, tokenSent, desc, scopes, algs); c != "" {
		hs = append(hs, headerOption("www-authenticate", c))
	}
	if retry != "" {
		hs = append(hs, headerOption("retry-after", retry))
	}
	hs = append(hs, contentTypeJSON, cacheNoStore)
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(row.Code), Message: o.String()},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(row.HTTPStatus)},
			Headers: hs,
			Body:    jsonBody(row.Error, desc),
		}},
	}
}

// retryAfter is the Retry-After value (whole seconds, at least 1) of an OP-outage
// denial that knows when asking again helps; "" otherwise.
func retryAfter(d *authz.Decision) string {
	if d.Outcome != authz.OutcomeUnavailable || d.RetryAfter <= 0 {
		return ""
	}
	return strconv.FormatInt(int64((d.RetryAfter+time.Second-1)/time.Second), 10)
}

// ---- sampled denial logging ----------------------------------------------------------

// denySamplerSlots bounds the state of sampled denial logging (a power of two).
const denySamplerSlots = 1024

// denySampler decides which denial lines to write when the deny log interval is > 0
// (Config.DenyLogInterval; by default 10s):
// the first denial of a token hash (with one outcome, route and reason) is logged; the
// identical ones within the interval after it are counted, not logged; the first one
// after the interval is logged with the count ("suppressed"). The state is a fixed
// table of slots, so a flood of distinct tokens costs no memory: when another token
// takes over a slot that has unreported suppressed lines, a summary line for the old
// token reports them.
type denySampler struct {
	interval time.Duration
	seed     maphash.Seed
	slots    [denySamplerSlots]sampleSlot
}

type sampleSlot struct {
	mu         sync.Mutex
	key        sampleKey
	until      time.Time // identical denials before this are suppressed
	suppressed int
}

type sampleKey struct {
	tokenHash, route, reason string
	outcome                  authz.Outcome
}

// denyLogInterval is DenyLogInterval's duration; the default when it is absent.
func (c Config) denyLogInterval() time.Duration {
	if c.DenyLogInterval == nil {
		return DefaultDenyLogInterval
	}
	return c.DenyLogInterval.D()
}

func newDenySampler(interval time.Duration) *denySampler {
	if interval <= 0 {
		return nil
	}
	return &denySampler{interval: interval, seed: maphash.MakeSeed()}
}

// slot is the state of a token hash (shared with the others that hash alike).
func (s *denySampler) slot(tokenHash string) *sampleSlot {
	return &s.slots[maphash.String(s.seed, tokenHash)&(denySamplerSlots-1)]
}

// admit reports whether the denial d, at now, is to be logged, and how many identical
// lines were suppressed before it. evicted is non-zero when another token's
// unreported suppressed lines were dropped from the slot (ek says whose).
func (s *denySampler) admit(now time.Time, d *authz.Decision) (log bool, suppressed int, ek sampleKey, evicted int) {
	k := sampleKey{tokenHash: d.TokenHash, route: d.Route, reason: d.Reason, outcome: d.Outcome}
	sl := s.slot(d.TokenHash)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.key == k && now.Before(sl.until) {
		sl.suppressed++
		return false, 0, sampleKey{}, 0
	}
	if sl.key == k {
		suppressed = sl.suppressed
	} else if sl.suppressed > 0 {
		ek, evicted = sl.key, sl.suppressed
	}
	sl.key, sl.until, sl.suppressed = k, now.Add(s.interval), 0
	return true, suppressed, ek, evicted
}

// logDecision writes one line: allows at debug, denials at the configured level
// (sampled per token unless DenyLogInterval is 0), OP outages at warn. Nothing is
// formatted when the level is off. Never logs the token.
func (s *Server) logDecision(ctx context.Context, v *snapshot, r *authz.Request, d *authz.Decision, transport string) {
	lvl := slog.LevelDebug
	switch d.Outcome {
	case authz.OutcomeAllow, authz.OutcomeCancelled: // a caller that gave up is no outage
	case authz.OutcomeUnavailable:
		lvl = slog.LevelWarn
	default:
		lvl = v.denyLvl
	}
	if !s.log.Enabled(ctx, lvl) {
		return
	}
	suppressed := -1 // not sampled
	if v.sampler != nil && d.Outcome != authz.OutcomeAllow && d.Outcome != authz.OutcomeUnavailable && d.Outcome != authz.OutcomeCancelled && d.TokenHash != "" {
		ok, n, ek, evicted := v.sampler.admit(s.now(), d)
		if evicted > 0 {
			s.log.LogAttrs(ctx, lvl, "denials suppressed",
				slog.String("token_hash", ek.tokenHash), slog.String("outcome", ek.outcome.String()),
				slog.String("route", ek.route), slog.String("reason", ek.reason), slog.Int("suppressed", evicted))
		}
		if !ok {
			return
		}
		suppressed = n
	}
	sub := ""
	if d.Identity != nil {
		sub = d.Identity.Subject()
	}
	path := logPath(r.Path)
	var buf [14]slog.Attr
	attrs := append(buf[:0],
		slog.String("request_id", r.RequestID),
		slog.String("transport", transport),
		slog.String("outcome", d.Outcome.String()),
		slog.String("route", d.Route),
		slog.String("reason", d.Reason),
		slog.String("token_hash", d.TokenHash),
		slog.String("sub", sub),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", path),
		slog.Bool("cached", d.Cached),
	)
	if d.Err != nil {
		attrs = append(attrs, slog.String("error", d.Err.Error()))
	}
	if suppressed >= 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	if s.tracer != nil { // the log line names the trace it belongs to
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
		}
	}
	s.log.LogAttrs(ctx, lvl, "decision", attrs...)
}

// maxLogPath caps the path in decision lines.
const maxLogPath = 1 << 10

// logPath is the path as logged: without query and fragment (either may carry a secret,
// a token pasted into a URL included), at most maxLogPath bytes followed by
// "…(N bytes)" when longer, N being the length without query and fragment.
func logPath(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' || p[i] == '#' {
			p = p[:i]
			break
		}
	}
	if len(p) <= maxLogPath {
		return p
	}
	n := maxLogPath
	for n > 0 && !utf8.RuneStart(p[n]) {
		n--
	}
	return p[:n] + "…(" + strconv.Itoa(len(p)) + " bytes)"
}
