package api

import (
	"net/http"
	"strings"

	"github.com/awslabs/aws-lambda-go-api-proxy/core"

	"turnover/internal/turnover"
)

// IdentityFromAuthorizer reads the caller from the claims the HTTP API's JWT authorizer
// verified: sub, domain, scope and, for resellers, domains. API Gateway hands claims
// over as strings, arrays written as "[a b]". Domain names are case-insensitive and
// paths spell them in lower case, so the domain claims are read in lower case too; sub
// is kept as the token has it (ownExtension reads its domain part case-insensitively).
func IdentityFromAuthorizer(r *http.Request) (turnover.Identity, bool) {
	rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context())
	if !ok || rc.Authorizer == nil || rc.Authorizer.JWT == nil {
		return turnover.Identity{}, false
	}
	c := rc.Authorizer.JWT.Claims
	id := turnover.Identity{
		Subject: c["sub"],
		Domain:  strings.ToLower(strings.TrimSpace(c["domain"])),
		Scope:   turnover.Scope(c["scope"]),
		Domains: claimList(strings.ToLower(c["domains"])),
	}
	if id.Subject == "" || id.Scope == "" {
		return turnover.Identity{}, false
	}
	return id, true
}

// claimList reads an array claim as API Gateway passes it on: "[a b]", or "a,b".
func claimList(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "["), "]")
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}

func requestID(r *http.Request) string {
	if rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok {
		return rc.RequestID
	}
	return ""
}
