package turnover_test

import (
	"testing"

	"turnover/internal/turnover"
)

func TestKeypadDigits(t *testing.T) {
	tests := []struct{ name, want string }{
		{"Reynolds", "73966537"},
		{"Frye", "3793"},
		{"O'Brien-Smith", "627436" + "76484"},
		{"", ""},
		{"ÿ 42", ""},
		{"wxyz abc", "9999222"},
	}
	for _, tt := range tests {
		if got := turnover.KeypadDigits(tt.name); got != tt.want {
			t.Errorf("KeypadDigits(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got, want := turnover.DirectoryDigits("Kaylee", "Frye"), "3793529533"; got != want {
		t.Errorf("DirectoryDigits = %q, want %q", got, want)
	}
}

func TestIdentityCanManage(t *testing.T) {
	tests := []struct {
		id     turnover.Identity
		domain string
		want   bool
	}{
		{turnover.Identity{Domain: "a", Scope: turnover.ScopeOfficeManager}, "a", true},
		{turnover.Identity{Domain: "a", Scope: turnover.ScopeOfficeManager}, "b", false},
		{turnover.Identity{Domain: "a", Scope: turnover.ScopeBasicUser}, "a", false},
		{turnover.Identity{Domain: "a", Scope: turnover.ScopeCallCenterSupervisor}, "a", false},
		{turnover.Identity{Domain: "r", Scope: turnover.ScopeReseller, Domains: []string{"a", "b"}}, "b", true},
		{turnover.Identity{Domain: "r", Scope: turnover.ScopeReseller, Domains: []string{"a"}}, "c", false},
		{turnover.Identity{Scope: turnover.ScopeSuperUser}, "anything", true},
		{turnover.Identity{Scope: turnover.ScopeSuperUser}, "", false},
		{turnover.Identity{Domain: "a", Scope: "admin"}, "a", false},
	}
	for _, tt := range tests {
		if got := tt.id.CanManage(tt.domain); got != tt.want {
			t.Errorf("%+v.CanManage(%q) = %v, want %v", tt.id, tt.domain, got, tt.want)
		}
	}
}

func TestJobPercent(t *testing.T) {
	tests := []struct {
		job  turnover.Job
		want int
	}{
		{turnover.Job{Total: 4, Done: 1, Failed: 1}, 50},
		{turnover.Job{Total: 3, Done: 3}, 100},
		{turnover.Job{Total: 3}, 0},
		{turnover.Job{}, 100},
	}
	for _, tt := range tests {
		if got := tt.job.Percent(); got != tt.want {
			t.Errorf("%+v.Percent() = %d, want %d", tt.job, got, tt.want)
		}
	}
}

func TestNewIdentityValidate(t *testing.T) {
	good := turnover.NewIdentity{Extension: "1000", FirstName: "Ann", LastName: "Lee", Email: "ann.lee@example.com", Department: "Sales"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good identity: %v", err)
	}
	tests := []struct {
		name   string
		change func(*turnover.NewIdentity)
	}{
		{"no first name", func(n *turnover.NewIdentity) { n.FirstName = " " }},
		{"no last name", func(n *turnover.NewIdentity) { n.LastName = "" }},
		{"long name", func(n *turnover.NewIdentity) { n.LastName = string(make([]byte, 65)) }},
		{"control", func(n *turnover.NewIdentity) { n.FirstName = "A\nB" }},
		{"padded", func(n *turnover.NewIdentity) { n.FirstName = " Ann" }},
		{"no email", func(n *turnover.NewIdentity) { n.Email = "" }},
		{"display name", func(n *turnover.NewIdentity) { n.Email = "Ann <ann@example.com>" }},
		{"no domain dot", func(n *turnover.NewIdentity) { n.Email = "ann@localhost" }},
		{"not an address", func(n *turnover.NewIdentity) { n.Email = "ann.example.com" }},
	}
	for _, tt := range tests {
		n := good
		tt.change(&n)
		if err := n.Validate(); turnover.ErrorCode(err) != turnover.EINVALID {
			t.Errorf("%s: Validate() = %v, want EINVALID", tt.name, err)
		}
	}
}
