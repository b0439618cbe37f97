package setup_test

import (
	"context"
	"encoding/base64"
	"regexp"
	"testing"

	"turnover/internal/setup"
)

var (
	extension = regexp.MustCompile(`^[0-9]{2,10}$`)
	domain    = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)
)

// FuzzParseUsername: the username of a link names one extension and domain, which
// Username spells back to a username naming the same.
func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{
		"MTAwNUBuaWZ0eXdpZGdldHM=", "MTAwNUBuaWZ0eXdpZGdldHM", "MTAwNUBuaWZ0eXdpZGdldHM=\n", "MTAwNUBuaWZ0eXdpZGdldHN=",
		base64.StdEncoding.EncodeToString([]byte("1005@niftywidgets\n")), base64.StdEncoding.EncodeToString([]byte("1005@NIFTY")),
		base64.StdEncoding.EncodeToString([]byte("1005@nifty\x00widgets")), base64.URLEncoding.EncodeToString([]byte("1005@ni~~y")),
		"1005@niftywidgets", "%%%", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, username string) {
		ext, dom, ok := setup.ParseUsername(username)
		if !ok {
			return
		}
		if !extension.MatchString(ext) || !domain.MatchString(dom) {
			t.Fatalf("ParseUsername(%q) = %q, %q", username, ext, dom)
		}
		if e, d, ok := setup.ParseUsername(setup.Username(ext, dom)); !ok || e != ext || d != dom {
			t.Fatalf("Username(%q, %q) parses as %q, %q, %v", ext, dom, e, d, ok)
		}
	})
}

// FuzzCheckAndComplete: only the live link's token and a username naming its user open
// it; a failed attempt to open it (the page's Check) or to use it (Complete) counts
// once against that user however the username is spelled, so that no other spelling of
// it escapes the limit on attempts; an attempt that opens it leaves nothing counted; and
// a link is used only when setup succeeds.
func FuzzCheckAndComplete(f *testing.F) {
	for _, s := range []string{"MTAwNUBuaWZ0eXdpZGdldHM=", "MTAwNUBuaWZ0eXdpZGdldHM", "MTAwNUBuaWZ0eXdpZGdldHM=\r\n", "MTAwNUBuaWZ0eXdpZGdldHN=", "MTAwNkBuaWZ0eXdpZGdldHM="} {
		f.Add(s, "", true)
		f.Add(s, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false)
	}
	f.Fuzz(func(t *testing.T, username, token string, live bool) {
		svc, st, out, _ := newService(t)
		_, liveToken := invite(t, svc, out, "s")
		if live {
			token = liveToken
		}
		ext, dom, named := setup.ParseUsername(username)
		opens := named && ext == "1005" && dom == "niftywidgets" && token == liveToken
		if _, err := svc.Check(context.Background(), username, token); (err == nil) != opens {
			t.Fatalf("Check(%q, %q) = %v", username, token, err)
		}
		err := svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "correct horse", PIN: "2580"})
		if (err == nil) != opens {
			t.Fatalf("Complete(%q, %q) = %v", username, token, err)
		}
		_, used := st.active["niftywidgets/1005"]
		if _, kept := st.links["niftywidgets/1005"]; used == kept || used != opens {
			t.Fatalf("after Complete(%q, %q) = %v: link kept %v, account set up %v", username, token, err, kept, used)
		}
		if named && !opens && (st.failures[setup.Username(ext, dom)] != 2 || len(st.failures) != 1) {
			t.Fatalf("two failed attempts with %q are counted as %v, not twice against %s", username, st.failures, setup.Username(ext, dom))
		}
		if opens && len(st.failures) != 0 {
			t.Fatalf("attempts that opened the link are counted: %v", st.failures)
		}
	})
}
