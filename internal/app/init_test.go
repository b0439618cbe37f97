package app_test

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"gopkg.in/yaml.v3"

	"turnover/internal/app"
)

// maxInit is the most a function's init may take, median of several: what app.Start
// does before the Lambda runtime takes over, and so part of every cold start.
const maxInit = 50 * time.Millisecond

// initFunction does what app.Start does before lambda.Start: the AWS configuration from
// the environment, then the function's handler from its settings.
func initFunction(ctx context.Context, fn app.Function, env map[string]string) error {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	lookup := func(key string) (string, bool) { v, ok := env[key]; return v, ok }
	_, err = fn(ctx, awsCfg, lookup, lambdacontext.NewLogger())
	return err
}

// lambdaEnvironment sets what the Lambda runtime gives every function and
// LoadDefaultConfig reads: credentials and region in the environment, no shared
// configuration files and no CA bundle of this machine's (parsing one costs
// milliseconds that Lambda never spends), so nothing here changes what is measured.
func lambdaEnvironment(tb testing.TB) {
	tb.Helper()
	none := filepath.Join(tb.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
		"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_PROFILE": "", "AWS_ENDPOINT_URL": "",
		"AWS_CA_BUNDLE": "",
	} {
		tb.Setenv(k, v)
	}
}

// BenchmarkInit measures each function's init, with the environment template.yaml
// gives the function.
func BenchmarkInit(b *testing.B) {
	lambdaEnvironment(b)
	envs := functionEnvironments(b)
	for _, name := range slices.Sorted(maps.Keys(app.Functions)) {
		b.Run(name, func(b *testing.B) {
			env, ok := envs[name]
			if !ok {
				b.Fatalf("template.yaml has no function with CodeUri functions/%s/", name)
			}
			for b.Loop() {
				if err := initFunction(b.Context(), app.Functions[name], env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestInitIsFast holds every function's init under maxInit, median of several runs,
// race detector and all: init only wires clients together, so it should take about a
// millisecond, and a regression (a network call, a large file parsed, a key derived)
// would show here long before it shows in Lambda's cold starts.
func TestInitIsFast(t *testing.T) {
	lambdaEnvironment(t)
	envs := functionEnvironments(t)
	const runs = 15
	for _, name := range slices.Sorted(maps.Keys(app.Functions)) {
		env, ok := envs[name]
		if !ok {
			t.Errorf("template.yaml has no function with CodeUri functions/%s/", name)
			continue
		}
		took := make([]time.Duration, runs)
		for i := range took {
			start := time.Now()
			if err := initFunction(t.Context(), app.Functions[name], env); err != nil {
				t.Fatalf("%s with the environment of template.yaml: %v", name, err)
			}
			took[i] = time.Since(start)
		}
		first := took[0]
		slices.Sort(took)
		median := took[runs/2]
		t.Logf("%s: init median %v, first %v, slowest %v", name, median, first, took[runs-1])
		if median >= maxInit {
			t.Errorf("%s: init takes %v (median of %d), want under %v", name, median, runs, maxInit)
		}
	}
}

// functionEnvironments reads template.yaml: for each function, by the folder its
// CodeUri names, the environment the template gives it, Globals first. References to
// the stack's parameters and resources become values of the shape they take when
// deployed: a parameter's default, a queue's URL, a state machine's ARN, a name.
func functionEnvironments(tb testing.TB) map[string]map[string]string {
	tb.Helper()
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		tb.Fatalf("template.yaml: %v", err)
	}
	t := template{tb: tb, root: doc.Content[0]}
	t.params, t.resources = field(t.root, "Parameters"), field(t.root, "Resources")
	global := field(field(field(field(t.root, "Globals"), "Function"), "Environment"), "Variables")
	out := map[string]map[string]string{}
	for id, res := range pairs(t.resources) {
		if field(res, "Type").Value != "AWS::Serverless::Function" {
			continue
		}
		props := field(res, "Properties")
		uri := field(props, "CodeUri")
		if uri.Value == "" {
			tb.Fatalf("template.yaml: %s has no CodeUri", id)
		}
		env := map[string]string{}
		for _, vars := range []*yaml.Node{global, field(field(props, "Environment"), "Variables")} {
			for k, v := range pairs(vars) {
				env[k] = t.resolve(v)
			}
		}
		out[filepath.Base(strings.TrimSuffix(uri.Value, "/"))] = env
	}
	return out
}

// standIns are values for the parameters a deployment must give, having no default.
var standIns = map[string]string{"PortalUrl": "https://portal.example.com"}

type template struct {
	tb                      testing.TB
	root, params, resources *yaml.Node
}

var subVariable = regexp.MustCompile(`\$\{([^}]+)\}`)

func (t template) resolve(v *yaml.Node) string {
	switch {
	case v.Tag == "!Ref":
		return t.ref(v.Value)
	case v.Tag == "!GetAtt":
		id, _, _ := strings.Cut(v.Value, ".")
		return t.arn(id)
	case v.Tag == "!Sub":
		return subVariable.ReplaceAllStringFunc(v.Value, func(s string) string {
			id, attr, _ := strings.Cut(s[2:len(s)-1], ".")
			if attr != "" {
				return t.arn(id)
			}
			return t.ref(id)
		})
	case v.Kind == yaml.MappingNode && field(v, "Ref").Value != "":
		return t.ref(field(v, "Ref").Value)
	case v.Kind == yaml.ScalarNode && (v.Tag == "" || strings.HasPrefix(v.Tag, "!!")):
		return v.Value
	}
	t.tb.Fatalf("template.yaml: cannot resolve %s %q at line %d", v.Tag, v.Value, v.Line)
	return ""
}

func (t template) ref(name string) string {
	pseudo := map[string]string{"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws", "AWS::StackName": "turnover", "AWS::URLSuffix": "amazonaws.com"}
	if v, ok := pseudo[name]; ok {
		return v
	}
	if p := field(t.params, name); p.Kind != 0 {
		if d := field(p, "Default"); d.Kind != 0 {
			return d.Value
		}
		if v, ok := standIns[name]; ok {
			return v
		}
		t.tb.Fatalf("template.yaml: parameter %s has no default; give it a stand-in", name)
	}
	switch res := field(t.resources, name); field(res, "Type").Value {
	case "":
		t.tb.Fatalf("template.yaml: nothing is called %s", name)
	case "AWS::SQS::Queue":
		return "https://sqs.us-east-1.amazonaws.com/123456789012/turnover-" + name
	case "AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine", "AWS::SNS::Topic", "AWS::Serverless::Function":
		return t.arn(name)
	}
	return "turnover-" + strings.ToLower(name)
}

func (t template) arn(id string) string {
	kind := strings.Split(field(field(t.resources, id), "Type").Value, "::")
	return "arn:aws:" + strings.ToLower(kind[len(kind)-2]) + ":us-east-1:123456789012:turnover-" + id
}

// field is a mapping's value for key, or an empty node (of Kind 0), so that lookups
// chain.
func field(m *yaml.Node, key string) *yaml.Node {
	if m != nil && m.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
	}
	return &yaml.Node{}
}

// pairs are a mapping's keys and values.
func pairs(m *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if m != nil && m.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(m.Content); i += 2 {
			out[m.Content[i].Value] = m.Content[i+1]
		}
	}
	return out
}

// TestBuildFlags builds the api function exactly as `make build` does, with the go
// command swapped for one that writes the binary into a temporary directory, and checks
// what went into it: a static binary (no cgo) for Lambda's arm64, without local paths,
// symbols or debug information, and without the RPC mode of aws-lambda-go that
// provided.al2023 never uses.
func TestBuildFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function for arm64")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bootstrap")
	wrapper := filepath.Join(dir, "go")
	// The wrapper notes what make gives it, then passes every argument and the
	// environment on to go, but for the output file.
	script := `#!/usr/bin/env bash
printf '%s\n' "CGO_ENABLED=${CGO_ENABLED-unset}" "$@" > "$BOOTSTRAP.args"
args=()
while (($#)); do
  if [[ $1 == -o ]]; then args+=(-o "$BOOTSTRAP"); shift 2; continue; fi
  args+=("$1"); shift
done
exec "$REAL_GO" "${args[@]}"
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "build", "FUNCTIONS=api", "GO="+wrapper)
	cmd.Dir = "../.."
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CGO_ENABLED=") }),
		"BOOTSTRAP="+bootstrap, "REAL_GO="+goTool)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}

	// What the Makefile asks for: on a host where cgo is off anyway (cross-compiling,
	// no C compiler) the binary alone would not tell.
	noted, err := os.ReadFile(bootstrap + ".args")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(noted), "\n"), "\n")
	flags := map[string]string{}
	for i := 1; i < len(lines); i++ {
		name, value, ok := strings.Cut(lines[i], "=")
		if !ok && (name == "-ldflags" || name == "-tags") && i+1 < len(lines) {
			i++
			value = lines[i]
		}
		flags[name] = value
	}
	if lines[0] != "CGO_ENABLED=0" {
		t.Errorf("make build runs go with %s, want CGO_ENABLED=0", lines[0])
	}
	if _, ok := flags["-trimpath"]; !ok || flags["-ldflags"] != "-s -w" || flags["-tags"] != "lambda.norpc" {
		t.Errorf("make build runs go %q, want -trimpath -ldflags='-s -w' -tags lambda.norpc", lines[1:])
	}

	info, err := buildinfo.ReadFile(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// With -trimpath, go leaves -ldflags out of the build settings (they may hold
	// paths); what -s -w do is checked on the binary below.
	for k, want := range map[string]string{
		"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "arm64",
		"-trimpath": "true", "-tags": "lambda.norpc",
	} {
		if got := settings[k]; got != want {
			t.Errorf("build setting %s = %q, want %q", k, got, want)
		}
	}
	if info.Path != "turnover/functions/api" {
		t.Errorf("built %s, want turnover/functions/api", info.Path)
	}

	f, err := elf.Open(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("machine %v, want EM_AARCH64", f.Machine)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("the binary keeps section %s: not stripped", s.Name)
		}
	}
	if p := f.Progs; slices.ContainsFunc(p, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
		t.Errorf("the binary asks for a dynamic loader: not static")
	}
}
