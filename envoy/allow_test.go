package envoy

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// identityN is a distinct cached identity: every default header and the metadata differ.
func identityN(i int) *authz.Identity {
	sub := fmt.Sprintf("user-%d", i)
	return &authz.Identity{
		Issuer: "https://op.example.org",
		Claims: compact(map[string]any{
			"sub": sub, "iss": "https://op.example.org",
			"email":  fmt.Sprintf("u%d@example.org", i),
			"groups": []any{"g" + strconv.Itoa(i), "all"},
		}),
	}
}

// whoAuthorizer allows with ids[x-who] as a cached identity (the same pointer every
// time, as the identity cache returns it).
func whoAuthorizer(ids []*authz.Identity) AuthorizerFunc {
	return func(_ context.Context, r authz.Request) authz.Decision {
		i, err := strconv.Atoi(r.RequestID)
		if err != nil || i < 0 || i >= len(ids) {
			return authz.Decision{Outcome: authz.OutcomeForbidden}
		}
		return authz.Decision{Outcome: authz.OutcomeAllow, Identity: ids[i], Cached: true, Route: "api"}
	}
}

func whoRequest(i int) *authv3.CheckRequest {
	req := checkRequest(map[string]string{"authorization": "Bearer t"})
	req.Attributes.Request.Http.Id = strconv.Itoa(i)
	return req
}

// TestAllowMemoNeverMixesIdentities: more cached identities than memo slots (so slots
// collide and are overwritten), checked concurrently in different orders over gRPC and
// HTTP: every answer carries exactly its own identity's headers and metadata.
func TestAllowMemoNeverMixesIdentities(t *testing.T) {
	ids := make([]*authz.Identity, allowMemoSlots+257)
	for i := range ids {
		ids[i] = identityN(i)
	}
	s, _ := newTestServer(t, whoAuthorizer(ids), Config{})
	h := s.HTTPHandler()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range len(ids) {
				i := (k*(2*g+1) + g*1009) % len(ids) // a different order per goroutine
				want := fmt.Sprintf("user-%d", i)
				resp, err := s.Check(context.Background(), whoRequest(i))
				if err != nil {
					t.Error(err)
					return
				}
				hm := headerMap(resp)
				if hm["x-auth-request-user"].GetHeader().GetValue() != want ||
					hm["x-auth-request-email"].GetHeader().GetValue() != fmt.Sprintf("u%d@example.org", i) ||
					hm["x-auth-request-groups"].GetHeader().GetValue() != fmt.Sprintf("g%d,all", i) ||
					resp.GetDynamicMetadata().GetFields()["sub"].GetStringValue() != want {
					t.Errorf("identity %d got %v / %v", i, resp.GetOkResponse().GetHeaders(), resp.GetDynamicMetadata())
					return
				}
				if k%7 == 0 { // HTTP shares the memo
					rec := httptest.NewRecorder()
					req := httptest.NewRequest("GET", "/x", nil)
					req.Header.Set("Authorization", "Bearer t")
					req.Header.Set("X-Request-Id", strconv.Itoa(i))
					h.ServeHTTP(rec, req)
					if rec.Code != 200 || rec.Header().Get("X-Auth-Request-User") != want ||
						rec.Header().Get("X-Auth-Request-Groups") != fmt.Sprintf("g%d,all", i) {
						t.Errorf("HTTP identity %d got %d %v", i, rec.Code, rec.Header())
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestAllowMemoIsUsedAndShared: a cached identity's second answer is the very same
// (prebuilt) message; a fresh identity's is not memoised.
func TestAllowMemoIsUsedAndShared(t *testing.T) {
	id := alice()
	for _, cached := range []bool{true, false} {
		s, _ := newTestServer(t, &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeAllow, Identity: id, Cached: cached}}, Config{})
		r1, _ := s.Check(context.Background(), checkRequest(nil))
		r2, _ := s.Check(context.Background(), checkRequest(nil))
		if same := r1 == r2; same != cached {
			t.Errorf("cached=%v: second answer shared = %v", cached, same)
		}
		if !proto.Equal(r1, r2) {
			t.Errorf("cached=%v: answers differ:\n%v\n%v", cached, r1, r2)
		}
	}
}

// TestAllowMemoReloadTakesEffectAtOnce: the same cached identity pointer, answered
// before and after Reload with other headers, metadata claims and switches; and after
// SetAuthorizer.
func TestAllowMemoReloadTakesEffectAtOnce(t *testing.T) {
	id := alice()
	fa := &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeAllow, Identity: id, Cached: true}}
	s, _ := newTestServer(t, fa, Config{Headers: []HeaderConfig{{Name: "x-old", Claim: "sub"}}})
	hdrs := map[string]string{"authorization": "Bearer abc.def.ghi"}
	for range 2 { // fill the memo, then hit it
		checkAllowHeaders(t, s, hdrs, map[string]string{"x-old": "alice"}, []string{"x-auth-request-access-token"})
	}
	cfg := Config{
		Headers:            []HeaderConfig{{Name: "x-new", Claim: "email"}, {Name: "x-none", Claim: "absent"}},
		MetadataClaims:     []string{"level"},
		ForwardAccessToken: true, StripAuthorization: true,
	}
	if err := s.Reload(fa, cfg); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		checkAllowHeaders(t, s, hdrs, map[string]string{"x-new": "alice@example.org", "x-auth-request-access-token": "abc.def.ghi"},
			[]string{"x-none", "authorization"})
		resp, _ := s.Check(context.Background(), checkRequest(hdrs))
		if lvl := resp.GetDynamicMetadata().GetFields()["level"]; lvl.GetNumberValue() != 3 {
			t.Errorf("metadata after reload: %v", resp.GetDynamicMetadata())
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer abc.def.ghi")
	s.HTTPHandler().ServeHTTP(rec, req)
	if rec.Header().Get("X-New") != "alice@example.org" || rec.Header().Get("X-Old") != "" ||
		rec.Header().Get("X-Auth-Request-Access-Token") != "abc.def.ghi" ||
		rec.Header().Get("X-Envoy-Auth-Headers-To-Remove") != "x-none, authorization" {
		t.Errorf("HTTP after reload: %v", rec.Header())
	}
	// Back to the first configuration through Reload, then SetAuthorizer keeps it.
	if err := s.Reload(fa, Config{Headers: []HeaderConfig{{Name: "x-old", Claim: "sub"}}}); err != nil {
		t.Fatal(err)
	}
	s.SetAuthorizer(fa)
	checkAllowHeaders(t, s, hdrs, map[string]string{"x-old": "alice"}, []string{"x-auth-request-access-token"})
}

// TestAllowMemoForwardedTokenIsPerRequest: with forward_access_token the token is the
// one per-request part of a memoised answer; two requests of one cached identity with
// different tokens each get their own, and the shared parts stay unchanged.
func TestAllowMemoForwardedTokenIsPerRequest(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeAllow, Identity: alice(), Cached: true}},
		Config{ForwardAccessToken: true, Headers: []HeaderConfig{{Name: "x-user", Claim: "sub"}}})
	for i := range 3 {
		for _, tok := range []string{"tok-a", "tok-b", ""} {
			hdrs := map[string]string{"authorization": "Bearer " + tok}
			set := map[string]string{"x-user": "alice", "x-auth-request-access-token": tok}
			var removed []string
			if tok == "" {
				delete(set, "x-auth-request-access-token")
				removed = []string{"x-auth-request-access-token"}
			}
			t.Run(fmt.Sprintf("%d/%q", i, tok), func(t *testing.T) { checkAllowHeaders(t, s, hdrs, set, removed) })
		}
	}
}

