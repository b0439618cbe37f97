package localstack

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/textproto"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Mail is one message sent through SES.
type Mail struct {
	// ID is the MessageId SES answered with.
	ID   string   `json:"id"`
	From string   `json:"from"`
	To   []string `json:"to"`
	Cc   []string `json:"cc,omitempty"`
	Bcc  []string `json:"bcc,omitempty"`
	// Subject, Text and HTML are decoded; line breaks in Text and HTML are "\n".
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
	// SentAt is the message's Date, to the second. It is zero for a message moto
	// stored without one: one sent with SES v1 SendEmail, or SES v2 Simple content the
	// front door left as it was (with attachments).
	SentAt time.Time `json:"sentAt,omitzero"`
}

// maxMailRequest bounds the SES v2 SendEmail body the front door reads; SES takes
// messages up to 40 MB.
const maxMailRequest = 48 << 20

// simpleAsRaw turns an SES v2 SendEmail request with Simple content into the same
// request with Raw content before it reaches moto. moto keeps a Simple message's HTML
// body and drops its text body, and keeps no time; as raw MIME it keeps both bodies and
// the Date. The MIME is what SES builds from Simple content: multipart/alternative
// when there are both bodies, quoted-printable UTF-8 parts, encoded headers.
//
// A request larger than maxMailRequest, or whose content would not carry over
// exactly, goes to moto as it came. It fails only when the body cannot be read.
func (s *Stack) simpleAsRaw(r *http.Request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMailRequest+1))
	if err != nil {
		return fmt.Errorf("read SendEmail request: %w", err)
	}
	if len(body) > maxMailRequest {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		return nil
	}
	_ = r.Body.Close()
	if raw, ok := simpleToRaw(body, time.Now()); ok {
		body = raw
		s.log.Debug("ses: Simple content goes to moto as raw MIME")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Del("Content-Length")
	return nil
}

// sesContent is SES v2's Content.
type sesContent struct {
	Data    *string
	Charset string
}

