package localstack

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// sendEmailBody is an SES v2 SendEmail request body as the SDK writes it.
func sendEmailBody(t *testing.T, simple map[string]any, extra map[string]any) []byte {
	t.Helper()
	req := map[string]any{
		"FromEmailAddress": "Turnover <noreply@turnover.localhost>",
		"Destination": map[string]any{
			"ToAddresses":  []string{"ext1005@niftywidgets.example"},
			"CcAddresses":  []string{"Ops Desk <ops@niftywidgets.example>"},
			"BccAddresses": []string{"audit@niftywidgets.example"},
		},
		"Content":              map[string]any{"Simple": simple},
		"ConfigurationSetName": "local",
	}
	for k, v := range extra {
		req[k] = v
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func content(s string) map[string]string { return map[string]string{"Data": s, "Charset": "UTF-8"} }

// rawOf returns the rewritten request's fields and its decoded raw MIME.
func rawOf(t *testing.T, body []byte) (map[string]json.RawMessage, string) {
	t.Helper()
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	var c struct{ Raw struct{ Data []byte } }
	if err := json.Unmarshal(req["Content"], &c); err != nil {
		t.Fatal(err)
	}
	return req, string(c.Raw.Data)
}

func TestSimpleToRawRoundTrip(t *testing.T) {
	const link = "https://portal.turnover.localhost/activate?auth_code=abc_-123&username=MTAwNUBuaWZ0eXdpZGdldHM%3D&lang=en_us"
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name             string
		text, html       *string
		headers          []map[string]string
		wantText, wantHT string
		wantType         string
	}{
		{
			name: "text and HTML", text: ptr("Go to " + link + "\n= done =\n"), html: ptr(`<a href="` + link + `">go</a>` + strings.Repeat("é", 60)),
			wantText: "Go to " + link + "\n= done =\n", wantHT: `<a href="` + link + `">go</a>` + strings.Repeat("é", 60), wantType: "multipart/alternative",
		},
		{name: "text only", text: ptr("line one\nline two  \n"), wantText: "line one\nline two  \n", wantType: "text/plain"},
		{name: "HTML only", html: ptr("<p>hi</p>"), wantHT: "<p>hi</p>", wantType: "text/html"},
		{
			name: "custom headers", text: ptr("x"), headers: []map[string]string{{"Name": "List-Unsubscribe", "Value": "<mailto:u@turnover.localhost>"}},
			wantText: "x", wantType: "text/plain",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{}
			if tt.text != nil {
				body["Text"] = content(*tt.text)
			}
			if tt.html != nil {
				body["Html"] = content(*tt.html)
			}
			simple := map[string]any{"Subject": content("Reset: Jörg's extension"), "Body": body}
			if tt.headers != nil {
				simple["Headers"] = tt.headers
			}
			out, ok := simpleToRaw(sendEmailBody(t, simple, map[string]any{"ReplyToAddresses": []string{"help@turnover.localhost"}}), now)
			if !ok {
				t.Fatal("not rewritten")
			}
			req, raw := rawOf(t, out)
			if !strings.Contains(raw, "Content-Type: "+tt.wantType) {
				t.Errorf("raw MIME is not %s:\n%s", tt.wantType, raw)
			}
			for _, line := range strings.Split(raw, "\r\n") {
				if len(line) > 998 {
					t.Errorf("raw MIME has a line of %d bytes", len(line))
				}
			}
			var set, from string
			_ = json.Unmarshal(req["ConfigurationSetName"], &set)
			_ = json.Unmarshal(req["FromEmailAddress"], &from)
			if set != "local" || from != "Turnover <noreply@turnover.localhost>" {
				t.Errorf("other fields changed: %s", out)
			}
			// moto adds the To and Cc headers' recipients to Destination's.
			if got := string(req["Destination"]); got != `{"BccAddresses":["audit@niftywidgets.example"]}` {
				t.Errorf("Destination %s, want Bcc only", got)
			}
			for _, h := range tt.headers {
				if !strings.Contains(raw, h["Name"]+": "+h["Value"]+"\r\n") {
					t.Errorf("raw MIME lacks the header %s", h["Name"])
				}
			}
			if !strings.Contains(raw, "Reply-To: help@turnover.localhost\r\n") {
				t.Errorf("raw MIME lacks Reply-To:\n%s", raw)
			}

			// What moto stores: recipients of Destination, then of the headers.
			dest := []string{"audit@niftywidgets.example", "ext1005@niftywidgets.example", `"Ops Desk" <ops@niftywidgets.example>`}
			m := parseRaw("id-1", "Turnover <noreply@turnover.localhost>", dest, raw)
			want := Mail{
				ID: "id-1", From: "Turnover <noreply@turnover.localhost>",
				To: []string{"ext1005@niftywidgets.example"}, Cc: []string{"Ops Desk <ops@niftywidgets.example>"}, Bcc: []string{"audit@niftywidgets.example"},
				Subject: "Reset: Jörg's extension", Text: tt.wantText, HTML: tt.wantHT, SentAt: now,
			}
			if !mailEqual(m, want) {
				t.Errorf("parsed\n%+v\nwant\n%+v", m, want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func mailEqual(a, b Mail) bool {
	return a.ID == b.ID && a.From == b.From && strings.Join(a.To, "|") == strings.Join(b.To, "|") &&
		strings.Join(a.Cc, "|") == strings.Join(b.Cc, "|") && strings.Join(a.Bcc, "|") == strings.Join(b.Bcc, "|") &&
		a.Subject == b.Subject && a.Text == b.Text && a.HTML == b.HTML && a.SentAt.Equal(b.SentAt)
}

// Requests whose content the front door would not carry over exactly reach moto as
// they came.
func TestSimpleToRawLeavesAlone(t *testing.T) {
	text := map[string]any{"Text": content("x")}
	tests := []struct {
		name string
		body []byte
	}{
		{"not JSON", []byte("{")},
		{"raw content", []byte(`{"FromEmailAddress":"a@b.example","Content":{"Raw":{"Data":"eA=="}}}`)},
		{"template content", []byte(`{"FromEmailAddress":"a@b.example","Content":{"Template":{"TemplateName":"t"}}}`)},
		{"attachments", sendEmailBody(t, map[string]any{"Subject": content("s"), "Body": text, "Attachments": []any{map[string]any{"FileName": "a.txt", "RawContent": "eA=="}}}, nil)},
		{"no from", sendEmailBody(t, map[string]any{"Subject": content("s"), "Body": text}, map[string]any{"FromEmailAddress": nil})},
		{"no body", sendEmailBody(t, map[string]any{"Subject": content("s"), "Body": map[string]any{}}, nil)},
		{"unreadable address", sendEmailBody(t, map[string]any{"Subject": content("s"), "Body": text}, map[string]any{"Destination": map[string]any{"ToAddresses": []string{"no domain"}}})},
		{"header name with a colon", sendEmailBody(t, map[string]any{"Subject": content("s"), "Body": text, "Headers": []map[string]string{{"Name": "X-A:", "Value": "v"}}}, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, ok := simpleToRaw(tt.body, time.Now()); ok {
				t.Errorf("rewritten to %s", out)
			}
		})
	}
}

// Header values cannot add headers of their own.
func TestSimpleToRawEncodesLineBreaks(t *testing.T) {
	out, ok := simpleToRaw(sendEmailBody(t, map[string]any{
		"Subject": content("hi\r\nBcc: victim@example.com"),
		"Body":    map[string]any{"Text": content("x")},
		"Headers": []map[string]string{{"Name": "X-Note", "Value": "a\nTo: other@example.com"}},
	}, nil), time.Now())
	if !ok {
		t.Fatal("not rewritten")
	}
	_, raw := rawOf(t, out)
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "To: other") {
			t.Errorf("a header value broke into a header of its own:\n%s", head)
		}
	}
	if m := parseRaw("id", "", nil, raw); m.Subject != "hi\r\nBcc: victim@example.com" {
		t.Errorf("subject came back as %q", m.Subject)
	}
}

// Raw MIME from other senders: nested multiparts, base64, Latin-1, attachments.
func TestParseRaw(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("<p>Grüße</p>\r\n"))
	raw := strings.Join([]string{
		"From: =?iso-8859-1?q?J=F6rg?= <jorg@turnover.localhost>",
		"To: a@example.com",
		"Subject: =?utf-8?b?R3LDvMOfZQ==?=",
		"Date: Tue, 04 Mar 2025 05:06:07 +0100",
		"Content-Type: multipart/mixed; boundary=outer",
		"",
		"--outer",
		"Content-Type: multipart/alternative; boundary=inner",
		"",
		"--inner",
		"Content-Type: text/plain; charset=iso-8859-1",
		"Content-Transfer-Encoding: quoted-printable",
		"",
		"Gr=FC=DFe, a=3Db",
		"--inner",
		"Content-Type: text/html; charset=utf-8",
		"Content-Transfer-Encoding: base64",
		"",
		b64[:8],
		b64[8:],
		"--inner--",
		"--outer",
		"Content-Type: text/plain",
		"Content-Disposition: attachment; filename=notes.txt",
		"",
		"not the body",
		"--outer--",
		"",
	}, "\r\n")
	m := parseRaw("id", "jorg@turnover.localhost", []string{"a@example.com", "hidden@example.com"}, raw)
	want := Mail{
		ID: "id", From: "Jörg <jorg@turnover.localhost>", To: []string{"a@example.com"}, Bcc: []string{"hidden@example.com"},
		Subject: "Grüße", Text: "Grüße, a=b", HTML: "<p>Grüße</p>\n",
		SentAt: time.Date(2025, 3, 4, 4, 6, 7, 0, time.UTC),
	}
	if !mailEqual(m, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", m, want)
	}
}

func TestMailOfNewestFirst(t *testing.T) {
	var data motoMail
	if err := json.Unmarshal([]byte(`{"ses":{
		"Message":[{"id":"m1","source":"a@x.example","subject":"v1","body":"<p>html kept</p>","destinations":{"ToAddresses":["b@x.example"]}},
		           {"id":"m2","source":"a@x.example","subject":"v1","body":"text kept","destinations":{}}],
		"RawMessage":[
		  {"id":"r1","source":"a@x.example","destinations":["b@x.example"],"raw_data":"Date: Tue, 04 Mar 2025 05:06:07 +0000\r\nTo: b@x.example\r\n\r\nfirst"},
		  {"id":"r2","source":"a@x.example","destinations":["b@x.example"],"raw_data":"Date: Tue, 04 Mar 2025 05:06:09 +0000\r\nTo: b@x.example\r\n\r\nthird"},
		  {"id":"r3","source":"a@x.example","destinations":["b@x.example"],"raw_data":"Date: Tue, 04 Mar 2025 05:06:07 +0000\r\nTo: b@x.example\r\n\r\nsecond"}]}}`), &data); err != nil {
		t.Fatal(err)
	}
	msgs := mailOf(data)
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	// By Date, then the later taken first; messages moto keeps without a Date last.
	if got, want := strings.Join(ids, " "), "r2 r3 r1 m2 m1"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}
	byID := map[string]Mail{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	if m := byID["m1"]; m.HTML != "<p>html kept</p>" || m.Text != "" || strings.Join(m.To, ",") != "b@x.example" {
		t.Errorf("m1 %+v, want its body as HTML", m)
	}
	if m := byID["m2"]; m.Text != "text kept" || m.HTML != "" || m.To == nil {
		t.Errorf("m2 %+v, want its body as text and an empty To", m)
	}
}

func TestMailPage(t *testing.T) {
	msgs := []Mail{{
		ID: "1", From: "a@x.example", To: []string{"b@x.example"}, Subject: `<b>"hi"</b>`,
		Text:   "See https://x.example/a?b=1&c=2. Or javascript:alert(1)",
		HTML:   `<a href="https://x.example/h?b=1&amp;c=2">h</a><a href="javascript:alert(1)">j</a><script>alert(1)</script>"'`,
		SentAt: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
	}}
	var b bytes.Buffer
	if err := renderMailPage(&b, msgs, time.UTC); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`<h2 id="mail-1">&lt;b&gt;&#34;hi&#34;&lt;/b&gt;</h2>`,
		`<a href="https://x.example/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">https://x.example/a?b=1&amp;c=2</a>. Or javascript:alert(1)`,
		`<li><a href="https://x.example/h?b=1&amp;c=2"`,
		`srcdoc="&lt;base target=&#34;_blank&#34;&gt;&lt;a href=&#34;https://x.example/h?b=1&amp;amp;c=2&#34;&gt;h&lt;/a&gt;`,
		`&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;"></iframe>`,
		`<time datetime="2025-03-04T05:06:07Z">2025-03-04 05:06:07 UTC</time>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, `href="javascript:`) {
		t.Errorf("page holds active content:\n%s", page)
	}
}