// TestSharedAnswersMarshalConcurrently: gRPC marshals a shared answer on many
// goroutines at once; with -race this proves that marshalling only reads it (the size
// cache is atomic), and the bytes stay the same.
func TestSharedAnswersMarshalConcurrently(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeAllow, Identity: alice(), Cached: true}}, Config{})
	resp, _ := s.Check(context.Background(), checkRequest(nil))
	det := proto.MarshalOptions{Deterministic: true}
	want, err := det.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				r, _ := s.Check(context.Background(), checkRequest(nil))
				if r != resp {
					t.Error("memo not used")
					return
				}
				if _, err := proto.Marshal(r); err != nil { // what gRPC does: Size, then Marshal with UseCachedSize
					t.Error(err)
				}
				_ = proto.Size(r)
			}
		}()
	}
	wg.Wait()
	got, _ := det.Marshal(resp)
	if string(got) != string(want) {
		t.Error("a shared answer changed while being marshalled")
	}
}

// TestAllowMemoSharedSlotDoesNotThrash: two busy identities whose first slot is the same
// both stay memoised (each answer is the prebuilt one) when they alternate.
func TestAllowMemoSharedSlotDoesNotThrash(t *testing.T) {
	a := identityN(0)
	var ids []*authz.Identity
	s, _ := newTestServer(t, AuthorizerFunc(func(ctx context.Context, r authz.Request) authz.Decision {
		return whoAuthorizer(ids)(ctx, r)
	}), Config{})
	m := s.snap.Load().memo
	a1, _ := m.candidates(a)
	for i := 1; i < 100000 && len(ids) == 0; i++ {
		b := identityN(i)
		if b1, b2 := m.candidates(b); b1 == a1 && b2 != a1 {
			ids = []*authz.Identity{a, b}
		}
	}
	if ids == nil {
		t.Fatal("no identity sharing a slot found")
	}
	first := map[int]*authv3.CheckResponse{}
	for round := range 4 {
		for i := range ids {
			resp, _ := s.Check(context.Background(), whoRequest(i))
			if round == 0 {
				first[i] = resp
			} else if resp != first[i] {
				t.Fatalf("round %d: identity %d was rebuilt (evicted by the other)", round, i)
			}
		}
	}
}