// simpleToRaw rewrites the JSON body of an SES v2 SendEmail request whose content is
// Simple so that it sends the equivalent raw MIME message. To and Cc become headers
// and leave Destination, as moto adds a raw message's header recipients to
// Destination's; Bcc stays in Destination only. It reports false, and the body is to
// be sent as it is, when the content is not Simple or holds what it does not carry
// over (attachments, an address net/mail cannot parse).
func simpleToRaw(body []byte, now time.Time) ([]byte, bool) {
	var req map[string]json.RawMessage
	if json.Unmarshal(body, &req) != nil {
		return nil, false
	}
	var content struct {
		Simple json.RawMessage
	}
	if json.Unmarshal(req["Content"], &content) != nil || content.Simple == nil {
		return nil, false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(content.Simple, &fields) != nil {
		return nil, false
	}
	for k := range fields {
		if k != "Subject" && k != "Body" && k != "Headers" {
			return nil, false
		}
	}
	var simple struct {
		Subject *sesContent
		Body    struct{ Text, Html *sesContent }
		Headers []struct{ Name, Value string }
	}
	var dest struct{ ToAddresses, CcAddresses, BccAddresses []string }
	var from string
	var replyTo []string
	if json.Unmarshal(content.Simple, &simple) != nil ||
		json.Unmarshal(req["FromEmailAddress"], &from) != nil ||
		(req["Destination"] != nil && json.Unmarshal(req["Destination"], &dest) != nil) ||
		(req["ReplyToAddresses"] != nil && json.Unmarshal(req["ReplyToAddresses"], &replyTo) != nil) {
		return nil, false
	}
	text, htmlBody := contentData(simple.Body.Text), contentData(simple.Body.Html)
	if from == "" || (text == nil && htmlBody == nil) {
		return nil, false
	}

	var h strings.Builder
	header := func(name, value string) { h.WriteString(name + ": " + value + "\r\n") }
	for _, a := range []struct {
		name  string
		addrs []string
	}{{"From", []string{from}}, {"To", dest.ToAddresses}, {"Cc", dest.CcAddresses}, {"Reply-To", replyTo}} {
		if len(a.addrs) == 0 {
			continue
		}
		v, ok := addressHeader(a.addrs)
		if !ok {
			return nil, false
		}
		header(a.name, v)
	}
	subject := ""
	if d := contentData(simple.Subject); d != nil {
		subject = *d
	}
	header("Subject", mime.QEncoding.Encode("UTF-8", subject))
	header("Date", now.Format(time.RFC1123Z))
	header("MIME-Version", "1.0")
	for _, x := range simple.Headers {
		if !validHeaderName(x.Name) {
			return nil, false
		}
		header(x.Name, mime.QEncoding.Encode("UTF-8", x.Value))
	}

	var b bytes.Buffer
	switch {
	case text != nil && htmlBody != nil:
		mw := multipart.NewWriter(&b)
		header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
		for _, part := range []struct{ typ, data string }{{"text/plain", *text}, {"text/html", *htmlBody}} {
			w, err := mw.CreatePart(textproto.MIMEHeader{
				"Content-Type":              {part.typ + "; charset=UTF-8"},
				"Content-Transfer-Encoding": {"quoted-printable"},
			})
			if err != nil || writeQuotedPrintable(w, part.data) != nil {
				return nil, false
			}
		}
		if mw.Close() != nil {
			return nil, false
		}
	default:
		typ, data := "text/plain", text
		if text == nil {
			typ, data = "text/html", htmlBody
		}
		header("Content-Type", typ+"; charset=UTF-8")
		header("Content-Transfer-Encoding", "quoted-printable")
		if writeQuotedPrintable(&b, *data) != nil {
			return nil, false
		}
	}
	msg := h.String() + "\r\n" + b.String()

	rawContent, err := json.Marshal(map[string]any{"Raw": map[string]string{"Data": base64.StdEncoding.EncodeToString([]byte(msg))}})
	if err != nil {
		return nil, false
	}
	req["Content"] = rawContent
	delete(req, "Destination")
	if len(dest.BccAddresses) > 0 {
		if req["Destination"], err = json.Marshal(map[string][]string{"BccAddresses": dest.BccAddresses}); err != nil {
			return nil, false
		}
	}
	out, err := json.Marshal(req)
	if err != nil {
		return nil, false
	}
	return out, true
}

func contentData(c *sesContent) *string {
	if c == nil {
		return nil
	}
	return c.Data
}

// addressHeader formats addresses for a header, the display names encoded.
func addressHeader(addrs []string) (string, bool) {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		parsed, err := mail.ParseAddress(a)
		if err != nil {
			return "", false
		}
		if parsed.Name == "" {
			out = append(out, parsed.Address)
			continue
		}
		out = append(out, parsed.String())
	}
	return strings.Join(out, ", "), true
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func writeQuotedPrintable(w io.Writer, s string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, s); err != nil {
		return err
	}
	return qp.Close()
}

// motoMail is the part of moto's data.json holding sent mail.
type motoMail struct {
	SES struct {
		// Message is SES v1 SendEmail's, and SES v2 Simple content's left as it was:
		// moto keeps one body, the HTML one when there were both.
		Message []struct {
			ID           string          `json:"id"`
			Source       string          `json:"source"`
			Subject      string          `json:"subject"`
			Body         string          `json:"body"`
			Destinations json.RawMessage `json:"destinations"`
		} `json:"Message"`
		// RawMessage is raw MIME, with every recipient in destinations, those of the
		// To, Cc and Bcc headers included.
		RawMessage []struct {
			ID           string   `json:"id"`
			Source       string   `json:"source"`
			Destinations []string `json:"destinations"`
			RawData      string   `json:"raw_data"`
		} `json:"RawMessage"`
	} `json:"ses"`
}

