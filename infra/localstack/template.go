package localstack

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Local account facts. The ARNs built from them are the ones moto builds too, so an ARN
// resolved from the template is the ARN of the local resource.
const (
	StackName = "turnover-local"
	Region    = "us-east-1"
	AccountID = "123456789012"
	Partition = "aws"
	URLSuffix = "amazonaws.com"
	APIID     = "local"
)

// Resource types the local stack knows how to name and stand up.
const (
	typeTable              = "AWS::DynamoDB::Table"
	typeSimpleTable        = "AWS::Serverless::SimpleTable"
	typeBucket             = "AWS::S3::Bucket"
	typeEmailIdentity      = "AWS::SES::EmailIdentity"
	typeStateMachine       = "AWS::Serverless::StateMachine"
	typeSFNMachine         = "AWS::StepFunctions::StateMachine"
	typeFunction           = "AWS::Serverless::Function"
	typeLambdaFunction     = "AWS::Lambda::Function"
	typeHTTPAPI            = "AWS::Serverless::HttpApi"
	typeRole               = "AWS::IAM::Role"
	typeQueue              = "AWS::SQS::Queue"
	typeEventSourceMapping = "AWS::Lambda::EventSourceMapping"
)

// noValue is what Ref AWS::NoValue resolves to; maps and lists drop it.
type noValue struct{}

// Template is a parsed SAM template whose intrinsic functions resolve to the local
// stack's names and ARNs.
type Template struct {
	// Dir is the folder the template was read from; DefinitionUri and CodeUri are
	// relative to it.
	Dir string

	params     map[string]any // effective parameter values: string or []string
	paramTypes map[string]string
	conditions map[string]any
	condCache  map[string]bool
	mappings   map[string]any
	globals    map[string]any
	resources  map[string]*Resource
	order      []string
	resolving  map[string]bool
	// queueEndpoint is where queue URLs point: the front door in a running stack, the
	// regional SQS endpoint otherwise (see queueURL).
	queueEndpoint string
}

// Resource is one entry of the template's Resources section, intrinsics unresolved.
type Resource struct {
	LogicalID  string
	Type       string
	Properties map[string]any
	Metadata   map[string]any
}

// LoadTemplate reads dir/template.yaml. Parameter values in params override the
// template's defaults. It fails when the file cannot be read or parsed.
func LoadTemplate(dir string, params map[string]string) (*Template, error) {
	path := filepath.Join(dir, "template.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	t, err := ParseTemplate(data, params)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Dir = dir
	return t, nil
}

// ParseTemplate parses a SAM or CloudFormation template in YAML (short-form tags
// included) or JSON. It fails on malformed input and on a parameter override the
// template does not declare.
func ParseTemplate(data []byte, params map[string]string) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	v, err := fromYAML(&doc)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("parse template: top level is not a mapping")
	}
	t := &Template{
		params:     map[string]any{},
		paramTypes: map[string]string{},
		condCache:  map[string]bool{},
		resources:  map[string]*Resource{},
		resolving:  map[string]bool{},
	}
	t.conditions, _ = root["Conditions"].(map[string]any)
	t.mappings, _ = root["Mappings"].(map[string]any)
	t.globals, _ = root["Globals"].(map[string]any)

	declared, _ := root["Parameters"].(map[string]any)
	for name, p := range declared {
		pm, _ := p.(map[string]any)
		typ, _ := pm["Type"].(string)
		t.paramTypes[name] = typ
		raw, hasDefault := pm["Default"]
		if o, ok := params[name]; ok {
			raw, hasDefault = o, true
		}
		if !hasDefault {
			continue
		}
		s, err := scalarString(raw)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		if strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList" {
			t.params[name] = splitList(s)
		} else {
			t.params[name] = s
		}
	}
	for name := range params {
		if _, ok := declared[name]; !ok {
			return nil, fmt.Errorf("parameter %s is not declared in the template", name)
		}
	}

	res, _ := root["Resources"].(map[string]any)
	if len(res) == 0 {
		return nil, errors.New("template has no Resources")
	}
	for id, r := range res {
		rm, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("resource %s is not a mapping", id)
		}
		typ, _ := rm["Type"].(string)
		props, _ := rm["Properties"].(map[string]any)
		meta, _ := rm["Metadata"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		t.resources[id] = &Resource{LogicalID: id, Type: typ, Properties: props, Metadata: meta}
		t.order = append(t.order, id)
	}
	sort.Strings(t.order)
	return t, nil
}

