// Package resilience protects flaat-extauthz and its OPs from each other on the way out:
// an http.RoundTripper wrapper (Transport) that gives every OP host a bounded number of
// concurrent requests and a circuit breaker, and NewClient, an *http.Client with sane
// timeouts, a response-size limit and a redirect policy that never leaves the original
// host.
//
// authz.New builds every Authorizer's OP client with NewClient, its limits from the
// `verification.breaker` configuration (authz.BreakerConfig); the server exports the
// breaker state with NewCollector.
//
// The Transport never follows redirects (an http.RoundTripper does not) and never
// retries: a failed request fails, quickly, with a typed error; the caller (authz)
// turns that into a 503, never into an allow.
package resilience

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Transport.
const (
	// DefaultMaxConcurrent is the default number of requests in flight per host.
	DefaultMaxConcurrent = 16
	// DefaultFailureThreshold is the default number of consecutive failures after which
	// a host's breaker opens.
	DefaultFailureThreshold = 5
	// DefaultOpenDuration is how long an open breaker fails fast before it lets one
	// probe request through (half-open).
	DefaultOpenDuration = 10 * time.Second
	// DefaultMaxRetryAfter caps how long a Retry-After header keeps a breaker open.
	DefaultMaxRetryAfter = 5 * time.Minute
)

// Sentinel errors. Every error the Transport makes up itself (rather than passing on
// from the wrapped RoundTripper) wraps one of them.
var (
	// ErrCircuitOpen: the host's breaker is open (or half-open with its one probe in
	// flight); the request was not sent.
	ErrCircuitOpen = errors.New("resilience: circuit open")
	// ErrSaturated: the host's concurrency limit was reached and the request's context
	// ended before a slot became free; the request was not sent.
	ErrSaturated = errors.New("resilience: too many concurrent requests")
	// ErrBodyTooLarge: a response body was longer than the configured limit.
	ErrBodyTooLarge = errors.New("resilience: response body too large")
)

// openError is returned while a host's breaker is open. It wraps ErrCircuitOpen.
type openError struct {
	Host string
	// Until is when the breaker will let a probe through (per the injected clock).
	Until time.Time
}