// SentMail returns the mail moto took from SES SendEmail and SendRawEmail, newest first.
// It fails when moto does not answer or its answer cannot be read; a message whose MIME
// cannot be read is listed with what could be.
func (s *Stack) SentMail(ctx context.Context) ([]Mail, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.motoURL.String()+"/moto-api/data.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: s.proxy.Transport}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("read sent mail from moto: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read sent mail from moto: %s", resp.Status)
	}
	var data motoMail
	if err := json.NewDecoder(resp.Body).Decode(&data); err != nil {
		return nil, fmt.Errorf("read sent mail from moto: %w", err)
	}
	return mailOf(data), nil
}

// mailOf lists moto's messages newest first: by Date, then in reverse of the order
// moto took them, which is the order of its lists.
func mailOf(data motoMail) []Mail {
	var out []Mail
	for i := len(data.SES.RawMessage) - 1; i >= 0; i-- {
		m := data.SES.RawMessage[i]
		out = append(out, parseRaw(m.ID, m.Source, m.Destinations, m.RawData))
	}
	for i := len(data.SES.Message) - 1; i >= 0; i-- {
		m := data.SES.Message[i]
		var dest struct{ ToAddresses, CcAddresses, BccAddresses []string }
		_ = json.Unmarshal(m.Destinations, &dest)
		ml := Mail{ID: m.ID, From: m.Source, To: dest.ToAddresses, Cc: dest.CcAddresses, Bcc: dest.BccAddresses, Subject: m.Subject}
		if looksLikeHTML(m.Body) {
			ml.HTML = m.Body
		} else {
			ml.Text = m.Body
		}
		out = append(out, ml)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].SentAt.After(out[j].SentAt) })
	for i := range out {
		if out[i].To == nil {
			out[i].To = []string{}
		}
	}
	return out
}

var htmlTag = regexp.MustCompile(`(?i)<(!doctype|html|head|body|p|div|br|a|table|span|h[1-6]|ul|ol|li|img|strong|em|b|i)\b[^>]*>`)

func looksLikeHTML(s string) bool { return htmlTag.MatchString(s) }

// parseRaw reads one raw MIME message: its first text/plain and text/html parts,
// transfer encodings and charsets undone, CRLF line breaks made "\n".
func parseRaw(id, source string, destinations []string, raw string) Mail {
	m := Mail{ID: id, From: source}
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		m.Text = raw
		return m
	}
	dec := new(mime.WordDecoder)
	if v, err := dec.DecodeHeader(msg.Header.Get("Subject")); err == nil {
		m.Subject = v
	} else {
		m.Subject = msg.Header.Get("Subject")
	}
	if from := addressList(msg.Header, "From"); len(from) > 0 {
		m.From = from[0]
	}
	m.To = addressList(msg.Header, "To")
	m.Cc = addressList(msg.Header, "Cc")
	seen := map[string]bool{}
	for _, a := range append(append([]string{}, m.To...), m.Cc...) {
		seen[bareAddress(a)] = true
	}
	for _, a := range addressList(msg.Header, "Bcc") {
		seen[bareAddress(a)] = true
		m.Bcc = append(m.Bcc, a)
	}
	for _, d := range destinations {
		if a := bareAddress(d); !seen[a] {
			seen[a] = true
			m.Bcc = append(m.Bcc, d)
		}
	}
	if t, err := msg.Header.Date(); err == nil {
		m.SentAt = t
	}
	_ = readPart(textproto.MIMEHeader(msg.Header), msg.Body, &m, 0)
	return m
}

func addressList(h mail.Header, key string) []string {
	list, err := h.AddressList(key)
	if err != nil {
		if v := h.Get(key); v != "" {
			return []string{v}
		}
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, formatAddress(a))
	}
	return out
}

// formatAddress writes an address as a person would: the display name decoded.
func formatAddress(a *mail.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.Name + " <" + a.Address + ">"
}

func bareAddress(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		return strings.ToLower(a.Address)
	}
	return strings.ToLower(strings.TrimSpace(s))
}

// maxMIMEDepth bounds how deep multiparts nest.
const maxMIMEDepth = 8

