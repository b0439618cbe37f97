package turnover

import "slices"

// Identity is the caller, as the verified token says: who (Subject, EXT@DOMAIN), the
// domain they belong to, their scope and, for resellers, the domains they look after.
type Identity struct {
	Subject string
	Domain  string
	Scope   Scope
	Domains []string
}

// CanManage reports whether the identity may read and reset users of domain: an office
// manager their own domain, a reseller the domains they look after, a super user any.
// Every other scope may do neither.
func (id Identity) CanManage(domain string) bool {
	if domain == "" {
		return false
	}
	switch id.Scope {
	case ScopeSuperUser:
		return true
	case ScopeReseller:
		return slices.Contains(id.Domains, domain)
	case ScopeOfficeManager:
		return id.Domain == domain
	}
	return false
}