func (e *openError) Error() string {
	return fmt.Sprintf("resilience: circuit open for %s until %s", e.Host, e.Until.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrCircuitOpen) hold.
func (e *openError) Unwrap() error { return ErrCircuitOpen }

// saturatedError is returned when a request waited for a concurrency slot until its
// context ended. It wraps ErrSaturated and the context's error.
type saturatedError struct {
	Host  string
	Limit int
	Err   error // ctx.Err()
}

func (e *saturatedError) Error() string {
	return fmt.Sprintf("resilience: %d requests to %s already in flight: %v", e.Limit, e.Host, e.Err)
}

// Unwrap makes errors.Is(err, ErrSaturated) and errors.Is(err, context.DeadlineExceeded) hold.
func (e *saturatedError) Unwrap() []error { return []error{ErrSaturated, e.Err} }

// State is the state of one host's circuit breaker.
type State int

// The states, numbered as the op_breaker_state metric reports them (and as
// sony/gobreaker numbers its own): the higher, the less gets through.
const (
	// Closed: requests flow; consecutive failures are counted.
	Closed State = iota
	// HalfOpen: the open period ended; the next request is sent as a probe, others
	// fail fast until its outcome is known.
	HalfOpen
	// Open: requests fail fast with *openError until the open period ends.
	Open
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Option configures a Transport.
type Option func(*Transport)

// WithMaxConcurrent bounds the requests in flight per host (a request is in flight from
// RoundTrip until its response body is closed or read to the end). Excess requests wait
// for a slot until their context ends, then fail with *saturatedError. n <= 0 keeps the
// default (DefaultMaxConcurrent).
func WithMaxConcurrent(n int) Option {
	return func(t *Transport) {
		if n > 0 {
			t.maxConc = n
		}
	}
}

// WithFailureThreshold sets how many consecutive failures (transport errors, timeouts,
// 5xx, 429, broken replies: see Transport) open a host's breaker. n <= 0 keeps the default (DefaultFailureThreshold).
func WithFailureThreshold(n int) Option {
	return func(t *Transport) {
		if n > 0 {
			t.threshold = n
		}
	}
}

// WithOpenDuration sets how long an open breaker fails fast before one probe is let
// through. d <= 0 keeps the default (DefaultOpenDuration).
func WithOpenDuration(d time.Duration) Option {
	return func(t *Transport) {
		if d > 0 {
			t.openFor = d
		}
	}
}

// WithMaxRetryAfter caps how long a 429's Retry-After keeps a breaker open, so that an
// OP (or anyone on the path) cannot switch verification off for days with one header.
// d <= 0 keeps the default (DefaultMaxRetryAfter).
func WithMaxRetryAfter(d time.Duration) Option {
	return func(t *Transport) {
		if d > 0 {
			t.maxRetryAfter = d
		}
	}
}

// WithClock sets the clock of the breaker (open periods, Retry-After dates). Default
// time.Now. Waiting for a concurrency slot uses the request context, not the clock.
func WithClock(now func() time.Time) Option {
	return func(t *Transport) {
		if now != nil {
			t.now = now
		}
	}
}

// WithMaxBodyBytes limits every response body: reading more than n bytes fails with an
// error wrapping ErrBodyTooLarge. It also lets the breaker judge reply bodies (see
// Transport): an oversized or (when JSON was asked for) non-JSON reply is a failure.
// n <= 0: no limit and no judging (the default; NewClient sets one).
func WithMaxBodyBytes(n int64) Option {
	return func(t *Transport) { t.maxBody = n }
}

// WithStateChange calls fn (synchronously, without locks held; keep it fast) whenever a
// host's breaker changes state, e.g. to log it.
func WithStateChange(fn func(host string, from, to State)) Option {
	return func(t *Transport) { t.onChange = fn }
}

// Transport is an http.RoundTripper that wraps another one with a per-host concurrency
// limit and a per-host circuit breaker. It is safe for concurrent use. It does not
// retry, does not follow redirects and does not change requests or responses (apart
// from the optional body limit). The host key is the request URL's host[:port],
// lower-cased.
//
// Failures are: errors of the wrapped RoundTripper (refused, reset, TLS, timeouts)
// except a cancellation by the caller (context.Canceled), responses with status 5xx or
// 429 and, when a body limit is set (WithMaxBodyBytes; NewClient sets one), broken
// replies: a body over the limit, a 200 whose body is not valid JSON although the
// request's Accept header asked for JSON (an HTML error page, truncated JSON), or a
// body that fails while being read. Everything else (including 4xx) is a success and
// resets the count. With a body limit, bodies of replies that are not 5xx or 429 are
// read within RoundTrip (holding the concurrency slot), judged, and handed to the
// caller from memory. A 429
// with a Retry-After header opens the breaker at once, for max(open duration,
// Retry-After) capped by WithMaxRetryAfter.
type Transport struct {
	next          http.RoundTripper
	maxConc       int
	threshold     int
	openFor       time.Duration
	maxRetryAfter time.Duration
	maxBody       int64
	now           func() time.Time
	onChange      func(host string, from, to State)

	mu    sync.Mutex
	hosts map[string]*hostState
}

// Compile-time guard.
var _ http.RoundTripper = (*Transport)(nil)

// hostState is the limiter and breaker of one host.
type hostState struct {
	sem chan struct{}

	// guarded by Transport.mu
	state     State
	failures  int       // consecutive
	openUntil time.Time // when Open: earliest probe time
	probing   bool      // HalfOpen: a probe is in flight

	requests, successes, failuresTotal, rejectedOpen, rejectedSaturated, opened, probes atomic.Int64
	inFlight, waiting                                                                   atomic.Int64
}

// New wraps next (nil: http.DefaultTransport) in a Transport.
func New(next http.RoundTripper, opts ...Option) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{
		next:          next,
		maxConc:       DefaultMaxConcurrent,
		threshold:     DefaultFailureThreshold,
		openFor:       DefaultOpenDuration,
		maxRetryAfter: DefaultMaxRetryAfter,
		now:           time.Now,
		hosts:         map[string]*hostState{},
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

func hostKey(req *http.Request) string {
	if req.URL == nil {
		return ""
	}
	return strings.ToLower(req.URL.Host)
}

func (t *Transport) host(key string) *hostState {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[key]
	if h == nil {
		h = &hostState{sem: make(chan struct{}, t.maxConc)}
		t.hosts[key] = h
	}
	return h
}

// RoundTrip sends req through the breaker and the concurrency limit of its host.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := hostKey(req)
	h := t.host(key)
	h.requests.Add(1)

	probe, err := t.admit(key, h)
	if err != nil {
		h.rejectedOpen.Add(1)
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	if err := h.acquire(ctx); err != nil {
		if probe {
			t.forgetProbe(h)
		}
		h.rejectedSaturated.Add(1)
		closeBody(req)
		return nil, &saturatedError{Host: key, Limit: t.maxConc, Err: err}
	}
	h.inFlight.Add(1)
	release := func() { h.inFlight.Add(-1); <-h.sem }

	res, err := t.next.RoundTrip(req)
	switch {
	case err != nil:
		release()
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			// The caller gave up (e.g. a parallel search found the token elsewhere):
			// says nothing about the OP.
			if probe {
				t.forgetProbe(h)
			}
			return nil, err
		}
		t.record(key, h, false, 0)
		return nil, err
	case res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests:
		var retry time.Duration
		if res.StatusCode == http.StatusTooManyRequests {
			retry = t.retryAfter(res.Header.Get("Retry-After"))
		}
		t.record(key, h, false, retry)
	case t.maxBody > 0:
		return t.judgeBody(req, res, key, h, probe, release)
	default:
		t.record(key, h, true, 0)
	}
	res.Body = t.wrapBody(res.Body, release)
	return res, nil
}

// judgeBody reads the body of a reply that the status alone would count as a success
// (with a body limit set) and counts it for the breaker only then: a body over the
// limit, a 200 that is not valid JSON although the request's Accept header asked for
// JSON (an HTML error page, a truncated document, garbage), and an error while reading
// the body are failures. The response is returned with the body read so far (up to the
// limit, then an error wrapping ErrBodyTooLarge), so the caller sees exactly what it
// would have read itself; a read error is returned as the RoundTrip error.
func (t *Transport) judgeBody(req *http.Request, res *http.Response, key string, h *hostState, probe bool, release func()) (*http.Response, error) {
	data, err := io.ReadAll(io.LimitReader(res.Body, t.maxBody+1))
	_ = res.Body.Close()
	release()
	if err != nil {
		if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
			if probe {
				t.forgetProbe(h)
			}
		} else {
			t.record(key, h, false, 0)
		}
		return nil, fmt.Errorf("resilience: reading the response body: %w", err)
	}
	rb := &readBody{r: bytes.NewReader(data)}
	ok := true
	switch {
	case int64(len(data)) > t.maxBody:
		rb.r, rb.err, ok = bytes.NewReader(data[:t.maxBody]), fmt.Errorf("%w (limit %d bytes)", ErrBodyTooLarge, t.maxBody), false
		res.ContentLength = -1
	case res.StatusCode == http.StatusOK && acceptsJSON(req) && !json.Valid(data):
		ok = false
	}
	t.record(key, h, ok, 0)
	res.Body = rb
	return res, nil
}

// acceptsJSON reports whether req asked for JSON (an Accept header mentioning "json").
func acceptsJSON(req *http.Request) bool {
	for _, v := range req.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "json") {
			return true
		}
	}
	return false
}

