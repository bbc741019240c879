package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/clocktest"
)

// clock is a manual clock.
type clock = clocktest.Clock

func newClock() *clock { return clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) }

// fake is a RoundTripper that answers with the next scripted reply (or reply func).
type fake struct {
	calls atomic.Int64
	reply func(req *http.Request) (*http.Response, error)
}

func (f *fake) RoundTrip(req *http.Request) (*http.Response, error) {
	f.calls.Add(1)
	return f.reply(req)
}

func status(code int, hdr ...string) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) {
		h := http.Header{}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Set(hdr[i], hdr[i+1])
		}
		return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
	}
}

func fail(err error) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) { return nil, err }
}

func get(t *testing.T, tr http.RoundTripper, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.RoundTrip(req)
	if res != nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return res, err
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	refused := &netOpError{syscall.ECONNREFUSED}
	cases := []struct {
		name  string
		reply func(*http.Request) (*http.Response, error)
	}{
		{"connection refused", fail(refused)},
		{"timeout", fail(context.DeadlineExceeded)},
		{"500", status(500)},
		{"502", status(502)},
		{"503", status(503)},
		{"429 without Retry-After", status(429)},
		{"429 with unusable Retry-After", status(429, "Retry-After", "soon")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			f := &fake{reply: tc.reply}
			var changes []string
			tr := New(f, WithClock(c.Now), WithFailureThreshold(3), WithOpenDuration(10*time.Second),
				WithStateChange(func(host string, from, to State) { changes = append(changes, host+":"+from.String()+"→"+to.String()) }))
			for i := 0; i < 3; i++ {
				if _, err := get(t, tr, "http://op.example/x"); errors.Is(err, ErrCircuitOpen) {
					t.Fatalf("request %d: breaker open before the threshold", i)
				}
			}
			_, err := get(t, tr, "http://op.example/x")
			var oe *openError
			if !errors.As(err, &oe) || !errors.Is(err, ErrCircuitOpen) {
				t.Fatalf("4th request: err = %v, want *openError", err)
			}
			if want := c.Now().Add(10 * time.Second); !oe.Until.Equal(want) || oe.Host != "op.example" {
				t.Errorf("openError = %+v, want host op.example until %v", oe, want)
			}
			if n := f.calls.Load(); n != 3 {
				t.Errorf("wrapped transport called %d times, want 3 (the 4th fails fast)", n)
			}
			// Another host is not affected.
			f.reply = status(200)
			if _, err := get(t, tr, "http://other.example/x"); err != nil {
				t.Errorf("other host: %v", err)
			}
			st := tr.Stats()["op.example"]
			if st.State != Open || st.Failures != 3 || st.RejectedOpen != 1 || st.Opened != 1 || st.Requests != 4 {
				t.Errorf("stats = %+v", st)
			}
			if got := strings.Join(changes, ","); got != "op.example:closed→open" {
				t.Errorf("state changes = %q", got)
			}
		})
	}
}

type netOpError struct{ err error }

func (e *netOpError) Error() string { return "dial tcp: " + e.err.Error() }
func (e *netOpError) Unwrap() error { return e.err }

func TestSuccessResetsCount(t *testing.T) {
	c := newClock()
	f := &fake{}
	tr := New(f, WithClock(c.Now), WithFailureThreshold(3))
	seq := []int{500, 500, 404, 500, 500, 200, 500, 500, 401, 500, 500}
	for i, code := range seq {
		f.reply = status(code)
		if _, err := get(t, tr, "http://op.example/"); err != nil {
			t.Fatalf("request %d (%d): %v", i, code, err)
		}
	}
	if st := tr.Stats()["op.example"]; st.State != Closed || st.Failures != 8 || st.Successes != 3 {
		t.Errorf("stats = %+v, want closed with 8 failures and 3 successes", st)
	}
}