func readPart(h textproto.MIMEHeader, body io.Reader, m *Mail, depth int) error {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		mt, params = "text/plain", nil // RFC 2045's default
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= maxMIMEDepth {
			return errors.New("multipart nested too deep")
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := readPart(p.Header, p, m, depth+1); err != nil {
				return err
			}
		}
	}
	if disp, _, _ := mime.ParseMediaType(h.Get("Content-Disposition")); disp == "attachment" {
		return nil
	}
	if (mt != "text/plain" || m.Text != "") && (mt != "text/html" || m.HTML != "") {
		return nil
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, &skipSpace{r: body})
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	text := strings.ReplaceAll(decodeCharset(params["charset"], b), "\r\n", "\n")
	if mt == "text/plain" {
		m.Text = text
	} else {
		m.HTML = text
	}
	return nil
}

// decodeCharset turns a body into UTF-8 for the charsets mail from Go and SES comes in;
// others are left as they are.
func decodeCharset(charset string, b []byte) string {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1", "latin-1":
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r)
	}
	return string(b)
}

// skipSpace drops the line breaks and spaces base64 bodies are wrapped with.
type skipSpace struct{ r io.Reader }

func (s *skipSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// serveMail answers GET /_local/mail with the sent mail as JSON, newest first.
func (s *Stack) serveMail(w http.ResponseWriter, r *http.Request) {
	msgs, ok := s.mailFor(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Messages []Mail `json:"messages"`
	}{append([]Mail{}, msgs...)})
}

