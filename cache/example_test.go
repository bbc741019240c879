package cache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

func ExampleCache_Get() {
	errRejected := errors.New("example: token rejected") // what the OP's 401 becomes
	c, err := cache.New[map[string]any](cache.Options{
		MaxTTL:     5 * time.Minute,
		IsNegative: func(err error) bool { return errors.Is(err, errRejected) },
	})
	if err != nil {
		panic(err)
	}
	token := "opaque-access-token" // only its SHA-256 (with the issuer id) becomes the key
	key := cache.KeyOf(token, "https://login.example.org")
	userinfo := func(ctx context.Context) (map[string]any, time.Time, error) {
		// ask the OP with ctx (detached from the caller, with the load timeout) ...
		return map[string]any{"sub": "alice"}, time.Now().Add(time.Hour), nil
	}

	for range 2 {
		claims, hit, err := c.Get(context.Background(), key, userinfo)
		fmt.Println(claims["sub"], hit, err)
	}
	st := c.Stats()
	fmt.Println("loads:", st.Loads, "hits:", st.Hits)
	// Output:
	// alice false <nil>
	// alice true <nil>
	// loads: 1 hits: 1
}
