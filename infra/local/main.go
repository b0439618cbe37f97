// Command local runs turnover on this machine: the local stack (moto, the AWS front
// door and the HTTP API) in the foreground, dev tokens for its API, and the state
// machine definitions with their substitutions resolved.
//
//	local [dev]        run the local stack until Ctrl-C
//	local token        print a dev JWT for the local HTTP API
//	local render-asl   write each state machine's resolved definition
//
// LOCAL_FAULTS, when set, makes dev fail a share of the AWS calls with the retryable
// errors AWS answers under load and add latency, e.g.
// LOCAL_FAULTS=dynamodb=0.10,s3=0.05,lambda=0.05,ses=0.10,sqs=0.05,latency=20ms,seed=7
// (see localstack.ParseFaults).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"turnover/infra/localstack"
	"turnover/internal/app"
	"turnover/internal/demo"
	"turnover/internal/turnover"
)

const defaultKeyFile = ".local/jwt-key.pem"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "local:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "dev"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "dev":
		return dev(args, stdout, stderr)
	case "token":
		return token(args, stdout, stderr)
	case "render-asl":
		return renderASL(args, stdout, stderr)
	}
	fmt.Fprintln(stderr, "usage: local [dev|token|render-asl] [flags]")
	return fmt.Errorf("unknown command %q", cmd)
}

// keyFile is the dev signing key: the flag's value, else .local/jwt-key.pem under dir.
func keyFile(flagValue, dir string) string {
	if flagValue != "" {
		return flagValue
	}
	return filepath.Join(dir, defaultKeyFile)
}

