package localstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// plan is everything the stack stands up, read from the template before moto is ready.
type plan struct {
	resources   Resources
	tables      []tableSpec
	buckets     []bucketSpec
	identities  []string
	machines    []machineSpec
	functions   []*functionSpec
	routes      []*route
	schedules   []*schedule              // enabled ones, by function and event
	queues      []*queueSpec             // dead-letter queues before their sources
	sqsSources  []*sqsSource             // enabled SQS events and mappings, by function
	authorizers map[string]JWTAuthorizer // by HttpApi logical id + "/" + authorizer name
	defaultAuth *JWTAuthorizer
	implicitAPI bool // the authorizers of SAM's implicit HTTP API have been read
}

type tableSpec struct {
	LogicalID, Name string
	Props           map[string]any // resolved
	Simple          bool
}

type bucketSpec struct {
	LogicalID, Name string
	Props           map[string]any // resolved
}

type machineSpec struct {
	LogicalID, Name, ARN, Type, File string
	Definition                       []byte
}

type functionSpec struct {
	LogicalID, Name, ARN, Folder string
	Timeout                      time.Duration
	MemoryMB                     int
	Env                          map[string]string
}

// Definition is one state machine's definition with its DefinitionSubstitutions done.
type Definition struct {
	LogicalID string
	// File is the base name of DefinitionUri, e.g. reset-users.asl.json, or
	// <LogicalID>.asl.json for an inline Definition.
	File string
	JSON []byte
}

