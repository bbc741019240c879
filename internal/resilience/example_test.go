package resilience_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/internal/resilience"
)

// An OP that answers 503: after two failures the breaker opens and the third request
// fails fast without reaching the OP.
func ExampleNewClient() {
	hits := 0
	op := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer op.Close()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	client, tr := resilience.NewClient(resilience.ClientConfig{},
		resilience.WithFailureThreshold(2),
		resilience.WithOpenDuration(10*time.Second),
		resilience.WithClock(func() time.Time { return now }),
	)
	defer tr.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		res, err := client.Get(op.URL)
		switch {
		case errors.Is(err, resilience.ErrCircuitOpen):
			fmt.Println("fail fast: circuit open")
		case err != nil:
			fmt.Println("error:", err)
		default:
			res.Body.Close()
			fmt.Println("status", res.StatusCode)
		}
	}
	for _, s := range tr.Stats() {
		fmt.Printf("OP requests %d, state %s, open until +%v\n", hits, s.State, s.OpenUntil.Sub(now))
	}
	// Output:
	// status 503
	// status 503
	// fail fast: circuit open
	// OP requests 2, state open, open until +10s
}