func dev(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	awsAddr := fs.String("aws-addr", "127.0.0.1:4566", "address of the AWS front door (`host:port`; the host must be an IP)")
	apiAddr := fs.String("api-addr", "127.0.0.1:3000", "address of the HTTP API (`host:port`)")
	dir := fs.String("dir", ".", "repository root holding template.yaml")
	key := fs.String("key", "", "PEM RSA key that signs dev tokens, made if missing (default <dir>/"+defaultKeyFile+")")
	verbose := fs.Bool("v", false, "log every AWS call and moto's output")
	tick := fs.Duration("schedule-tick", 5*time.Second, "fire scheduled functions this often instead of on their template schedule (0: the template's; negative: only on POST /_local/schedules:fire)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// A typo in the spec fails the start rather than running without the faults asked
	// for.
	var faults localstack.FaultInjector
	faultsBanner := "off"
	if spec := os.Getenv("LOCAL_FAULTS"); strings.TrimSpace(spec) != "" {
		f, err := localstack.ParseFaults(spec)
		if err != nil {
			return fmt.Errorf("LOCAL_FAULTS: %w", err)
		}
		faults, faultsBanner = f, f.String()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := localstack.Start(ctx, localstack.Options{
		Dir:           *dir,
		FrontDoorAddr: *awsAddr,
		APIAddr:       *apiAddr,
		KeyFile:       keyFile(*key, *dir),
		Functions:     app.Functions,
		Logger:        log,
		ScheduleTick:  *tick,
		Faults:        faults,
		// The demo domain (niftywidgets) from internal/demo.
		Seed: func(ctx context.Context, cfg aws.Config, res localstack.Resources) error {
			return demo.Seed(ctx, cfg, res.Tables["Table"], res.Buckets["Bucket"])
		},
	})
	if err != nil {
		return err
	}
	defer s.Close()

	fmt.Fprintf(stdout, `
turnover local stack
  HTTP API     %s   (GET /healthz; routes from template.yaml)
  AWS endpoint %s   (AWS_ENDPOINT_URL; calls counted at /_local/calls)
  sent mail    %s/_local/mail.html   (JSON at /_local/mail)
  schedules    %s   (fire now: POST /_local/schedules:fire)
  faults       %s   (LOCAL_FAULTS; change: POST /_local/faults {"spec":"dynamodb=0.1"}; counts: GET /_local/faults)
  state machine %s
  table %s, bucket %s

  token:  make token   (or: go run ./infra/local token -domain niftywidgets)
  try:    curl -H "Authorization: Bearer $(make -s token)" %s/v1/domains/niftywidgets/users

Ctrl-C stops everything.
`, s.APIURL, s.FrontDoorURL, s.APIURL, scheduleBanner(s.Schedules(), *tick), faultsBanner, s.Resources.StateMachines["ResetStateMachine"],
		s.Resources.Tables["Table"], s.Resources.Buckets["Bucket"], s.APIURL)

	<-ctx.Done()
	stop() // a second Ctrl-C ends the process at once
	log.Info("stopping")
	if c, ok := s.Faults().(interface{ Injected() map[string]int }); ok {
		fmt.Fprintln(stdout, "faults injected:", injectedSummary(c.Injected()))
	}
	if err := s.Close(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// injectedSummary lists fault counts by "service.Code", sorted.
func injectedSummary(counts map[string]int) string {
	if len(counts) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, counts[k])
	}
	return strings.Join(parts, " ")
}

// scheduleBanner says which functions fire when.
func scheduleBanner(scheds []localstack.Schedule, tick time.Duration) string {
	if len(scheds) == 0 {
		return "none in the template"
	}
	parts := make([]string, len(scheds))
	for i, sc := range scheds {
		parts[i] = sc.Function + " " + sc.Expression
	}
	list := strings.Join(parts, ", ")
	switch {
	case tick > 0:
		return fmt.Sprintf("every %s (template: %s)", tick, list)
	case tick < 0:
		return "only when fired (template: " + list + ")"
	}
	return list
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "repository root holding template.yaml")
	key := fs.String("key", "", "PEM RSA key that signs dev tokens, made if missing (default <dir>/"+defaultKeyFile+")")
	domain := fs.String("domain", localstack.DefaultDomain, "domain claim")
	scope := fs.String("scope", localstack.DefaultScope, "scope claim: one of "+strings.Join(scopes, ", "))
	sub := fs.String("sub", "", "subject claim (default 1003@<domain>)")
	domains := fs.String("domains", "", "comma-separated domains claim, the domains a reseller acts on (default for a reseller: -domain)")
	ttl := fs.Duration("ttl", localstack.DefaultTokenTTL, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !turnover.Scope(*scope).Valid() {
		return fmt.Errorf("unknown -scope %q: use one of %s", *scope, strings.Join(scopes, ", "))
	}
	if *ttl <= 0 {
		return errors.New("-ttl must be positive")
	}
	c := localstack.TokenClaims{Subject: *sub, Domain: *domain, Scope: *scope, TTL: *ttl}
	for d := range strings.SplitSeq(*domains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			c.Domains = append(c.Domains, d)
		}
	}
	if len(c.Domains) == 0 && turnover.Scope(*scope) == turnover.ScopeReseller {
		// A reseller acts only on the domains of its claim: without one the token
		// could do nothing.
		c.Domains = []string{*domain}
	}
	a, err := localstack.DefaultJWTAuthorizer(*dir, nil)
	if err != nil {
		return err
	}
	tok, err := localstack.SignToken(keyFile(*key, *dir), a, c)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// scopes are the scopes a token may carry, as the API knows them.
var scopes = []string{
	string(turnover.ScopeBasicUser), string(turnover.ScopeCallCenterAgent), string(turnover.ScopeCallCenterSupervisor),
	string(turnover.ScopeOfficeManager), string(turnover.ScopeReseller), string(turnover.ScopeSuperUser),
}

// params is a repeatable -param Name=Value flag.
type params map[string]string

func (p params) String() string { return "" }

func (p params) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want Name=Value, not %q", v)
	}
	p[k] = val
	return nil
}

func renderASL(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render-asl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "repository root holding template.yaml")
	out := fs.String("o", "", "write each definition to `DIR`/<file name of DefinitionUri> (default: print them)")
	p := params{}
	fs.Var(p, "param", "template parameter override `Name=Value` (repeatable); default: the template's defaults, as deployed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	defs, err := localstack.RenderDefinitions(*dir, p)
	if err != nil {
		return err
	}
	if *out == "" {
		for _, d := range defs {
			if _, err := fmt.Fprintf(stdout, "%s\n", strings.TrimRight(string(d.JSON), "\n")); err != nil {
				return err
			}
		}
		return nil
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, d := range defs {
		path := filepath.Join(*out, d.File)
		if err := os.WriteFile(path, d.JSON, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "wrote", path)
	}
	return nil
}
