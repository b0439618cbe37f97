package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"turnover/internal/api"
	"turnover/internal/turnover"
)

// loadSpec loads and validates the embedded OpenAPI description.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	return doc
}

// operation is one documented method and path.
type operation struct {
	method, path string
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

func (o operation) String() string { return o.method + " " + o.path }

func operations(doc *openapi3.T) []operation {
	var ops []operation
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			ops = append(ops, operation{method, path, item, op})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.String(), b.String()) })
	return ops
}

func TestOpenAPIIsValid(t *testing.T) {
	doc := loadSpec(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	ids := map[string]string{}
	for _, o := range operations(doc) {
		if o.op.OperationID == "" {
			t.Errorf("%s has no operationId", o)
		} else if other, ok := ids[o.op.OperationID]; ok {
			t.Errorf("%s and %s share operationId %s", o, other, o.op.OperationID)
		}
		ids[o.op.OperationID] = o.String()
		open := o.op.Security != nil && len(*o.op.Security) == 0
		// Open routes are exactly those template.yaml serves without the authorizer.
		if want := slices.Contains([]string{"/v1/openapi.yaml", "/v1/setup", "/portal/resets"}, o.path); open != want {
			t.Errorf("%s: open without a token = %v, want %v", o, open, want)
		}
	}
}

// methodPattern is a ServeMux pattern with a method: "GET /v1/…".
var methodPattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|CONNECT|TRACE) /[^\s%]*$`)

// routePatterns finds the ServeMux patterns the package registers: every string
// literal that is the first argument of a call and a pattern with a method, and every
// pattern handed to Handle or HandleFunc, but the catch-all "/".
func routePatterns(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			var callee string
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				callee = fn.Sel.Name
			case *ast.Ident:
				callee = fn.Name
			}
			handle := callee == "Handle" || callee == "HandleFunc"
			if methodPattern.MatchString(s) || handle && strings.HasPrefix(s, "/") && s != "/" {
				seen[s] = true
			}
			return true
		})
	}
	patterns := slices.Sorted(func(yield func(string) bool) {
		for p := range seen {
			if !yield(p) {
				return
			}
		}
	})
	if len(patterns) == 0 {
		t.Fatal("found no routes in the package")
	}
	return patterns
}

// exampleRequest is a request for o with its parameters' examples filled in.
func exampleRequest(t *testing.T, o operation) *http.Request {
	t.Helper()
	params := slices.Concat(o.item.Parameters, o.op.Parameters)
	path := o.path
	query := []string{}
	for _, ref := range params {
		p := ref.Value
		if p.In != openapi3.ParameterInPath && !(p.In == openapi3.ParameterInQuery && p.Required) {
			continue
		}
		v, ok := p.Example.(string)
		if !ok {
			t.Fatalf("%s: parameter %s has no string example", o, p.Name)
		}
		if p.In == openapi3.ParameterInPath {
			path = strings.ReplaceAll(path, "{"+p.Name+"}", v)
		} else {
			query = append(query, p.Name+"="+v)
		}
	}
	if len(query) > 0 {
		path += "?" + strings.Join(query, "&")
	}
	return httptest.NewRequest(o.method, path, nil)
}

// TestOpenAPIDocumentsEveryRoute holds the routes the package registers and the
// operations openapi.yaml documents to each other: every operation must reach a route,
// and every route must be reached by an operation.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadSpec(t)
	patterns := routePatterns(t)
	mux := http.NewServeMux()
	for _, p := range patterns {
		mux.Handle(p, http.NotFoundHandler())
	}
	reached := map[string]bool{}
	for _, o := range operations(doc) {
		_, pattern := mux.Handler(exampleRequest(t, o))
		if pattern == "" {
			t.Errorf("openapi.yaml documents %s, which no route serves", o)
			continue
		}
		reached[pattern] = true
	}
	for _, p := range patterns {
		if !reached[p] {
			t.Errorf("route %q is not documented in openapi.yaml", p)
		}
	}
}

// TestHandlerAnswersEveryOperation sends each documented operation, without verified
// claims, to the real handler: every one must reach its route (the catch-all answers
// nothing documented), the description must come back as served, and each answer must
// match the description.
func TestHandlerAnswersEveryOperation(t *testing.T) {
	doc := loadSpec(t)
	var logs bytes.Buffer
	srv := &api.Server{
		Log:      slog.New(slog.NewJSONHandler(&logs, nil)),
		Identity: func(*http.Request) (turnover.Identity, bool) { return turnover.Identity{}, false },
	}
	h := srv.Handler()
	for _, o := range operations(doc) {
		logs.Reset()
		req := exampleRequest(t, o)
		rec := httptest.NewRecorder()
		if panicked := serve(h, rec, req); panicked != nil {
			// Only a route's own handler can need the dependencies this server lacks:
			// the catch-all needs none.
			t.Logf("%s reached a handler that needs dependencies: %v", o, panicked)
			continue
		}
		var line struct{ Route string }
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("%s: access log %q: %v", o, logs.Bytes(), err)
		}
		if line.Route == "/" || line.Route == "" {
			t.Errorf("%s reached no route but the catch-all: %d %s", o, rec.Code, rec.Body)
			continue
		}
		want := http.StatusUnauthorized
		if o.path == "/v1/setup" {
			want = http.StatusBadRequest // no token needed; the example has no body
		}
		if o.path == "/v1/openapi.yaml" {
			want = http.StatusOK
			if !bytes.Equal(rec.Body.Bytes(), api.OpenAPI) || rec.Header().Get("Content-Type") != "application/yaml" {
				t.Errorf("%s = %s %.40q, want openapi.yaml as application/yaml", o, rec.Header().Get("Content-Type"), rec.Body)
			}
		}
		if rec.Code != want {
			t.Errorf("%s without claims: %d %s, want %d", o, rec.Code, rec.Body, want)
		}
		if err := validateResponse(doc, o, req, rec.Result()); err != nil {
			t.Errorf("%s: the answer does not match openapi.yaml: %v", o, err)
		}
	}
}

// serve runs h and returns what it panicked with, if it did.
func serve(h http.Handler, w http.ResponseWriter, r *http.Request) (panicked any) {
	defer func() { panicked = recover() }()
	h.ServeHTTP(w, r)
	return nil
}

func validateResponse(doc *openapi3.T, o operation, req *http.Request, resp *http.Response) error {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req,
		Route:   &routers.Route{Spec: doc, Path: o.path, PathItem: o.item, Method: o.method, Operation: o.op},
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	opts.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return "/" + strings.Join(err.JSONPointer(), "/") + ": " + err.Reason
	})
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                opts,
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("%d %s: %w", resp.StatusCode, body, err)
	}
	return nil
}