func TestHalfOpenProbe(t *testing.T) {
	for _, probeOK := range []bool{true, false} {
		t.Run(fmt.Sprintf("probe succeeds=%v", probeOK), func(t *testing.T) {
			c := newClock()
			gate := make(chan struct{})
			entered := make(chan struct{}, 1)
			f := &fake{reply: status(503)}
			tr := New(f, WithClock(c.Now), WithFailureThreshold(2), WithOpenDuration(30*time.Second))
			get(t, tr, "http://op.example/")
			get(t, tr, "http://op.example/")
			c.Advance(29 * time.Second)
			if _, err := get(t, tr, "http://op.example/"); !errors.Is(err, ErrCircuitOpen) {
				t.Fatalf("before the open period ended: err = %v, want open", err)
			}
			c.Advance(time.Second)
			code := 200
			if !probeOK {
				code = 500
			}
			f.reply = func(req *http.Request) (*http.Response, error) {
				entered <- struct{}{}
				<-gate
				return status(code)(req)
			}
			done := make(chan error)
			go func() {
				_, err := get(t, tr, "http://op.example/")
				done <- err
			}()
			<-entered // the probe is in flight
			if st := tr.Stats()["op.example"]; st.State != HalfOpen || st.Probes != 1 {
				t.Fatalf("during probe: %+v", st)
			}
			if _, err := get(t, tr, "http://op.example/"); !errors.Is(err, ErrCircuitOpen) {
				t.Fatalf("second request during the probe: err = %v, want fail fast", err)
			}
			close(gate)
			if err := <-done; err != nil {
				t.Fatalf("probe: %v", err)
			}
			st := tr.Stats()["op.example"]
			if probeOK {
				if st.State != Closed {
					t.Fatalf("after a good probe: %+v, want closed", st)
				}
				f.reply = status(200)
				if _, err := get(t, tr, "http://op.example/"); err != nil {
					t.Errorf("after close: %v", err)
				}
				return
			}
			if st.State != Open || !st.OpenUntil.Equal(c.Now().Add(30*time.Second)) || st.Opened != 2 {
				t.Fatalf("after a bad probe: %+v, want open for another 30s", st)
			}
			if _, err := get(t, tr, "http://op.example/"); !errors.Is(err, ErrCircuitOpen) {
				t.Errorf("after a bad probe: err = %v, want open", err)
			}
		})
	}
}

func TestRetryAfterKeepsBreakerOpen(t *testing.T) {
	base := newClock().Now()
	cases := []struct {
		name       string
		retryAfter string
		wantOpen   time.Duration // 0: not opened by one 429
	}{
		{"seconds beyond open duration", "120", 120 * time.Second},
		{"seconds below open duration", "3", 10 * time.Second},
		{"http date", base.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"capped", "999999999999", 5 * time.Minute},
		{"date in the past", base.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"garbage", "tomorrow", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			f := &fake{reply: status(429, "Retry-After", tc.retryAfter)}
			tr := New(f, WithClock(c.Now), WithFailureThreshold(5), WithOpenDuration(10*time.Second))
			get(t, tr, "http://op.example/")
			st := tr.Stats()["op.example"]
			if tc.wantOpen == 0 {
				if st.State != Closed {
					t.Fatalf("one 429 with Retry-After %q opened the breaker: %+v", tc.retryAfter, st)
				}
				return
			}
			if st.State != Open || !st.OpenUntil.Equal(c.Now().Add(tc.wantOpen)) {
				t.Fatalf("stats = %+v, want open until +%v", st, tc.wantOpen)
			}
			c.Advance(tc.wantOpen - time.Second)
			if _, err := get(t, tr, "http://op.example/"); !errors.Is(err, ErrCircuitOpen) {
				t.Fatalf("1s before Retry-After ends: err = %v", err)
			}
			c.Advance(time.Second)
			f.reply = status(200)
			if _, err := get(t, tr, "http://op.example/"); err != nil {
				t.Fatalf("after Retry-After: %v", err)
			}
			if n := f.calls.Load(); n != 2 {
				t.Errorf("OP called %d times, want 2", n)
			}
		})
	}
}

