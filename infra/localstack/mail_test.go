package localstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"turnover/infra/localstack"
)

const senderEmail = "noreply@turnover.localhost"

// senderParameter and senderResource declare the sender identity; templateWithSender
// adds them to a copy of a template that declares no email identity.
const (
	senderParameter = `  SenderEmail:
    Type: String
    Default: noreply@turnover.localhost
`
	senderResource = `  SenderIdentity:
    Type: AWS::SES::EmailIdentity
    Properties:
      EmailIdentity: !Ref SenderEmail
`
)

// templateWithSender copies the repository's template and state machines to a
// temporary directory, with the sender identity added when the template has none.
func templateWithSender(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := string(b)
	if !strings.Contains(tmpl, "AWS::SES::EmailIdentity") {
		for _, add := range []struct{ section, text string }{{"\nParameters:\n", senderParameter}, {"\nResources:\n", senderResource}} {
			if !strings.Contains(tmpl, add.section) {
				t.Fatalf("template has no %q section", strings.TrimSpace(add.section))
			}
			tmpl = strings.Replace(tmpl, add.section, add.section+add.text, 1)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "template.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "statemachine"), os.DirFS("../../statemachine")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mailStack starts a stack of its own, so that the mail it lists is this test's only.
func mailStack(t *testing.T) *localstack.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Options{
		Dir:           templateWithSender(t),
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		Functions:     fakeFunctions(),
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("start local stack: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func simpleEmail(from string, to []string, subject, text, html string) *sesv2.SendEmailInput {
	body := &sestypes.Body{}
	if text != "" {
		body.Text = &sestypes.Content{Data: aws.String(text), Charset: aws.String("UTF-8")}
	}
	if html != "" {
		body.Html = &sestypes.Content{Data: aws.String(html), Charset: aws.String("UTF-8")}
	}
	return &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(from),
		Destination:      &sestypes.Destination{ToAddresses: to},
		Content: &sestypes.EmailContent{Simple: &sestypes.Message{
			Subject: &sestypes.Content{Data: aws.String(subject), Charset: aws.String("UTF-8")},
			Body:    body,
		}},
	}
}

// TestSentMail sends mail through the front door with the SDK's SES v2 client, from the
// template's sender identity, and reads it back from the HTTP API's port.
func TestSentMail(t *testing.T) {
	s := mailStack(t)
	ctx := context.Background()
	ses := sesv2.NewFromConfig(s.AWS)

	if _, err := ses.SendEmail(ctx, simpleEmail("intruder@example.com", []string{"ext1005@niftywidgets.example"}, "hi", "hi", "")); !isMessageRejected(err) {
		t.Errorf("send from an address without an identity: %v, want MessageRejected", err)
	}

	const link = "https://portal.turnover.localhost/activate?auth_code=abc_-123&username=MTAwNUBuaWZ0eXdpZGdldHM%3D&lang=en_us"
	first, err := ses.SendEmail(ctx, simpleEmail(senderEmail, []string{"ext1004@niftywidgets.example"}, "Your extension was reset", "Plain only.\n", ""))
	if err != nil {
		t.Fatalf("send from the sender identity: %v", err)
	}
	subject := `Extension 1005 <reset> & "ready" – ünïcode`
	text := "Hello Jörg,\n\nset your password here:\n" + link + "\n\nThe link works once. " + strings.Repeat("A long line that quoted-printable must wrap. ", 4) + "\n-- \nturnover\n"
	html := `<!doctype html><html><body><p>Hello Jörg,</p><p><a href="` + strings.ReplaceAll(link, "&", "&amp;") + `">Set your password</a> = 100%</p>` +
		"\n<p>" + strings.Repeat("x", 200) + "</p><script>alert(1)</script></body></html>\n"
	to := []string{"Jörg Müller <ext1005@niftywidgets.example>", "ext1006@niftywidgets.example"}
	second, err := ses.SendEmail(ctx, simpleEmail(senderEmail, to, subject, text, html))
	if err != nil {
		t.Fatalf("send text and HTML: %v", err)
	}

	resp, body := sendURL(t, http.MethodGet, s.APIURL+"/_local/mail", "", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /_local/mail: %s, Cache-Control %q, Content-Type %q\n%s", resp.Status, resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type"), body)
	}
	var got struct {
		Messages []struct {
			ID, From, Subject, Text, HTML string
			To                            []string
			SentAt                        time.Time
		}
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("GET /_local/mail: %v\n%s", err, body)
	}
	if len(got.Messages) != 2 {
		t.Fatalf("%d messages, want 2:\n%s", len(got.Messages), body)
	}
	m, old := got.Messages[0], got.Messages[1]
	if m.ID != aws.ToString(second.MessageId) || old.ID != aws.ToString(first.MessageId) {
		t.Errorf("message ids %s, %s; want the newest first: %s, %s", m.ID, old.ID, aws.ToString(second.MessageId), aws.ToString(first.MessageId))
	}
	if m.From != senderEmail {
		t.Errorf("from %q, want %q", m.From, senderEmail)
	}
	if strings.Join(m.To, "|") != strings.Join(to, "|") {
		t.Errorf("to %q, want %q", m.To, to)
	}
	if m.Subject != subject {
		t.Errorf("subject %q, want %q", m.Subject, subject)
	}
	if m.Text != text {
		t.Errorf("text body\n%q\nwant\n%q", m.Text, text)
	}
	if m.HTML != html {
		t.Errorf("HTML body\n%q\nwant\n%q", m.HTML, html)
	}
	if !strings.Contains(m.Text, link) {
		t.Errorf("text body lost the link %s", link)
	}
	if d := time.Since(m.SentAt); d < 0 || d > time.Minute {
		t.Errorf("sent at %v, want about now", m.SentAt)
	}
	if old.Text != "Plain only.\n" || old.HTML != "" || old.Subject != "Your extension was reset" {
		t.Errorf("text-only message came back as text %q, HTML %q, subject %q", old.Text, old.HTML, old.Subject)
	}

	resp, body = sendURL(t, http.MethodGet, s.APIURL+"/_local/mail.html", "", nil, nil)
	page := string(body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /_local/mail.html: %s, Cache-Control %q, Content-Type %q", resp.Status, resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"Extension 1005 &lt;reset&gt; &amp; &#34;ready&#34; – ünïcode",
		`<a href="` + strings.ReplaceAll(link, "&", "&amp;") + `"`,
		"<iframe ",
		"sandbox=",
		"Your extension was reset",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("mail page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "<p>Hello") {
		t.Errorf("mail page holds the HTML body unescaped:\n%s", page)
	}
}

func isMessageRejected(err error) bool {
	var rejected *sestypes.MessageRejected
	return errors.As(err, &rejected)
}
