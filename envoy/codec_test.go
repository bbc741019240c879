package envoy

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// TestWireCodec calls the codec directly: a shared answer (memoised allow or denial,
// public answer) is sent as its stored encoding, everything else is marshalled; both
// decode to a message equal to the answer.
func TestWireCodec(t *testing.T) {
	cached := allowAlice()
	cached.Cached = true
	tests := []struct {
		name   string
		d      authz.Decision
		cfg    Config
		stored bool
	}{
		{name: "memoised allow", d: cached, stored: true},
		{name: "cold allow", d: allowAlice()},
		{name: "memoised allow, forwarded token (built per request)", d: cached, cfg: Config{ForwardAccessToken: true}},
		{name: "public allow", d: authz.Decision{Outcome: authz.OutcomeAllow, Public: true}, stored: true},
		{name: "memoised deny", d: authz.Decision{Outcome: authz.OutcomeInvalidToken, Reason: "expired"}, stored: true},
		{name: "deny naming scopes (not memoised)", d: authz.Decision{Outcome: authz.OutcomeForbidden,
			Policy: policy.Result{Scopes: []string{"read"}}}},
		{name: "unavailable", d: authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "op down"}, stored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, &fakeAuthorizer{d: tt.d}, tt.cfg)
			c := newWireCodec(s)
			req := checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi"})
			for i := range 2 {
				resp, _ := s.Check(context.Background(), req)
				data, err := c.Marshal(resp)
				if err != nil {
					t.Fatal(err)
				}
				got := &authv3.CheckResponse{}
				if err := proto.Unmarshal(data.Materialize(), got); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(got, resp) {
					t.Errorf("call %d: sent\n%v\nwant\n%v", i, got, resp)
				}
				stored := s.snap.Load().wire.get(resp)
				if (stored != nil) != tt.stored {
					t.Fatalf("call %d: stored encoding %v, want %v", i, stored != nil, tt.stored)
				}
				if stored != nil && (len(data) != 1 || &data[0].ReadOnlyData()[0] != &stored.ReadOnlyData()[0]) {
					t.Errorf("call %d: the stored encoding was not the one sent", i)
				}
				data.Free()
			}
		})
	}
}

// TestWireCodecOtherMessages: health, requests and foreign values go through the proto
// codec; the name is "proto".
func TestWireCodecOtherMessages(t *testing.T) {
	s, _ := newTestServer(t, nil, Config{})
	c := newWireCodec(s)
	if c.Name() != "proto" {
		t.Errorf("Name() = %q", c.Name())
	}
	for _, m := range []proto.Message{
		&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING},
		checkRequest(map[string]string{"authorization": "Bearer t"}),
		&authv3.CheckResponse{}, // a CheckResponse that is not a shared answer
	} {
		data, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := proto.Marshal(m)
		if string(data.Materialize()) != string(want) {
			t.Errorf("%T: codec %x, proto %x", m, data.Materialize(), want)
		}
		got := m.ProtoReflect().New().Interface()
		if err := c.Unmarshal(data, got); err != nil || !proto.Equal(got, m) {
			t.Errorf("%T: round trip %v, %v", m, got, err)
		}
		data.Free()
	}
	var nilResp *authv3.CheckResponse
	if data, err := c.Marshal(nilResp); err != nil || data.Len() != 0 {
		t.Errorf("nil CheckResponse: %v, %v", data.Len(), err)
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Error("a non-message must not marshal")
	}
}

// rawCodec is a client codec that hands back a reply's wire bytes (into a *[]byte)
// instead of decoding them.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2(protocodec.Name).Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if p, ok := v.(*[]byte); ok {
		*p = data.Materialize()
		return nil
	}
	return encoding.GetCodecV2(protocodec.Name).Unmarshal(data, v)
}

func (rawCodec) Name() string { return protocodec.Name }