func TestCallerCancellationIsNotAFailure(t *testing.T) {
	c := newClock()
	f := &fake{reply: fail(context.Canceled)}
	tr := New(f, WithClock(c.Now), WithFailureThreshold(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://op.example/", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if st := tr.Stats()["op.example"]; st.State != Closed || st.Failures != 0 {
		t.Errorf("stats = %+v, want closed without failures", st)
	}
}

func TestCancelledProbeFreesSlot(t *testing.T) {
	c := newClock()
	f := &fake{reply: status(500)}
	tr := New(f, WithClock(c.Now), WithFailureThreshold(1), WithOpenDuration(time.Second))
	get(t, tr, "http://op.example/")
	c.Advance(time.Second)
	f.reply = fail(context.Canceled)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://op.example/", nil)
	// The caller's context is already over: the probe waits for nothing and is dropped.
	_, _ = tr.RoundTrip(req)
	f.reply = status(200)
	if _, err := get(t, tr, "http://op.example/"); err != nil {
		t.Fatalf("next probe: %v (a cancelled probe must not block the breaker)", err)
	}
	if st := tr.Stats()["op.example"]; st.State != Closed {
		t.Errorf("stats = %+v", st)
	}
}

// waitFor spins (yielding) until cond holds; bounded so a bug fails instead of hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func TestConcurrencyLimit(t *testing.T) {
	gate := make(chan struct{})
	var inside, maxInside atomic.Int64
	f := &fake{reply: func(req *http.Request) (*http.Response, error) {
		n := inside.Add(1)
		for {
			m := maxInside.Load()
			if n <= m || maxInside.CompareAndSwap(m, n) {
				break
			}
		}
		if req.URL.Host == "op.example" {
			<-gate
		}
		inside.Add(-1)
		return status(200)(req)
	}}
	tr := New(f, WithMaxConcurrent(2))

	// Two requests hold both slots (their bodies stay open until we close them).
	type held struct {
		res *http.Response
		err error
	}
	heldC := make(chan held, 2)
	for i := 0; i < 2; i++ {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, "http://op.example/", nil)
			res, err := tr.RoundTrip(req)
			heldC <- held{res, err}
		}()
	}
	waitFor(t, "two requests in flight", func() bool { return tr.Stats()["op.example"].InFlight == 2 })

	// A third with an already-expired deadline fails fast.
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://op.example/", nil)
	_, err := tr.RoundTrip(req)
	var se *saturatedError
	if !errors.As(err, &se) || !errors.Is(err, ErrSaturated) || !errors.Is(err, context.DeadlineExceeded) || se.Limit != 2 {
		t.Fatalf("expired deadline: err = %v, want *saturatedError wrapping DeadlineExceeded", err)
	}

	// A fourth waits until its context ends.
	ctx4, cancel4 := context.WithCancel(context.Background())
	errC := make(chan error)
	go func() {
		req, _ := http.NewRequestWithContext(ctx4, http.MethodGet, "http://op.example/", nil)
		_, err := tr.RoundTrip(req)
		errC <- err
	}()
	waitFor(t, "a waiter", func() bool { return tr.Stats()["op.example"].Waiting == 1 })
	// Other hosts have their own slots.
	if _, err := get(t, tr, "http://other.example/"); err != nil {
		t.Fatalf("other host: %v", err)
	}
	cancel4()
	if err := <-errC; !errors.Is(err, ErrSaturated) || !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter: err = %v", err)
	}

	// Release: the held requests complete; closing their bodies frees the slots.
	close(gate)
	for i := 0; i < 2; i++ {
		h := <-heldC
		if h.err != nil {
			t.Fatal(h.err)
		}
		if tr.Stats()["op.example"].InFlight == 0 {
			t.Fatal("slot freed before the body was closed")
		}
		h.res.Body.Close()
		h.res.Body.Close() // idempotent
	}
	if st := tr.Stats()["op.example"]; st.InFlight != 0 || st.Waiting != 0 || st.RejectedSaturated != 2 {
		t.Errorf("stats = %+v", st)
	}
	if _, err := get(t, tr, "http://op.example/"); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if maxInside.Load() > 3 { // 2 on op.example + 1 on other.example
		t.Errorf("max concurrent = %d", maxInside.Load())
	}
	if f.calls.Load() != 4 {
		t.Errorf("wrapped transport calls = %d, want 4", f.calls.Load())
	}
}

