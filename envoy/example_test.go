package envoy_test

import (
	"context"
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// A Server turns a Decision into Envoy's answer; here a stand-in authorizer allows
// alice and denies everyone else.
func ExampleServer_Check() {
	a := envoy.AuthorizerFunc(func(_ context.Context, r authz.Request) authz.Decision {
		if r.Authorization == "Bearer alice-token" {
			return authz.Decision{Outcome: authz.OutcomeAllow, Identity: &authz.Identity{
				Claims: policy.MapClaims(map[string]any{"sub": "alice", "groups": []any{"a", "b"}})}}
		}
		return authz.Decision{Outcome: authz.OutcomeInvalidToken, Reason: "token expired"}
	})
	s, err := envoy.NewServer(a, envoy.Config{Headers: []envoy.HeaderConfig{
		{Name: "x-auth-request-user", Claim: "sub"}, {Name: "x-auth-request-groups", Claim: "groups"}}})
	if err != nil {
		panic(err)
	}
	for _, tok := range []string{"Bearer alice-token", "Bearer old"} {
		resp, _ := s.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Headers: map[string]string{"authorization": tok}}}}})
		if ok := resp.GetOkResponse(); ok != nil {
			for _, h := range ok.GetHeaders() {
				fmt.Printf("%s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
			}
			fmt.Println("remove:", ok.GetHeadersToRemove())
			continue
		}
		dr := resp.GetDeniedResponse()
		fmt.Println(dr.GetStatus().GetCode(), dr.GetHeaders()[0].GetHeader().GetValue())
		fmt.Println(dr.GetBody())
	}
	// Output:
	// x-auth-request-user: alice
	// x-auth-request-groups: a,b
	// remove: [x-auth-request-access-token]
	// Unauthorized Bearer realm="flaat-extauthz", error="invalid_token", error_description="token expired"
	// {"error":"invalid_token","error_description":"token expired"}
}