// readBody is a body already read by judgeBody: its bytes, then err (nil: io.EOF).
type readBody struct {
	r   *bytes.Reader
	err error
}

func (b *readBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && b.err != nil {
		return n, b.err
	}
	return n, err
}

func (b *readBody) Close() error { return nil }

// admit decides whether a request may be sent now; probe reports that it is the one
// half-open probe.
func (t *Transport) admit(key string, h *hostState) (probe bool, err error) {
	t.mu.Lock()
	from := h.state
	switch h.state {
	case Closed:
		t.mu.Unlock()
		return false, nil
	case Open:
		if t.now().Before(h.openUntil) {
			until := h.openUntil
			t.mu.Unlock()
			return false, &openError{Host: key, Until: until}
		}
		h.state = HalfOpen
	}
	// HalfOpen
	if h.probing {
		until := h.openUntil
		t.mu.Unlock()
		t.notify(key, from, HalfOpen)
		return false, &openError{Host: key, Until: until}
	}
	h.probing = true
	h.probes.Add(1)
	t.mu.Unlock()
	t.notify(key, from, HalfOpen)
	return true, nil
}

// forgetProbe frees the half-open probe slot when the probe never reached the OP.
func (t *Transport) forgetProbe(h *hostState) {
	t.mu.Lock()
	h.probing = false
	t.mu.Unlock()
}

// record counts one outcome and moves the breaker.
func (t *Transport) record(key string, h *hostState, ok bool, retryAfter time.Duration) {
	if ok {
		h.successes.Add(1)
	} else {
		h.failuresTotal.Add(1)
	}
	t.mu.Lock()
	from := h.state
	now := t.now()
	switch {
	case ok:
		h.failures = 0
		h.probing = false
		h.state = Closed
	default:
		h.failures++
		open := h.state == HalfOpen || h.failures >= t.threshold || retryAfter > 0
		// A failure reported by a request admitted before the breaker opened must not
		// shorten an open period already running.
		if open {
			d := t.openFor
			if retryAfter > d {
				d = retryAfter
			}
			if until := now.Add(d); until.After(h.openUntil) || h.state != Open {
				h.openUntil = until
			}
			if h.state != Open {
				h.opened.Add(1)
			}
			h.state = Open
			h.probing = false
		}
	}
	to := h.state
	t.mu.Unlock()
	t.notify(key, from, to)
}