func TestBodyEOFReleasesSlot(t *testing.T) {
	f := &fake{reply: status(200)}
	tr := New(f, WithMaxConcurrent(1))
	req, _ := http.NewRequest(http.MethodGet, "http://op.example/", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err != nil { // read to EOF, not closed
		t.Fatal(err)
	}
	if st := tr.Stats()["op.example"]; st.InFlight != 0 {
		t.Fatalf("in flight after EOF: %d", st.InFlight)
	}
	res.Body.Close()
}

func TestBodyLimit(t *testing.T) {
	cases := []struct {
		name    string
		size    int
		limit   int64
		wantErr bool
	}{
		{"below", 99, 100, false},
		{"exact", 100, 100, false},
		{"one over", 101, 100, true},
		{"10 MiB", 10 << 20, 1 << 20, true},
		{"no limit", 5000, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{reply: func(req *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(strings.Repeat("x", tc.size)))}, nil
			}}
			tr := New(f, WithMaxBodyBytes(tc.limit), WithMaxConcurrent(1))
			req, _ := http.NewRequest(http.MethodGet, "http://op.example/", nil)
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if got := errors.Is(err, ErrBodyTooLarge); got != tc.wantErr {
				t.Fatalf("err = %v, want too-large %v", err, tc.wantErr)
			}
			if tc.limit > 0 && int64(len(b)) > tc.limit {
				t.Errorf("read %d bytes past the limit %d", len(b), tc.limit)
			}
			if !tc.wantErr && len(b) != tc.size {
				t.Errorf("read %d bytes, want %d", len(b), tc.size)
			}
			if tr.Stats()["op.example"].InFlight != 0 {
				t.Error("slot not released")
			}
		})
	}
}

// TestConcurrentMixed hammers one host from many goroutines (run with -race): the
// in-flight count never exceeds the limit and the counters add up.
func TestConcurrentMixed(t *testing.T) {
	c := newClock()
	var inside, over atomic.Int64
	var n atomic.Int64
	f := &fake{reply: func(req *http.Request) (*http.Response, error) {
		if inside.Add(1) > 4 {
			over.Add(1)
		}
		defer inside.Add(-1)
		switch n.Add(1) % 7 {
		case 0:
			return nil, context.DeadlineExceeded
		case 3:
			return status(503)(req)
		}
		return status(200)(req)
	}}
	tr := New(f, WithClock(c.Now), WithMaxConcurrent(4), WithFailureThreshold(2), WithOpenDuration(time.Second))
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				get(t, tr, "http://op.example/")
				if i%50 == 0 {
					c.Advance(time.Second)
				}
			}
		}()
	}
	wg.Wait()
	if over.Load() != 0 {
		t.Errorf("limit exceeded %d times", over.Load())
	}
	st := Totals(tr.Stats())
	if st.Requests != 16*200 || st.Successes+st.Failures+st.RejectedOpen+st.RejectedSaturated != st.Requests {
		t.Errorf("counters do not add up: %+v", st)
	}
	if st.InFlight != 0 || st.Waiting != 0 {
		t.Errorf("gauges not back to 0: %+v", st)
	}
	t.Logf("mixed: %+v", st)
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "1", "120", "-1", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", " 5 "} {
		f.Add(s)
	}
	tr := New(nil, WithMaxRetryAfter(time.Minute), WithClock(newClock().Now))
	f.Fuzz(func(t *testing.T, v string) {
		d := tr.retryAfter(v)
		if d < 0 || d > time.Minute {
			t.Fatalf("retryAfter(%q) = %v", v, d)
		}
	})
}