// RenderDefinitions reads dir/template.yaml and returns every state machine's
// definition with DefinitionSubstitutions resolved. It fails when a definition cannot be
// read, a substitution cannot be resolved or the result is not JSON.
func RenderDefinitions(dir string, params map[string]string) ([]Definition, error) {
	t, err := LoadTemplate(dir, params)
	if err != nil {
		return nil, err
	}
	var out []Definition
	for _, r := range t.ResourcesOfType(typeStateMachine, typeSFNMachine) {
		d, err := t.RenderDefinition(r.LogicalID)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// RenderDefinition is RenderDefinitions for the state machine with that logical id.
func RenderDefinition(dir, logicalID string, params map[string]string) ([]byte, error) {
	t, err := LoadTemplate(dir, params)
	if err != nil {
		return nil, err
	}
	d, err := t.RenderDefinition(logicalID)
	return d.JSON, err
}

// RenderDefinition returns the definition of one state machine with its
// DefinitionSubstitutions resolved. Values go in as text, so numbers written as
// "${MaxConcurrency}" without quotes come out as JSON numbers.
func (t *Template) RenderDefinition(logicalID string) (Definition, error) {
	r := t.resources[logicalID]
	if r == nil || (r.Type != typeStateMachine && r.Type != typeSFNMachine) {
		return Definition{}, fmt.Errorf("no state machine %s in the template", logicalID)
	}
	d := Definition{LogicalID: logicalID, File: logicalID + ".asl.json"}
	var text string
	uriKey, defKey, subsKey := "DefinitionUri", "Definition", "DefinitionSubstitutions"
	if r.Type == typeSFNMachine {
		uriKey, defKey = "DefinitionS3Location", "Definition"
		if s, ok := r.Properties["DefinitionString"]; ok {
			str, err := t.ResolveString(s)
			if err != nil {
				return d, fmt.Errorf("%s.DefinitionString: %w", logicalID, err)
			}
			text = str
		}
	}
	if uri, ok := r.Properties[uriKey]; ok && text == "" {
		rel, ok := uri.(string)
		if !ok {
			return d, fmt.Errorf("%s.%s: only a local file path is supported locally", logicalID, uriKey)
		}
		b, err := os.ReadFile(filepath.Join(t.Dir, filepath.FromSlash(rel)))
		if err != nil {
			return d, fmt.Errorf("%s: read definition: %w", logicalID, err)
		}
		text, d.File = string(b), path.Base(rel)
	} else if inline, ok := r.Properties[defKey]; ok && text == "" {
		v, err := t.Resolve(inline)
		if err != nil {
			return d, fmt.Errorf("%s.%s: %w", logicalID, defKey, err)
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return d, fmt.Errorf("%s.%s: %w", logicalID, defKey, err)
		}
		text = string(b)
	}
	if text == "" {
		return d, fmt.Errorf("%s has no definition", logicalID)
	}
	subs, err := t.resolvedStrings(r.Properties[subsKey])
	if err != nil {
		return d, fmt.Errorf("%s.%s: %w", logicalID, subsKey, err)
	}
	keys := make([]string, 0, len(subs))
	for k := range subs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		pairs = append(pairs, "${"+k+"}", subs[k])
	}
	text = strings.NewReplacer(pairs...).Replace(text)
	if !json.Valid([]byte(text)) {
		return d, fmt.Errorf("%s: definition is not valid JSON after substitution", logicalID)
	}
	d.JSON = []byte(text)
	return d, nil
}

// resolvedStrings resolves a mapping whose values must be scalars.
func (t *Template) resolvedStrings(v any) (map[string]string, error) {
	out := map[string]string{}
	if v == nil {
		return out, nil
	}
	r, err := t.Resolve(v)
	if err != nil {
		return nil, err
	}
	m, ok := r.(map[string]any)
	if !ok {
		return nil, errors.New("not a mapping")
	}
	for k, e := range m {
		s, err := scalarString(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

// makePlan reads everything the stack needs from the template.
func makePlan(t *Template) (*plan, error) {
	p := &plan{
		resources: Resources{
			StackName:     StackName,
			Tables:        map[string]string{},
			Buckets:       map[string]string{},
			StateMachines: map[string]string{},
			Functions:     map[string]string{},
			Queues:        map[string]string{},
		},
		authorizers: map[string]JWTAuthorizer{},
	}
	for _, r := range t.ResourcesOfType(typeTable, typeSimpleTable) {
		name, err := t.PhysicalName(r.LogicalID)
		if err != nil {
			return nil, err
		}
		props, err := t.Resolve(r.Properties)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.LogicalID, err)
		}
		p.tables = append(p.tables, tableSpec{LogicalID: r.LogicalID, Name: name, Props: props.(map[string]any), Simple: r.Type == typeSimpleTable})
		p.resources.Tables[r.LogicalID] = name
	}
	for _, r := range t.ResourcesOfType(typeBucket) {
		name, err := t.PhysicalName(r.LogicalID)
		if err != nil {
			return nil, err
		}
		props, err := t.Resolve(r.Properties)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.LogicalID, err)
		}
		p.buckets = append(p.buckets, bucketSpec{LogicalID: r.LogicalID, Name: name, Props: props.(map[string]any)})
		p.resources.Buckets[r.LogicalID] = name
	}
	if err := p.addQueues(t); err != nil {
		return nil, err
	}
	for _, r := range t.ResourcesOfType(typeEmailIdentity) {
		name, err := t.PhysicalName(r.LogicalID)
		if err != nil {
			return nil, err
		}
		p.identities = append(p.identities, name)
	}
	for _, r := range t.ResourcesOfType(typeStateMachine, typeSFNMachine) {
		name, err := t.PhysicalName(r.LogicalID)
		if err != nil {
			return nil, err
		}
		arn, err := t.ARN(r.LogicalID)
		if err != nil {
			return nil, err
		}
		typ := "STANDARD"
		key := "Type"
		if r.Type == typeSFNMachine {
			key = "StateMachineType"
		}
		if v, ok := r.Properties[key]; ok {
			if typ, err = t.ResolveString(v); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", r.LogicalID, key, err)
			}
		}
		d, err := t.RenderDefinition(r.LogicalID)
		if err != nil {
			return nil, err
		}
		p.machines = append(p.machines, machineSpec{LogicalID: r.LogicalID, Name: name, ARN: arn, Type: typ, File: d.File, Definition: d.JSON})
		p.resources.StateMachines[r.LogicalID] = arn
	}
	for _, r := range t.ResourcesOfType(typeHTTPAPI) {
		if err := p.addAuthorizers(t, r.LogicalID, t.withGlobals("HttpApi", r.Properties)); err != nil {
			return nil, err
		}
	}
	for _, r := range t.ResourcesOfType(typeFunction) {
		f, routes, err := p.function(t, r)
		if err != nil {
			return nil, err
		}
		p.functions = append(p.functions, f)
		p.routes = append(p.routes, routes...)
		scheds, err := schedules(t, r)
		if err != nil {
			return nil, err
		}
		p.schedules = append(p.schedules, scheds...)
		srcs, err := p.readSQSSources(t, r)
		if err != nil {
			return nil, err
		}
		p.sqsSources = append(p.sqsSources, srcs...)
		p.resources.Functions[r.LogicalID] = f.Name
	}
	mappings, err := p.readEventSourceMappings(t)
	if err != nil {
		return nil, err
	}
	p.sqsSources = append(p.sqsSources, mappings...)
	sort.SliceStable(p.sqsSources, func(i, j int) bool { return p.sqsSources[i].Function < p.sqsSources[j].Function })
	return p, nil
}