// checkRaw calls Check over cc and returns the reply's wire bytes and its decoding.
func checkRaw(ctx context.Context, t *testing.T, cc *grpc.ClientConn, req *authv3.CheckRequest) ([]byte, *authv3.CheckResponse) {
	t.Helper()
	var raw []byte
	if err := cc.Invoke(ctx, "/"+AuthorizationService+"/Check", req, &raw, grpc.ForceCodecV2(rawCodec{})); err != nil {
		t.Fatal(err)
	}
	resp := &authv3.CheckResponse{}
	if err := proto.Unmarshal(raw, resp); err != nil {
		t.Fatal(err)
	}
	return raw, resp
}

// TestWireCodecLoopback: over a real connection, a memoised answer arrives as exactly
// its stored bytes, which decode to the answer; answers that are not stored, health
// and the usual content-type are unchanged; after Reload with other headers the new
// answer is sent.
func TestWireCodecLoopback(t *testing.T) {
	cached := allowAlice()
	cached.Cached = true
	fa := &fakeAuthorizer{d: cached}
	s, _ := newTestServer(t, fa, Config{})
	cc := serveServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi"})

	for _, tt := range []struct {
		name   string
		cfg    Config
		d      authz.Decision
		stored bool
		header string // the value of x-auth-request-user (allow) or x-user (after reload)
	}{
		{name: "memoised allow", d: cached, stored: true, header: "x-auth-request-user"},
		{name: "cold allow", d: allowAlice(), header: "x-auth-request-user"},
		{name: "memoised deny", d: authz.Decision{Outcome: authz.OutcomeForbidden, Reason: "groups"}, stored: true},
		{name: "deny naming scopes", d: authz.Decision{Outcome: authz.OutcomeForbidden, Policy: policy.Result{Scopes: []string{"a"}}}},
		{name: "memoised allow after reload", cfg: Config{Headers: []HeaderConfig{{Name: "x-user", Claim: "email"}}},
			d: cached, stored: true, header: "x-user"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fa.mu.Lock()
			fa.d = tt.d
			fa.mu.Unlock()
			if tt.cfg.Headers != nil {
				if err := s.Reload(fa, tt.cfg); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				raw, got := checkRaw(ctx, t, cc, req)
				want, _ := s.Check(ctx, req) // the same shared answer when memoised
				if !proto.Equal(got, want) {
					t.Fatalf("call %d: got\n%v\nwant\n%v", i, got, want)
				}
				stored := s.snap.Load().wire.get(want)
				if (stored != nil) != tt.stored {
					t.Fatalf("call %d: stored %v, want %v", i, stored != nil, tt.stored)
				}
				if stored != nil && string(stored.ReadOnlyData()) != string(raw) {
					t.Errorf("call %d: the bytes sent are not the stored encoding", i)
				}
				if tt.header != "" {
					wantVal := "alice"
					if tt.header == "x-user" {
						wantVal = "alice@example.org"
					}
					hm := headerMap(got)
					if hm[tt.header].GetHeader().GetValue() != wantVal || len(hm) != len(s.Config().Headers) {
						t.Errorf("call %d: headers %v", i, got.GetOkResponse().GetHeaders())
					}
				}
			}
		})
	}

	t.Run("usual content-type and health", func(t *testing.T) {
		var md metadata.MD
		if _, err := authv3.NewAuthorizationClient(cc).Check(ctx, req, grpc.Header(&md)); err != nil {
			t.Fatal(err)
		}
		if ct := md.Get("content-type"); len(ct) != 1 || ct[0] != "application/grpc" {
			t.Errorf("content-type %v", ct)
		}
		r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: AuthorizationService})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %v, %v", r, err)
		}
	})
}

