package setup

import (
	"bytes"
	_ "embed"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

type mailData struct {
	Brand     string
	FirstName string
	Login     string
	Extension string
	Link      string
	Hours     int
	Recovery  bool
}

type message struct{ subject, text, html string }

var (
	//go:embed mail.txt.tmpl
	textSource string
	//go:embed mail.html.tmpl
	htmlSource string

	textMail = texttemplate.Must(texttemplate.New("text").Parse(textSource))
	htmlMail = htmltemplate.Must(htmltemplate.New("html").Parse(htmlSource))
)

// render writes a welcome or recovery mail as plain text and HTML. The HTML has no
// remote images or scripts: a button and a plain copy of the link.
func render(d mailData) (message, error) {
	subject := "Welcome to " + d.Brand + ": set up your phone account"
	if d.Recovery {
		subject = d.Brand + ": set a new password"
	}
	var text, html bytes.Buffer
	if err := textMail.Execute(&text, d); err != nil {
		return message{}, err
	}
	if err := htmlMail.Execute(&html, d); err != nil {
		return message{}, err
	}
	return message{subject: subject, text: strings.TrimSpace(text.String()) + "\n", html: html.String()}, nil
}