func (t *Transport) notify(key string, from, to State) {
	if from != to && t.onChange != nil {
		t.onChange(key, from, to)
	}
}

// retryAfter parses a Retry-After value (seconds or an HTTP date) into a duration,
// capped by maxRetryAfter; 0 when absent or unusable.
func (t *Transport) retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(t.maxRetryAfter/time.Second) {
			return t.maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(t.now())
	} else {
		return 0
	}
	if d <= 0 {
		return 0
	}
	if d > t.maxRetryAfter {
		d = t.maxRetryAfter
	}
	return d
}

func (h *hostState) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// --- bodies ---

// body releases the concurrency slot once, on Close or at the end of the body, and
// enforces the size limit.
type body struct {
	rc      io.ReadCloser
	release func()
	once    sync.Once
	limit   int64 // <= 0: none
	read    int64
}

func (t *Transport) wrapBody(rc io.ReadCloser, release func()) io.ReadCloser {
	if rc == nil {
		rc = http.NoBody
	}
	return &body{rc: rc, release: release, limit: t.maxBody}
}

func (b *body) Read(p []byte) (int, error) {
	if b.limit > 0 {
		if b.read > b.limit {
			return 0, fmt.Errorf("%w (limit %d bytes)", ErrBodyTooLarge, b.limit)
		}
		if int64(len(p)) > b.limit+1-b.read {
			p = p[:b.limit+1-b.read]
		}
	}
	n, err := b.rc.Read(p)
	b.read += int64(n)
	if b.limit > 0 && b.read > b.limit {
		b.done()
		return n - int(b.read-b.limit), fmt.Errorf("%w (limit %d bytes)", ErrBodyTooLarge, b.limit)
	}
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *body) Close() error {
	b.done()
	return b.rc.Close()
}

func (b *body) done() { b.once.Do(b.release) }

// --- counters ---

// Stats are the counters of one host (or, from Totals, of all hosts). Counters only
// grow; InFlight and Waiting are gauges; State is the breaker state at the time of the
// call.
type Stats struct {
	Requests          int64 // RoundTrip calls
	Successes         int64 // responses that count as success
	Failures          int64 // transport errors (not caller cancellations), 5xx, 429, broken replies
	RejectedOpen      int64 // failed fast with *openError
	RejectedSaturated int64 // failed with *saturatedError
	Opened            int64 // times the breaker went to Open
	Probes            int64 // half-open probes sent
	InFlight          int64 // requests holding a slot now
	Waiting           int64 // requests waiting for a slot now
	State             State
	// OpenUntil is when an open breaker lets the next probe through (zero if closed).
	OpenUntil time.Time
}

// Stats returns the counters of every host seen so far, keyed by host[:port].
func (t *Transport) Stats() map[string]Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Stats, len(t.hosts))
	for k, h := range t.hosts {
		s := Stats{
			Requests:          h.requests.Load(),
			Successes:         h.successes.Load(),
			Failures:          h.failuresTotal.Load(),
			RejectedOpen:      h.rejectedOpen.Load(),
			RejectedSaturated: h.rejectedSaturated.Load(),
			Opened:            h.opened.Load(),
			Probes:            h.probes.Load(),
			InFlight:          h.inFlight.Load(),
			Waiting:           h.waiting.Load(),
			State:             h.state,
		}
		if h.state != Closed {
			s.OpenUntil = h.openUntil
		}
		out[k] = s
	}
	return out
}

// Totals sums the Stats of all hosts; State is the worst: Open if any host is open,
// else HalfOpen if any is half-open, else Closed.
func Totals(stats map[string]Stats) Stats {
	var sum Stats
	for _, s := range stats {
		sum.Requests += s.Requests
		sum.Successes += s.Successes
		sum.Failures += s.Failures
		sum.RejectedOpen += s.RejectedOpen
		sum.RejectedSaturated += s.RejectedSaturated
		sum.Opened += s.Opened
		sum.Probes += s.Probes
		sum.InFlight += s.InFlight
		sum.Waiting += s.Waiting
		sum.State = max(sum.State, s.State)
	}
	return sum
}

// CloseIdleConnections closes idle connections of the wrapped RoundTripper if it can.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