// implicitAPI is the logical id SAM gives the HTTP API it makes for events without ApiId.
const implicitAPI = "ServerlessHttpApi"

func (p *plan) addAuthorizers(t *Template, apiID string, props map[string]any) error {
	auth, _ := props["Auth"].(map[string]any)
	if auth == nil {
		return nil
	}
	rauth, err := t.Resolve(auth)
	if err != nil {
		return fmt.Errorf("%s.Auth: %w", apiID, err)
	}
	auth = rauth.(map[string]any)
	authorizers, _ := auth["Authorizers"].(map[string]any)
	for name, a := range authorizers {
		am, _ := a.(map[string]any)
		jc, _ := am["JwtConfiguration"].(map[string]any)
		if jc == nil {
			continue
		}
		ja := JWTAuthorizer{Name: name, IdentitySource: "$request.header.Authorization"}
		if s, ok := am["IdentitySource"].(string); ok {
			ja.IdentitySource = s
		}
		if ja.Issuer, err = scalarString(jc["issuer"]); err != nil {
			return fmt.Errorf("%s authorizer %s issuer: %w", apiID, name, err)
		}
		switch aud := jc["audience"].(type) {
		case []any:
			for _, e := range aud {
				s, err := scalarString(e)
				if err != nil {
					return fmt.Errorf("%s authorizer %s audience: %w", apiID, name, err)
				}
				ja.Audience = append(ja.Audience, s)
			}
		case string:
			ja.Audience = []string{aud}
		}
		p.authorizers[apiID+"/"+name] = ja
	}
	if def, ok := auth["DefaultAuthorizer"].(string); ok && def != "" {
		ja, ok := p.authorizers[apiID+"/"+def]
		if !ok {
			return fmt.Errorf("%s: DefaultAuthorizer %s is not a JWT authorizer of the API", apiID, def)
		}
		p.authorizers[apiID+"/"] = ja
		if p.defaultAuth == nil {
			p.defaultAuth = &ja
		}
	}
	return nil
}

