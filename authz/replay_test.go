package authz

import (
	"testing"
	"time"
)

// TestReplayCache: a key is refused within its window and accepted after it; the ring
// grows on demand up to its size, keeps insertion order across growth, and refuses
// (full) rather than forgets an unexpired entry.
func TestReplayCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplayCache(100, 10*time.Second)
	key := func(i int) (k [32]byte) { k[0], k[1] = byte(i), byte(i>>8); return k }
	for i := range 70 { // beyond the first ring of 64: one growth
		if r := c.add(key(i), now.Add(time.Duration(i)*time.Millisecond)); r != replayFresh {
			t.Fatalf("key %d: %v", i, r)
		}
	}
	if r := c.add(key(3), now.Add(time.Second)); r != replaySeen {
		t.Fatalf("replay within the window: %v", r)
	}
	for i := 70; i < 100; i++ {
		c.add(key(i), now.Add(time.Second))
	}
	if r := c.add(key(100), now.Add(2*time.Second)); r != replayFull {
		t.Fatalf("full cache: %v, want replayFull", r)
	}
	if len(c.ring) != 100 {
		t.Fatalf("ring grew to %d, want its size 100", len(c.ring))
	}
	// After the first keys' window, they expire in insertion order and make room.
	later := now.Add(10*time.Second + 5*time.Millisecond)
	if r := c.add(key(100), later); r != replayFresh {
		t.Fatalf("after expiry: %v", r)
	}
	if r := c.add(key(3), later); r != replayFresh {
		t.Fatalf("key 3 after its window: %v", r)
	}
	if r := c.add(key(69), later); r != replaySeen {
		t.Fatalf("key 69 still within its window: %v", r)
	}
	if c.len() != 100-6+2 {
		t.Fatalf("len %d", c.len())
	}
}

// TestHTUMatches: RFC 3986 percent-encoding normalisation of the path, default ports,
// case of scheme and host, query and fragment ignored, and nothing else.
func TestHTUMatches(t *testing.T) {
	for _, c := range []struct {
		name, htu, scheme, host, path string
		ok                            bool
	}{
		{"exact", "https://a.example/x/y", "https", "a.example", "/x/y", true},
		{"query and fragment ignored", "https://a.example/x?q=1#f", "https", "a.example", "/x?other", true},
		{"lower-case hex in the proof", "https://a.example/a%2fb", "https", "a.example", "/a%2Fb", true},
		{"encoded unreserved in the proof", "https://a.example/%7Euser/%41", "https", "a.example", "/~user/A", true},
		{"encoded unreserved in the request", "https://a.example/~user", "https", "a.example", "/%7euser", true},
		{"encoded slash is not a slash", "https://a.example/a/b", "https", "a.example", "/a%2Fb", false},
		{"no dot-segment removal", "https://a.example/a/../b", "https", "a.example", "/b", false},
		{"empty path is /", "https://a.example", "https", "a.example", "/", true},
		{"default port", "https://a.example:443/x", "https", "A.EXAMPLE", "/x", true},
		{"http default port", "http://a.example/x", "HTTP", "a.example:80", "/x", true},
		{"other port", "https://a.example:8443/x", "https", "a.example", "/x", false},
		{"scheme", "http://a.example/x", "https", "a.example", "/x", false},
		{"host", "https://b.example/x", "https", "a.example", "/x", false},
		{"case of the path matters", "https://a.example/X", "https", "a.example", "/x", false},
		{"malformed percent-encoding in htu", "https://a.example/%zz", "https", "a.example", "/%zz", false},
		{"malformed percent in the request is compared as is", "https://a.example/a%25zz", "https", "a.example", "/a%zz", false},
		{"relative htu", "/x", "https", "a.example", "/x", false},
		{"userinfo in htu", "https://u@a.example/x", "https", "a.example", "/x", false},
		{"other scheme", "ftp://a.example/x", "ftp", "a.example", "/x", false},
		{"unknown scheme", "https://a.example/x", "", "a.example", "/x", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := htuMatches(c.htu, c.scheme, c.host, c.path); (err == nil) != c.ok {
				t.Fatalf("htuMatches = %v, want ok=%v", err, c.ok)
			}
		})
	}
}
