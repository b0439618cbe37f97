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
