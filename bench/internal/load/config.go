package load

import "fmt"

// FlaatConfig is the configuration document (to be marshalled as YAML) every
// flaat-extauthz of the benchmark runs with: two issuers (jwtIssuer issues JWTs, userinfo
// never; opaqueIssuer is asked for opaque tokens), both requiring the audience
// api.example.org; a groups policy with three access levels and five routes (a public
// exact path, a prefix, a regex with methods, a host + prefix, a default); log level
// info. cache is the verification.cache section.
func FlaatConfig(jwtIssuer, opaqueIssuer, grpcAddr, httpAddr, adminAddr string, cache map[string]any) map[string]any {
	member := map[string]any{"groups": map[string]any{"claim": "groups", "values": []string{"bench-users"}, "match": "one"}}
	return map[string]any{
		"server": map[string]any{
			"grpc_listen": grpcAddr, "http_listen": httpAddr, "admin_listen": adminAddr,
			"readiness": "eager",
		},
		"issuers": []any{
			map[string]any{"issuer": jwtIssuer, "userinfo": "never", "issues_jwt": true,
				"audiences": []string{"api.example.org"}},
			map[string]any{"issuer": opaqueIssuer, "userinfo": "optional",
				"audiences": []string{"api.example.org"}},
		},
		"verification": map[string]any{"http_timeout": "2s", "cache": cache},
		"policy": map[string]any{
			"access_levels": map[string]any{
				"user":   map[string]any{"authenticated": true},
				"member": member,
				"admin": map[string]any{"all_of": []any{"member",
					map[string]any{"groups": map[string]any{"values": []string{"bench-admins"}}}}},
			},
			"routes": []any{
				map[string]any{"name": "health", "path": map[string]any{"exact": "/healthz"}, "methods": []string{"GET", "HEAD"}, "public": true},
				map[string]any{"name": "admin", "path": map[string]any{"prefix": "/admin"}, "require": "admin"},
				map[string]any{"name": "api-write", "host": []string{"api.example.org", "*.api.example.org"},
					"path": map[string]any{"regex": "/api/v[0-9]+/items(/.*)?"}, "methods": []string{"POST", "PUT", "DELETE"},
					"require": map[string]any{"all_of": []any{"member", map[string]any{"scope": []string{"items.write"}}}}},
				map[string]any{"name": "api-read", "host": []string{"api.example.org"},
					"path": map[string]any{"prefix": "/api"}, "methods": []string{"GET", "HEAD"}, "require": "member"},
				map[string]any{"name": "docs", "path": map[string]any{"prefix": "/docs"}, "require": "user"},
			},
			"default": "user",
		},
		"log": map[string]any{"level": "info", "format": "json"},
	}
}

// Request is the request every scenario checks: matched by the "api-read" route of
// FlaatConfig (groups policy) after the route table has tried a public exact path, a
// prefix and a regex route.
var Request = Req{Method: "GET", Host: "api.example.org", Path: "/api/v1/items/42?expand=owner"}

// Claims are what a realistic access token of an academic OP carries; i makes sub,
// email and one group distinct.
func Claims(i int) map[string]any {
	return map[string]any{
		"sub":                fmt.Sprintf("user-%06d@bench", i),
		"aud":                []string{"api.example.org", "account"},
		"azp":                "bench-client",
		"scope":              "openid profile email eduperson_entitlement",
		"email":              fmt.Sprintf("user%d@example.org", i),
		"email_verified":     true,
		"name":               fmt.Sprintf("Bench User %d", i),
		"preferred_username": fmt.Sprintf("user%d", i),
		"groups":             []string{"bench-users", "staff", "project-a", "project-b", fmt.Sprintf("team-%d", i%17)},
		"eduperson_entitlement": []string{
			"urn:geant:example.org:group:bench-users#aai.example.org",
			"urn:geant:example.org:group:project-a:role=member#aai.example.org",
			"urn:geant:example.org:group:staff#aai.example.org",
		},
	}
}