func (p *plan) function(t *Template, r *Resource) (*functionSpec, []*route, error) {
	id := r.LogicalID
	props := t.withGlobals("Function", r.Properties)
	name, err := t.PhysicalName(id)
	if err != nil {
		return nil, nil, err
	}
	uri, ok := props["CodeUri"].(string)
	if !ok || uri == "" {
		return nil, nil, fmt.Errorf("%s: CodeUri must be a local folder such as functions/<name>/", id)
	}
	f := &functionSpec{
		LogicalID: id,
		Name:      name,
		ARN:       FunctionARN(name),
		Folder:    path.Base(strings.TrimRight(filepath.ToSlash(uri), "/")),
		Timeout:   3 * time.Second,
		MemoryMB:  128,
	}
	if v, ok := props["Timeout"]; ok {
		n, err := resolveInt(t, v)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.Timeout: %w", id, err)
		}
		f.Timeout = time.Duration(n) * time.Second
	}
	if v, ok := props["MemorySize"]; ok {
		if f.MemoryMB, err = resolveInt(t, v); err != nil {
			return nil, nil, fmt.Errorf("%s.MemorySize: %w", id, err)
		}
	}
	env, _ := props["Environment"].(map[string]any)
	if f.Env, err = t.resolvedStrings(env["Variables"]); err != nil {
		return nil, nil, fmt.Errorf("%s.Environment.Variables: %w", id, err)
	}
	// What Lambda's runtime sets from LoggingConfig.
	if lc, ok := props["LoggingConfig"].(map[string]any); ok {
		lcv, err := t.resolvedStrings(lc)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.LoggingConfig: %w", id, err)
		}
		if lcv["LogFormat"] == "JSON" {
			f.Env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
			if lvl := lcv["ApplicationLogLevel"]; lvl != "" {
				f.Env["AWS_LAMBDA_LOG_LEVEL"] = lvl
			}
		}
	}
	for k, v := range map[string]string{
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + name,
		"AWS_REGION":                      Region,
		"AWS_DEFAULT_REGION":              Region,
		"AWS_LAMBDA_FUNCTION_NAME":        name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(f.MemoryMB),
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.Itoa(int(f.Timeout / time.Second)),
	} {
		f.Env[k] = v
	}

	var routes []*route
	events, _ := props["Events"].(map[string]any)
	evNames := make([]string, 0, len(events))
	for k := range events {
		evNames = append(evNames, k)
	}
	sort.Strings(evNames)
	for _, evName := range evNames {
		ev, _ := events[evName].(map[string]any)
		if typ, _ := ev["Type"].(string); typ != "HttpApi" {
			continue
		}
		rp, err := t.Resolve(ev["Properties"])
		if err != nil {
			return nil, nil, fmt.Errorf("%s event %s: %w", id, evName, err)
		}
		ep, _ := rp.(map[string]any)
		rt, err := p.route(t, id, evName, ep)
		if err != nil {
			return nil, nil, err
		}
		routes = append(routes, rt)
	}
	return f, routes, nil
}

func (p *plan) route(t *Template, fn, evName string, ep map[string]any) (*route, error) {
	method, _ := ep["Method"].(string)
	pth, _ := ep["Path"].(string)
	if pth == "" {
		// An event without a path is the $default route.
		pth, method = "$default", "ANY"
	}
	if method == "" {
		method = "ANY"
	}
	method = strings.ToUpper(method)
	apiID := implicitAPI
	if ref, ok := ep["ApiId"].(string); ok && ref != "" {
		// ApiId resolved to the API's physical id; find its logical id.
		apiID = ""
		for _, r := range t.ResourcesOfType(typeHTTPAPI) {
			if n, _ := t.PhysicalName(r.LogicalID); n == ref {
				apiID = r.LogicalID
				break
			}
		}
		if apiID == "" {
			return nil, fmt.Errorf("%s event %s: ApiId %s is not an HttpApi of the template", fn, evName, ref)
		}
	} else if !p.implicitAPI {
		p.implicitAPI = true
		if err := p.addAuthorizers(t, implicitAPI, t.withGlobals("HttpApi", nil)); err != nil {
			return nil, err
		}
	}
	rt, err := newRoute(method, pth)
	if err != nil {
		return nil, fmt.Errorf("%s event %s: %w", fn, evName, err)
	}
	rt.Function = fn
	authName := ""
	if auth, ok := ep["Auth"].(map[string]any); ok {
		authName, _ = auth["Authorizer"].(string)
		if scopes, ok := auth["AuthorizationScopes"].([]any); ok {
			for _, s := range scopes {
				str, _ := s.(string)
				rt.Scopes = append(rt.Scopes, str)
			}
		}
	}
	if authName == "NONE" {
		return rt, nil
	}
	a, ok := p.authorizers[apiID+"/"+authName]
	if !ok {
		if authName != "" {
			return nil, fmt.Errorf("%s event %s: authorizer %s is not a JWT authorizer of %s", fn, evName, authName, apiID)
		}
		return rt, nil // the API has no default authorizer: the route is open
	}
	rt.Auth = &a
	return rt, nil
}

func resolveInt(t *Template, v any) (int, error) {
	s, err := t.ResolveString(v)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return n, nil
}