// TestWireCodecNeverMixesIdentities: more cached identities than memo slots (so memo
// and table slots are replaced all the time), checked concurrently over one connection
// in different orders: every answer on the wire carries its own identity's headers and
// metadata, and equals what Check answers for it.
func TestWireCodecNeverMixesIdentities(t *testing.T) {
	ids := make([]*authz.Identity, allowMemoSlots+257)
	for i := range ids {
		ids[i] = identityN(i)
	}
	s, _ := newTestServer(t, whoAuthorizer(ids), Config{})
	cc := serveServer(t, s)
	client := authv3.NewAuthorizationClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range len(ids) {
				i := (k*(2*g+1) + g*1009) % len(ids)
				resp, err := client.Check(ctx, whoRequest(i))
				if err != nil {
					t.Error(err)
					return
				}
				want := fmt.Sprintf("user-%d", i)
				hm := headerMap(resp)
				if hm["x-auth-request-user"].GetHeader().GetValue() != want ||
					hm["x-auth-request-email"].GetHeader().GetValue() != fmt.Sprintf("u%d@example.org", i) ||
					hm["x-auth-request-groups"].GetHeader().GetValue() != fmt.Sprintf("g%d,all", i) ||
					resp.GetDynamicMetadata().GetFields()["sub"].GetStringValue() != want {
					t.Errorf("identity %d got %v / %v", i, resp.GetOkResponse().GetHeaders(), resp.GetDynamicMetadata())
					return
				}
			}
		}()
	}
	wg.Wait()
	// The table holds no more than it has slots, and only encodings of answers that are
	// memoised right now or were until their slot was taken.
	n := 0
	v := s.snap.Load()
	for i := range v.wire.slots {
		if e := v.wire.slots[i].Load(); e != nil {
			n++
			b, _ := proto.Marshal(e.resp)
			got := &authv3.CheckResponse{}
			if err := proto.Unmarshal(e.buf.ReadOnlyData(), got); err != nil || !proto.Equal(got, e.resp) {
				t.Fatalf("slot %d: stored encoding does not decode to its answer (%d bytes vs %d)", i, len(e.buf.ReadOnlyData()), len(b))
			}
		}
	}
	if n == 0 || n > wireSlots {
		t.Errorf("%d stored encodings", n)
	}
}

// TestWireTableDropsReplacedAnswers: many more cached identities and distinct denials
// than memo slots, one after the other: an answer has a stored encoding only while it
// is memoised (replaced memo entries leave the table), and nearly every memoised one
// has one. A reload starts with a table holding only the new public answer.
func TestWireTableDropsReplacedAnswers(t *testing.T) {
	ids := make([]*authz.Identity, 3*allowMemoSlots)
	for i := range ids {
		ids[i] = identityN(i)
	}
	who := whoAuthorizer(ids)
	s, _ := newTestServer(t, AuthorizerFunc(func(ctx context.Context, r authz.Request) authz.Decision {
		if i, err := strconv.Atoi(r.RequestID); err == nil && i >= len(ids) { // a denial with its own text
			return authz.Decision{Outcome: authz.OutcomeInvalidToken, Reason: "bad " + r.RequestID}
		}
		return who(ctx, r)
	}), Config{})
	n := len(ids) + 3*denyMemoSlots
	resps := make([]*authv3.CheckResponse, n)
	for i := range n {
		resps[i], _ = s.Check(context.Background(), whoRequest(i))
	}
	v := s.snap.Load()
	memoised := func(i int, r *authv3.CheckResponse) bool {
		if i < len(ids) {
			s1, s2 := v.memo.candidates(ids[i])
			return (s1.Load() != nil && s1.Load().resp == r) || (s2.Load() != nil && s2.Load().resp == r)
		}
		for j := range v.deny.slots {
			if e := v.deny.slots[j].Load(); e != nil && e.resp == r {
				return true
			}
		}
		return false
	}
	var inMemo, stored int
	for i, r := range resps {
		m, st := memoised(i, r), v.wire.get(r) != nil
		if st && !m {
			t.Fatalf("answer %d: replaced in the memo, but its encoding is still stored", i)
		}
		if m {
			inMemo++
		}
		if st {
			stored++
		}
	}
	if inMemo < allowMemoSlots || stored < inMemo*9/10 {
		t.Errorf("%d answers memoised, %d of them with a stored encoding", inMemo, stored)
	}
	if err := s.Reload(v.a, Config{}); err != nil {
		t.Fatal(err)
	}
	nv := s.snap.Load()
	for i, r := range resps {
		if nv.wire.get(r) != nil {
			t.Fatalf("answer %d: encoding of the old snapshot survived a reload", i)
		}
	}
	if nv.wire.get(nv.anonResp) == nil {
		t.Error("the new public answer has no stored encoding")
	}
}