// serveMailPage answers GET /_local/mail.html with a page listing the sent mail.
func (s *Stack) serveMailPage(w http.ResponseWriter, r *http.Request) {
	msgs, ok := s.mailFor(w, r)
	if !ok {
		return
	}
	var b bytes.Buffer
	if err := renderMailPage(&b, msgs, time.Local); err != nil {
		s.log.Error("render mail page", "err", err)
		writeAPIMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Mail bodies stay in sandboxed frames without scripts; the page runs none either.
	h.Set("Content-Security-Policy", "script-src 'none'; object-src 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(b.Bytes())
}

// mailFor answers what the two mail pages have in common and returns the mail, or
// reports false when it has answered.
func (s *Stack) mailFor(w http.ResponseWriter, r *http.Request) ([]Mail, bool) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeAPIMessage(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return nil, false
	}
	if !s.ready.Load() {
		writeAPIMessage(w, http.StatusServiceUnavailable, "starting")
		return nil, false
	}
	msgs, err := s.SentMail(r.Context())
	if err != nil {
		s.log.Error("sent mail", "err", err)
		writeAPIMessage(w, http.StatusBadGateway, "moto did not answer")
		return nil, false
	}
	return msgs, true
}

// mailView is one message as the page shows it.
type mailView struct {
	Mail
	N        int
	ToLine   string
	CcLine   string
	BccLine  string
	Sent     string
	SentISO  string
	Srcdoc   string // the HTML body, opening links in a new tab; escaped by the template
	TextBody []textRun
	Links    []string
}

// textRun is a stretch of a text body: a link when URL is set.
type textRun struct{ Text, URL string }

var mailPage = template.Must(template.New("mail").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sent mail – turnover local stack</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem; color: #1a1a1a; background: #fff; }
article { border: 1px solid #767676; border-radius: .5rem; padding: 1rem; margin: 1rem 0; }
h2 { margin: 0 0 .5rem; font-size: 1.25rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0 0 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
iframe { width: 100%; height: 28rem; border: 1px solid #767676; resize: vertical; background: #fff; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f3f3f3; padding: .75rem; }
a { color: #0645ad; overflow-wrap: anywhere; }
a:focus-visible, summary:focus-visible { outline: 3px solid #1a1a1a; outline-offset: 2px; }
</style>
</head>
<body>
<header>
<h1>Sent mail</h1>
<p>{{len .}} message{{if ne (len .) 1}}s{{end}} sent through the local stack's SES, newest first. Nothing left this machine. <a href="/_local/mail">As JSON</a></p>
</header>
<main>
{{range .}}<article aria-labelledby="mail-{{.N}}">
<h2 id="mail-{{.N}}">{{if .Subject}}{{.Subject}}{{else}}(no subject){{end}}</h2>
<dl>
<dt>To</dt><dd>{{.ToLine}}</dd>
{{if .CcLine}}<dt>Cc</dt><dd>{{.CcLine}}</dd>
{{end}}{{if .BccLine}}<dt>Bcc</dt><dd>{{.BccLine}}</dd>
{{end}}<dt>From</dt><dd>{{.From}}</dd>
<dt>Sent</dt><dd>{{if .SentISO}}<time datetime="{{.SentISO}}">{{.Sent}}</time>{{else}}unknown{{end}}</dd>
</dl>
{{if .Links}}<h3>Links</h3>
<ul>
{{range .Links}}<li><a href="{{.}}" target="_blank" rel="noopener noreferrer">{{.}}</a></li>
{{end}}</ul>
{{end}}{{if .HTML}}<h3>HTML body</h3>
<iframe title="HTML body of {{if .Subject}}{{.Subject}}{{else}}the message{{end}}" sandbox="allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer" srcdoc="{{.Srcdoc}}"></iframe>
{{end}}{{if .Text}}<details{{if not .HTML}} open{{end}}>
<summary>Text body</summary>
<pre>{{range .TextBody}}{{if .URL}}<a href="{{.URL}}" target="_blank" rel="noopener noreferrer">{{.Text}}</a>{{else}}{{.Text}}{{end}}{{end}}</pre>
</details>
{{end}}</article>
{{else}}<p>No mail yet.</p>
{{end}}</main>
</body>
</html>
`))

func renderMailPage(w io.Writer, msgs []Mail, loc *time.Location) error {
	views := make([]mailView, len(msgs))
	for i, m := range msgs {
		v := mailView{
			Mail:     m,
			N:        i + 1,
			ToLine:   strings.Join(m.To, ", "),
			CcLine:   strings.Join(m.Cc, ", "),
			BccLine:  strings.Join(m.Bcc, ", "),
			TextBody: textRuns(m.Text),
			Links:    mailLinks(m),
		}
		if !m.SentAt.IsZero() {
			v.Sent = m.SentAt.In(loc).Format("2006-01-02 15:04:05 MST")
			v.SentISO = m.SentAt.Format(time.RFC3339)
		}
		if m.HTML != "" {
			v.Srcdoc = `<base target="_blank">` + m.HTML
		}
		views[i] = v
	}
	return mailPage.Execute(w, views)
}

var (
	textURL = regexp.MustCompile(`https?://[^\s<>"]+`)
	hrefURL = regexp.MustCompile(`(?i)\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))`)
)

// trimURL drops the punctuation that ends a sentence rather than a URL.
func trimURL(u string) string { return strings.TrimRight(u, ".,;:!?)]}'") }

// textRuns splits a text body into text and the http(s) URLs in it.
func textRuns(s string) []textRun {
	var out []textRun
	last := 0
	for _, loc := range textURL.FindAllStringIndex(s, -1) {
		u := trimURL(s[loc[0]:loc[1]])
		if loc[0] > last {
			out = append(out, textRun{Text: s[last:loc[0]]})
		}
		out = append(out, textRun{Text: u, URL: u})
		last = loc[0] + len(u)
	}
	if last < len(s) {
		out = append(out, textRun{Text: s[last:]})
	}
	return out
}

// mailLinks returns the http(s) links of a message, from its HTML body's href
// attributes and its text body, each once.
func mailLinks(m Mail) []string {
	var out []string
	seen := map[string]bool{}
	add := func(u string) {
		u = strings.TrimSpace(u)
		l := strings.ToLower(u)
		if (strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")) && utf8.ValidString(u) && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, g := range hrefURL.FindAllStringSubmatch(m.HTML, -1) {
		add(html.UnescapeString(g[1] + g[2] + g[3]))
	}
	for _, u := range textURL.FindAllString(m.Text, -1) {
		add(trimURL(u))
	}
	return out
}