// TestBrokenRepliesCountAsFailures: with a body limit, a reply that the status alone
// would call a success but that is no usable reply (HTML or truncated JSON where JSON
// was asked for, an empty 200, a body over the limit, a body that breaks off) is a
// breaker failure; the caller still gets the body it would have read. Real OP replies
// come from an httptest server.
func TestBrokenRepliesCountAsFailures(t *testing.T) {
	const limit = 1 << 10
	cases := []struct {
		name   string
		accept string
		status int
		body   string
		// hijack drops the connection after the headers and part of the body.
		hijack  bool
		failure bool
		// readErr: reading the body (or RoundTrip) fails with this.
		readErr error
	}{
		{name: "JSON object", accept: "application/json", status: 200, body: `{"sub":"a"}`},
		{name: "JSON with a jwk-set Accept", accept: "application/json, application/jwk-set+json", status: 200, body: `{"keys":[]}`},
		{name: "HTML page where JSON was asked", accept: "application/json", status: 200, body: "<html><body>Service Unavailable</body></html>", failure: true},
		{name: "truncated JSON", accept: "application/json", status: 200, body: `{"sub":"a","groups":[`, failure: true},
		{name: "empty 200", accept: "application/json", status: 200, body: "", failure: true},
		{name: "body over the limit", accept: "application/json", status: 200, body: `{"pad":"` + strings.Repeat("x", limit) + `"}`, failure: true, readErr: ErrBodyTooLarge},
		{name: "body over the limit, JSON not asked", status: 200, body: strings.Repeat("x", limit+1), failure: true, readErr: ErrBodyTooLarge},
		{name: "text where JSON was not asked", status: 200, body: "plain"},
		{name: "HTML 404 is an answer, not a broken OP", accept: "application/json", status: 404, body: "<html>not found</html>"},
		{name: "connection dropped mid-body", accept: "application/json", status: 200, body: `{"sub":"a"}`, hijack: true, failure: true, readErr: io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.hijack {
					c, buf, _ := w.(http.Hijacker).Hijack()
					fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n%s", tc.body)
					buf.Flush()
					c.Close()
					return
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			const threshold = 3
			tr := New(srv.Client().Transport, WithMaxBodyBytes(limit), WithFailureThreshold(threshold), WithClock(newClock().Now))
			host := strings.TrimPrefix(srv.URL, "http://")
			for i := 0; i < threshold; i++ {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/userinfo", nil)
				if tc.accept != "" {
					req.Header.Set("Accept", tc.accept)
				}
				res, err := tr.RoundTrip(req)
				var b []byte
				if err == nil {
					b, err = io.ReadAll(res.Body)
					res.Body.Close()
				}
				switch {
				case tc.readErr != nil:
					if !errors.Is(err, tc.readErr) {
						t.Fatalf("err = %v, want %v", err, tc.readErr)
					}
				case err != nil:
					t.Fatalf("err = %v", err)
				case string(b) != tc.body:
					t.Fatalf("caller read %q, server sent %q", b, tc.body)
				}
				if len(b) > limit {
					t.Fatalf("caller read %d bytes, limit %d", len(b), limit)
				}
			}
			st := tr.Stats()[host]
			if st.InFlight != 0 {
				t.Fatalf("slot not released: %+v", st)
			}
			if tc.failure {
				if st.Failures != threshold || st.State != Open {
					t.Fatalf("stats %+v: want %d failures and an open breaker", st, threshold)
				}
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/userinfo", nil)
				if _, err := tr.RoundTrip(req); !errors.Is(err, ErrCircuitOpen) {
					t.Fatalf("after %d broken replies: err = %v, want ErrCircuitOpen", threshold, err)
				}
				return
			}
			if st.Failures != 0 || st.Successes != threshold || st.State != Closed {
				t.Fatalf("stats %+v: want only successes", st)
			}
		})
	}
}

// TestBrokenReplyProbe: a half-open probe answered with garbage re-opens the breaker;
// one answered with JSON closes it.
func TestBrokenReplyProbe(t *testing.T) {
	var body atomic.Value
	body.Store("<html>")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body.Load().(string))
	}))
	defer srv.Close()
	clk := newClock()
	tr := New(srv.Client().Transport, WithMaxBodyBytes(1<<10), WithFailureThreshold(1), WithOpenDuration(time.Minute), WithClock(clk.Now))
	host := strings.TrimPrefix(srv.URL, "http://")
	send := func() error {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Accept", "application/json")
		res, err := tr.RoundTrip(req)
		if err == nil {
			res.Body.Close()
		}
		return err
	}
	if err := send(); err != nil || tr.Stats()[host].State != Open {
		t.Fatalf("garbage: %v, %+v", err, tr.Stats()[host])
	}
	clk.Advance(time.Minute)
	if err := send(); err != nil || tr.Stats()[host].State != Open || tr.Stats()[host].Probes != 1 {
		t.Fatalf("garbage probe: %v, %+v (want open again)", err, tr.Stats()[host])
	}
	body.Store(`{"ok":true}`)
	clk.Advance(time.Minute)
	if err := send(); err != nil || tr.Stats()[host].State != Closed {
		t.Fatalf("JSON probe: %v, %+v (want closed)", err, tr.Stats()[host])
	}
}