func splitList(s string) []any {
	var out []any
	for _, p := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}

// setParameter sets a declared parameter's value; undeclared names are ignored.
func (t *Template) setParameter(name, value string) {
	if _, ok := t.paramTypes[name]; ok {
		t.params[name] = value
	}
}

// Resource returns the resource with that logical id, or nil.
func (t *Template) Resource(logicalID string) *Resource { return t.resources[logicalID] }

// ResourcesOfType returns the resources of the given types, ordered by logical id.
func (t *Template) ResourcesOfType(types ...string) []*Resource {
	var out []*Resource
	for _, id := range t.order {
		r := t.resources[id]
		for _, typ := range types {
			if r.Type == typ {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// globalsOf returns the Globals section for one kind of resource ("Function", "HttpApi").
func (t *Template) globalsOf(kind string) map[string]any {
	g, _ := t.globals[kind].(map[string]any)
	return g
}

// withGlobals merges Globals.<kind> under a resource's properties the way SAM does:
// maps merge key by key, lists concatenate globals first, and scalars of the resource
// win.
func (t *Template) withGlobals(kind string, props map[string]any) map[string]any {
	m, _ := mergeGlobals(t.globalsOf(kind), props).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

func mergeGlobals(global, local any) any {
	if global == nil {
		return local
	}
	if local == nil {
		return global
	}
	gm, gok := global.(map[string]any)
	lm, lok := local.(map[string]any)
	if gok && lok && !isIntrinsic(gm) && !isIntrinsic(lm) {
		out := make(map[string]any, len(gm)+len(lm))
		for k, v := range gm {
			out[k] = v
		}
		for k, v := range lm {
			out[k] = mergeGlobals(gm[k], v)
		}
		return out
	}
	gl, gok := global.([]any)
	ll, lok := local.([]any)
	if gok && lok {
		return append(append([]any{}, gl...), ll...)
	}
	return local
}

func isIntrinsic(m map[string]any) bool {
	if len(m) != 1 {
		return false
	}
	for k, v := range m {
		if k == "Condition" {
			// {Condition: Name} is the intrinsic; an IAM statement's Condition block is
			// a mapping.
			_, ok := v.(string)
			return ok
		}
		return k == "Ref" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

// PhysicalName is the local name of a resource: tables and queues "<stack>-<id>"
// (FIFO queues with .fifo), buckets the same in lower case, functions their logical
// id, state machines their Name, each unless the template names the resource itself.
func (t *Template) PhysicalName(logicalID string) (string, error) {
	r := t.resources[logicalID]
	if r == nil {
		return "", fmt.Errorf("no resource %s", logicalID)
	}
	if t.resolving[logicalID] {
		return "", fmt.Errorf("resource %s names itself in a cycle", logicalID)
	}
	t.resolving[logicalID] = true
	defer delete(t.resolving, logicalID)

	explicit := func(prop string) (string, bool, error) {
		v, ok := r.Properties[prop]
		if !ok {
			return "", false, nil
		}
		s, err := t.ResolveString(v)
		return s, err == nil, err
	}
	var (
		prop string
		def  = StackName + "-" + logicalID
	)
	switch r.Type {
	case typeTable:
		prop = "TableName"
	case typeSimpleTable:
		prop = "TableName"
	case typeBucket:
		prop, def = "BucketName", strings.ToLower(def)
	case typeFunction, typeLambdaFunction:
		prop, def = "FunctionName", logicalID
	case typeStateMachine:
		prop = "Name"
	case typeSFNMachine:
		prop = "StateMachineName"
	case typeEmailIdentity:
		prop = "EmailIdentity"
	case typeRole:
		prop = "RoleName"
	case typeQueue:
		prop, def = "QueueName", t.defaultQueueName(r, def)
	case typeHTTPAPI:
		return APIID, nil
	}
	if prop != "" {
		s, ok, err := explicit(prop)
		if err != nil {
			return "", fmt.Errorf("%s.%s: %w", logicalID, prop, err)
		}
		if ok {
			return s, nil
		}
	}
	return def, nil
}

// ARN is the local ARN of a table, bucket, function, state machine, queue or role.
func (t *Template) ARN(logicalID string) (string, error) {
	r := t.resources[logicalID]
	if r == nil {
		return "", fmt.Errorf("no resource %s", logicalID)
	}
	name, err := t.PhysicalName(logicalID)
	if err != nil {
		return "", err
	}
	switch r.Type {
	case typeTable, typeSimpleTable:
		return fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", Partition, Region, AccountID, name), nil
	case typeBucket:
		return fmt.Sprintf("arn:%s:s3:::%s", Partition, name), nil
	case typeFunction, typeLambdaFunction:
		return FunctionARN(name), nil
	case typeStateMachine, typeSFNMachine:
		return fmt.Sprintf("arn:%s:states:%s:%s:stateMachine:%s", Partition, Region, AccountID, name), nil
	case typeRole:
		return fmt.Sprintf("arn:%s:iam::%s:role/%s", Partition, AccountID, name), nil
	case typeEmailIdentity:
		return fmt.Sprintf("arn:%s:ses:%s:%s:identity/%s", Partition, Region, AccountID, name), nil
	case typeQueue:
		return fmt.Sprintf("arn:%s:sqs:%s:%s:%s", Partition, Region, AccountID, name), nil
	}
	return "", fmt.Errorf("no local ARN for %s (%s)", logicalID, r.Type)
}

// FunctionARN is the local ARN of the function with that name.
func FunctionARN(name string) string {
	return fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", Partition, Region, AccountID, name)
}

func (t *Template) ref(name string) (any, error) {
	switch name {
	case "AWS::StackName":
		return StackName, nil
	case "AWS::Region":
		return Region, nil
	case "AWS::AccountId":
		return AccountID, nil
	case "AWS::Partition":
		return Partition, nil
	case "AWS::URLSuffix":
		return URLSuffix, nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/00000000-0000-0000-0000-000000000000", Partition, Region, AccountID, StackName), nil
	case "AWS::NotificationARNs":
		return []any{}, nil
	case "AWS::NoValue":
		return noValue{}, nil
	}
	if v, ok := t.params[name]; ok {
		return v, nil
	}
	if _, ok := t.paramTypes[name]; ok {
		return nil, fmt.Errorf("parameter %s has no default and no value", name)
	}
	r := t.resources[name]
	if r == nil {
		return nil, fmt.Errorf("Ref %s: no such parameter or resource", name)
	}
	switch r.Type {
	case typeStateMachine, typeSFNMachine:
		return t.ARN(name)
	case typeQueue:
		return t.queueURL(name)
	}
	return t.PhysicalName(name)
}

func (t *Template) getAtt(id, attr string) (any, error) {
	r := t.resources[id]
	if r == nil {
		return nil, fmt.Errorf("GetAtt %s.%s: no such resource", id, attr)
	}
	name, err := t.PhysicalName(id)
	if err != nil {
		return nil, err
	}
	switch {
	case attr == "Arn":
		return t.ARN(id)
	case attr == "Name" || attr == "TableName" || attr == "BucketName" || attr == "FunctionName":
		return name, nil
	case r.Type == typeTable && attr == "StreamArn":
		arn, _ := t.ARN(id)
		return arn + "/stream/1970-01-01T00:00:00.000", nil
	case r.Type == typeBucket && attr == "DomainName":
		return name + ".s3." + URLSuffix, nil
	case r.Type == typeBucket && attr == "RegionalDomainName":
		return name + ".s3." + Region + "." + URLSuffix, nil
	case r.Type == typeHTTPAPI && attr == "ApiEndpoint":
		return "https://" + name + ".execute-api." + Region + "." + URLSuffix, nil
	case r.Type == typeQueue && attr == "QueueName":
		return name, nil
	case r.Type == typeQueue && attr == "QueueUrl":
		return t.queueURL(id)
	case r.Type == typeRole && attr == "RoleId":
		return "AROA" + strings.ToUpper(strings.ReplaceAll(id, "-", "")), nil
	}
	return nil, fmt.Errorf("GetAtt %s.%s: attribute not supported locally", id, attr)
}

// Resolve evaluates every intrinsic function in v: Ref, Fn::GetAtt, Fn::Sub, Fn::Join,
// Fn::Select, Fn::Split, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::FindInMap,
// Fn::Base64 and Fn::GetAZs. It fails naming the first intrinsic it cannot resolve.
func (t *Template) Resolve(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if isIntrinsic(x) {
			return t.intrinsic(x)
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := t.Resolve(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if _, drop := r.(noValue); !drop {
				out[k] = r
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			r, err := t.Resolve(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if _, drop := r.(noValue); !drop {
				out = append(out, r)
			}
		}
		return out, nil
	}
	return v, nil
}

// ResolveString resolves v and requires a scalar, which it returns as text.
func (t *Template) ResolveString(v any) (string, error) {
	r, err := t.Resolve(v)
	if err != nil {
		return "", err
	}
	return scalarString(r)
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "", errors.New("value is null")
	}
	return "", fmt.Errorf("want a string, have %T", v)
}

func (t *Template) intrinsic(m map[string]any) (any, error) {
	for fn, arg := range m {
		switch fn {
		case "Ref":
			name, err := t.ResolveString(arg)
			if err != nil {
				return nil, fmt.Errorf("Ref: %w", err)
			}
			return t.ref(name)
		case "Condition":
			name, err := t.ResolveString(arg)
			if err != nil {
				return nil, err
			}
			return t.condition(name)
		case "Fn::GetAtt":
			return t.fnGetAtt(arg)
		case "Fn::Sub":
			return t.fnSub(arg)
		case "Fn::Join":
			return t.fnJoin(arg)
		case "Fn::Select":
			return t.fnSelect(arg)
		case "Fn::Split":
			args, err := t.args(fn, arg, 2)
			if err != nil {
				return nil, err
			}
			delim, err1 := scalarString(args[0])
			s, err2 := scalarString(args[1])
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("Fn::Split: %w", err)
			}
			var out []any
			for _, p := range strings.Split(s, delim) {
				out = append(out, p)
			}
			return out, nil
		case "Fn::If":
			raw, ok := arg.([]any)
			if !ok || len(raw) != 3 {
				return nil, errors.New("Fn::If wants [condition, then, else]")
			}
			name, err := scalarString(raw[0])
			if err != nil {
				return nil, fmt.Errorf("Fn::If: %w", err)
			}
			ok, err = t.condition(name)
			if err != nil {
				return nil, err
			}
			if ok {
				return t.Resolve(raw[1])
			}
			return t.Resolve(raw[2])
		case "Fn::Equals":
			args, err := t.args(fn, arg, 2)
			if err != nil {
				return nil, err
			}
			a, err1 := scalarString(args[0])
			b, err2 := scalarString(args[1])
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("Fn::Equals: %w", err)
			}
			return a == b, nil
		case "Fn::Not":
			args, err := t.args(fn, arg, 1)
			if err != nil {
				return nil, err
			}
			b, ok := args[0].(bool)
			if !ok {
				return nil, errors.New("Fn::Not wants a condition")
			}
			return !b, nil
		case "Fn::And", "Fn::Or":
			args, err := t.args(fn, arg, -1)
			if err != nil {
				return nil, err
			}
			and := fn == "Fn::And"
			acc := and
			for _, a := range args {
				b, ok := a.(bool)
				if !ok {
					return nil, fmt.Errorf("%s wants conditions", fn)
				}
				if and {
					acc = acc && b
				} else {
					acc = acc || b
				}
			}
			return acc, nil
		case "Fn::FindInMap":
			args, err := t.args(fn, arg, 3)
			if err != nil {
				return nil, err
			}
			var cur any = t.mappings
			for _, a := range args {
				k, err := scalarString(a)
				if err != nil {
					return nil, fmt.Errorf("Fn::FindInMap: %w", err)
				}
				cm, _ := cur.(map[string]any)
				if cur = cm[k]; cur == nil {
					return nil, fmt.Errorf("Fn::FindInMap: no key %s", k)
				}
			}
			return t.Resolve(cur)
		case "Fn::Base64":
			s, err := t.ResolveString(arg)
			if err != nil {
				return nil, fmt.Errorf("Fn::Base64: %w", err)
			}
			return base64.StdEncoding.EncodeToString([]byte(s)), nil
		case "Fn::GetAZs":
			return []any{Region + "a", Region + "b", Region + "c"}, nil
		}
		return nil, fmt.Errorf("%s is not supported locally", fn)
	}
	return nil, nil
}

// args resolves the list argument of an intrinsic; n < 0 takes any length.
func (t *Template) args(fn string, arg any, n int) ([]any, error) {
	r, err := t.Resolve(arg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	l, ok := r.([]any)
	if !ok || (n >= 0 && len(l) != n) {
		return nil, fmt.Errorf("%s wants a list of %d", fn, n)
	}
	return l, nil
}

func (t *Template) condition(name string) (bool, error) {
	if b, ok := t.condCache[name]; ok {
		return b, nil
	}
	c, ok := t.conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	r, err := t.Resolve(c)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	b, ok := r.(bool)
	if !ok {
		return false, fmt.Errorf("condition %s is not a boolean", name)
	}
	t.condCache[name] = b
	return b, nil
}

func (t *Template) fnGetAtt(arg any) (any, error) {
	var id, attr string
	switch a := arg.(type) {
	case string:
		var ok bool
		if id, attr, ok = strings.Cut(a, "."); !ok {
			return nil, fmt.Errorf("Fn::GetAtt %q wants Resource.Attribute", a)
		}
	case []any:
		if len(a) != 2 {
			return nil, errors.New("Fn::GetAtt wants [resource, attribute]")
		}
		var err1, err2 error
		id, err1 = scalarString(a[0])
		attrV, err := t.Resolve(a[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::GetAtt: %w", err)
		}
		attr, err2 = scalarString(attrV)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("Fn::GetAtt: %w", err)
		}
	default:
		return nil, fmt.Errorf("Fn::GetAtt wants a string or list, have %T", arg)
	}
	return t.getAtt(id, attr)
}

func (t *Template) fnSub(arg any) (any, error) {
	var (
		text string
		vars map[string]any
	)
	switch a := arg.(type) {
	case string:
		text = a
	case []any:
		if len(a) != 2 {
			return nil, errors.New("Fn::Sub wants a string or [string, variables]")
		}
		s, ok := a[0].(string)
		if !ok {
			return nil, errors.New("Fn::Sub: the template is not a string")
		}
		text = s
		vars, _ = a[1].(map[string]any)
		if vars == nil {
			return nil, errors.New("Fn::Sub: variables are not a mapping")
		}
	default:
		return nil, fmt.Errorf("Fn::Sub wants a string, have %T", arg)
	}
	var b strings.Builder
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		b.WriteString(text[:i])
		j := strings.IndexByte(text[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("Fn::Sub: unclosed ${ in %q", text)
		}
		name := text[i+2 : i+j]
		text = text[i+j+1:]
		if strings.HasPrefix(name, "!") {
			b.WriteString("${" + name[1:] + "}")
			continue
		}
		name = strings.TrimSpace(name)
		var (
			val any
			err error
		)
		if v, ok := vars[name]; ok {
			val, err = t.Resolve(v)
		} else if id, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			val, err = t.getAtt(id, attr)
		} else {
			val, err = t.ref(name)
		}
		if err != nil {
			return nil, fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
		}
		s, err := scalarString(val)
		if err != nil {
			return nil, fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
		}
		b.WriteString(s)
	}
}

func (t *Template) fnJoin(arg any) (any, error) {
	a, ok := arg.([]any)
	if !ok || len(a) != 2 {
		return nil, errors.New("Fn::Join wants [delimiter, list]")
	}
	delim, err := scalarString(a[0])
	if err != nil {
		return nil, fmt.Errorf("Fn::Join: %w", err)
	}
	r, err := t.Resolve(a[1])
	if err != nil {
		return nil, fmt.Errorf("Fn::Join: %w", err)
	}
	l, ok := r.([]any)
	if !ok {
		return nil, errors.New("Fn::Join: second argument is not a list")
	}
	parts := make([]string, len(l))
	for i, e := range l {
		if parts[i], err = scalarString(e); err != nil {
			return nil, fmt.Errorf("Fn::Join [%d]: %w", i, err)
		}
	}
	return strings.Join(parts, delim), nil
}

func (t *Template) fnSelect(arg any) (any, error) {
	a, ok := arg.([]any)
	if !ok || len(a) != 2 {
		return nil, errors.New("Fn::Select wants [index, list]")
	}
	is, err := t.ResolveString(a[0])
	if err != nil {
		return nil, fmt.Errorf("Fn::Select: %w", err)
	}
	i, err := strconv.Atoi(is)
	if err != nil {
		return nil, fmt.Errorf("Fn::Select: index %q: %w", is, err)
	}
	r, err := t.Resolve(a[1])
	if err != nil {
		return nil, fmt.Errorf("Fn::Select: %w", err)
	}
	l, ok := r.([]any)
	if !ok {
		return nil, errors.New("Fn::Select: second argument is not a list")
	}
	if i < 0 || i >= len(l) {
		return nil, fmt.Errorf("Fn::Select: index %d out of range of %d", i, len(l))
	}
	return l[i], nil
}

// fromYAML turns a YAML node into plain values, rewriting CloudFormation short-form
// tags (!Ref X, !GetAtt A.B, !Sub ...) into their long forms.
func fromYAML(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return fromYAML(n.Content[0])
	case yaml.AliasNode:
		return fromYAML(n.Alias)
	}
	var (
		v   any
		err error
	)
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			e, err := fromYAML(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = e
		}
		v = m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			e, err := fromYAML(c)
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
		v = l
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!!") || n.Tag == "" {
			if err = n.Decode(&v); err != nil {
				return nil, fmt.Errorf("line %d: %w", n.Line, err)
			}
			return v, nil
		}
		v = n.Value
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return v, nil
	}
	switch tag := n.Tag[1:]; tag {
	case "Ref", "Condition":
		return map[string]any{tag: v}, nil
	case "GetAtt":
		if s, ok := v.(string); ok {
			id, attr, ok := strings.Cut(s, ".")
			if !ok {
				return nil, fmt.Errorf("line %d: !GetAtt %q wants Resource.Attribute", n.Line, s)
			}
			v = []any{id, attr}
		}
		return map[string]any{"Fn::GetAtt": v}, nil
	default:
		return map[string]any{"Fn::" + tag: v}, nil
	}
}
