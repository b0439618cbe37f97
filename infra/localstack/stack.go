// Package localstack runs turnover on a laptop or in CI without an AWS account or
// Docker. It stands in for sam local start-api, sam local start-lambda, Step Functions
// Local and DynamoDB Local together, on loopback:
//
//   - a moto server child process holds DynamoDB, S3, SES and Step Functions, with state
//     machine execution turned on;
//   - an AWS front door in front of moto runs Lambda invocations in-process with the Go
//     handlers and proxies every other call to moto, counting and tracing calls (each
//     with the invocation that made it) and injecting faults on the way: AWS's
//     retryable errors at set rates (ParseFaults, /_local/faults) and crashes that
//     kill an invocation part way (ArmCrash);
//   - an HTTP API turns requests into API Gateway payload format 2.0 events, checks
//     JWTs like the HTTP API JWT authorizer, and invokes the route's function.
//   - SES v2 mail is kept by moto as the MIME SES would send, and the HTTP API's
//     port lists it at /_local/mail (JSON) and /_local/mail.html.
//   - functions with Schedule or ScheduleV2 events are invoked on their schedule, as
//     moto keeps EventBridge rules without firing them, and on demand at
//     /_local/schedules:fire.
//   - functions with SQS events, or an AWS::Lambda::EventSourceMapping on a queue, are
//     handed batches of their queue's messages, as moto keeps queues but has no event
//     source mappings for in-process functions.
//
// Everything comes from template.yaml: tables, buckets, email identities, the state
// machines with their DefinitionSubstitutions, each function's environment, the routes,
// the authorizer, the schedules, and the queues with their event sources.
package localstack

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"turnover/internal/app"
)

// Options configure a local stack.
type Options struct {
	// Dir is the repository root holding template.yaml and the state machine files.
	Dir string
	// FrontDoorAddr is where the AWS endpoint listens, e.g. 127.0.0.1:4566; port 0
	// takes a free port. The host must be an IP address so that S3 clients address
	// buckets path-style.
	FrontDoorAddr string
	// APIAddr is where the HTTP API listens, e.g. 127.0.0.1:3000; port 0 takes a free
	// port.
	APIAddr string
	// KeyFile is the PEM RSA private key that signs and checks dev tokens; it is made
	// when missing. Empty means a key that lives as long as the stack.
	KeyFile string
	// Functions build the template's functions, keyed by the last element of CodeUri
	// (functions/api/ is "api").
	Functions map[string]app.Function
	// Seed, if set, runs once everything exists and before the stack reports ready.
	Seed func(ctx context.Context, awsCfg aws.Config, res Resources) error
	// Parameters override the template's parameter defaults. ChildExecutionType is
	// STANDARD unless given, as moto runs only STANDARD child workflows. PortalUrl is
	// the HTTP API's URL unless given, so that links in mail lead to the local stack.
	Parameters map[string]string
	// Logger receives the stack's logs; nil means slog.Default().
	Logger *slog.Logger
	// Faults, if set, may delay or fail the AWS calls crossing the front door once the
	// stack is ready; SetFaults replaces it while the stack runs.
	Faults FaultInjector
	// ScheduleTick, when positive, fires every scheduled function at this interval
	// instead of on its template schedule; negative never fires them by timer
	// (FireSchedules still does). Zero keeps the template's schedules.
	ScheduleTick time.Duration
	// FunctionLogs receives the functions' own logs, one JSON object a line as Lambda
	// writes them to CloudWatch; nil means standard output.
	FunctionLogs io.Writer
	// QueuePollInterval, when positive, is how long an SQS event source's poller rests
	// after a receive that found nothing; zero polls again at once (each receive waits
	// up to a second for messages). Negative never polls by itself (PollQueues and
	// DrainQueues still deliver).
	QueuePollInterval time.Duration
}

// Resources are the local names of what the template declares, by logical id.
type Resources struct {
	StackName     string
	Tables        map[string]string // logical id → table name
	Buckets       map[string]string // logical id → bucket name
	StateMachines map[string]string // logical id → state machine ARN
	Functions     map[string]string // logical id → function name
	Queues        map[string]string // logical id → queue URL
}

// motoBootTimeout bounds the wait for moto to answer.
const motoBootTimeout = 30 * time.Second

// Stack is a running local stack.
type Stack struct {
	// FrontDoorURL is the AWS endpoint, e.g. http://127.0.0.1:4566.
	FrontDoorURL string
	// APIURL is the HTTP API's base URL, e.g. http://127.0.0.1:3000.
	APIURL string
	// AWS is configured for the front door: region us-east-1, static test credentials.
	AWS aws.Config
	// Resources name what the template declares.
	Resources Resources

	log *slog.Logger
	// functionLog is the logger every function is built with.
	functionLog *slog.Logger
	opt         Options
	plan        *plan
	moto        *moto
	motoURL     *url.URL
	proxy       *httputil.ReverseProxy
	frontDoor   *http.Server
	api         *http.Server
	key         *rsa.PrivateKey
	functions   map[string]*function // by function name
	routes      []*route
	calls       callCounter
	ready       atomic.Bool
	faults      atomic.Pointer[faultSlot]
	trace       traceLog
	invocations invocations
	crash       crashes
	// functionsBuilt guards functions, which Start fills while the front door serves.
	functionsBuilt atomic.Bool

	baseCtx context.Context
	cancel  context.CancelFunc
	async   sync.WaitGroup
	serving sync.WaitGroup
	timers  sync.WaitGroup // one per schedule firing on its own and per SQS poller
	queues  *queueRunner

	closeOnce sync.Once
	closeErr  error
}

// Start brings up a local stack and returns once it is ready: moto answers, every
// resource of the template exists, every function is built and Seed has run. ctx
// bounds the start only; the stack runs until Close.
//
// It fails when python3 or moto is missing (saying how to install moto), when an
// address is taken, when the template cannot be read or holds something the local stack
// cannot stand up, when a function has no builder or its builder fails, or when Seed
// fails. Whatever was started is stopped before it returns an error.
func Start(ctx context.Context, opt Options) (*Stack, error) {
	return start(ctx, opt)
}

func start(ctx context.Context, opt Options) (_ *Stack, err error) {
	began := time.Now()
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	if opt.Dir == "" {
		opt.Dir = "."
	}
	python, err := findPython()
	if err != nil {
		return nil, err
	}
	baseCtx, cancel := context.WithCancel(context.Background())
	s := &Stack{log: log, opt: opt, baseCtx: baseCtx, cancel: cancel, functions: map[string]*function{}}
	s.SetFaults(opt.Faults)
	s.functionLog = newFunctionLogger(opt.FunctionLogs)
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	motoPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("moto port: %w", err)
	}
	s.motoURL = &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(motoPort))}
	s.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(s.motoURL)
			// Keep the client's Host: moto reads it (S3 addressing, queue URLs).
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			// moto answers on a thread per connection and refuses connections past a
			// few hundred at once; a job's batches can open a thousand. Requests past
			// this many wait here for a connection, as they would for a slow service.
			MaxConnsPerHost:     64,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("front door: moto did not answer", "method", r.Method, "path", r.URL.Path, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	fdLn, err := net.Listen("tcp", opt.FrontDoorAddr)
	if err != nil {
		return nil, fmt.Errorf("front door: %w", err)
	}
	s.frontDoor = &http.Server{Handler: http.HandlerFunc(s.serveFrontDoor), ReadHeaderTimeout: 10 * time.Second}
	s.serve(s.frontDoor, fdLn)
	apiLn, err := net.Listen("tcp", opt.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API: %w", err)
	}
	s.api = &http.Server{Handler: http.HandlerFunc(s.serveAPI), ReadHeaderTimeout: 10 * time.Second}
	s.serve(s.api, apiLn)
	s.FrontDoorURL = "http://" + fdLn.Addr().String()
	s.APIURL = "http://" + apiLn.Addr().String()

	// moto takes the longest to boot; start it first and do the rest meanwhile.
	if s.moto, err = startMoto(python, motoPort, fdLn.Addr().(*net.TCPAddr).Port, log); err != nil {
		return nil, err
	}

	keyc := make(chan error, 1)
	go func() {
		var err error
		if opt.KeyFile == "" {
			s.key, err = generateKey()
		} else {
			s.key, err = LoadOrCreateKey(opt.KeyFile)
		}
		keyc <- err
	}()

	t, err := LoadTemplate(opt.Dir, opt.Parameters)
	if err != nil {
		return nil, err
	}
	if _, ok := opt.Parameters["ChildExecutionType"]; !ok {
		t.setParameter("ChildExecutionType", "STANDARD")
	}
	if _, ok := opt.Parameters["PortalUrl"]; !ok {
		t.setParameter("PortalUrl", s.APIURL)
	}
	t.queueEndpoint = s.FrontDoorURL
	if s.plan, err = makePlan(t); err != nil {
		return nil, err
	}
	s.Resources = s.plan.resources
	s.routes = s.plan.routes
	for _, f := range s.plan.functions {
		if opt.Functions[f.Folder] == nil {
			return nil, fmt.Errorf("function %s (CodeUri folder %q) has no builder in Options.Functions", f.LogicalID, f.Folder)
		}
	}
	s.AWS = aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(s.FrontDoorURL),
		// Names the invocation behind each call of an in-process function.
		HTTPClient: newInvocationClient(s),
	}

	bootCtx, cancelBoot := context.WithTimeout(ctx, motoBootTimeout)
	err = s.moto.ready(bootCtx)
	// The port freePort found can be taken before moto binds it, by a stack another test
	// starts beside this one: moto exits, and starts again on another port.
	for try := 1; err != nil && s.moto.portTaken() && try < 3; try++ {
		log.Warn("moto's port was taken before it could bind it; trying another", "port", motoPort)
		if motoPort, err = freePort(); err != nil {
			break
		}
		s.motoURL = &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(motoPort))}
		if s.moto, err = startMoto(python, motoPort, fdLn.Addr().(*net.TCPAddr).Port, log); err != nil {
			break
		}
		err = s.moto.ready(bootCtx)
	}
	cancelBoot()
	if err != nil {
		return nil, err
	}
	log.Debug("moto ready", "after", time.Since(began).Round(time.Millisecond))
	if err := s.createResources(ctx); err != nil {
		return nil, err
	}
	if err := s.buildFunctions(ctx); err != nil {
		return nil, err
	}
	if err := <-keyc; err != nil {
		return nil, err
	}
	if opt.Seed != nil {
		if err := opt.Seed(ctx, s.AWS, s.Resources); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
	}
	s.startSchedules()
	s.startQueues()
	s.ready.Store(true)
	log.Info("local stack ready", "api", s.APIURL, "aws", s.FrontDoorURL, "took", time.Since(began).Round(time.Millisecond))
	return s, nil
}

func (s *Stack) serve(srv *http.Server, ln net.Listener) {
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

func (s *Stack) buildFunctions(ctx context.Context) error {
	for _, spec := range s.plan.functions {
		env := spec.Env
		lookup := func(key string) (string, bool) { v, ok := env[key]; return v, ok }
		h, err := s.opt.Functions[spec.Folder](ctx, s.AWS, lookup, s.functionLog)
		if err != nil {
			return fmt.Errorf("build function %s: %w", spec.LogicalID, err)
		}
		if h == nil {
			return fmt.Errorf("build function %s: the builder returned no handler", spec.LogicalID)
		}
		s.functions[spec.Name] = &function{spec: spec, handler: h}
	}
	s.functionsBuilt.Store(true)
	return nil
}

// Close stops the HTTP servers, waits briefly for running invocations, and ends the
// moto process group. It is safe to call more than once; later calls return the first
// call's result.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.ready.Store(false)
		shutdown := func(srv *http.Server, d time.Duration) {
			if srv == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
		}
		// New API requests stop first; running invocations then see their context
		// end and may still reach AWS through the front door until it closes.
		began := time.Now()
		shutdown(s.api, time.Second)
		s.cancel()
		// Every wait of a timer ends with the context, so no schedule fires after this.
		s.timers.Wait()
		waitTimeout(&s.async, time.Second)
		shutdown(s.frontDoor, time.Second)
		s.log.Debug("servers stopped", "after", time.Since(began).Round(time.Millisecond))
		if s.moto != nil {
			s.moto.stop()
		}
		s.serving.Wait()
		s.log.Debug("moto stopped", "after", time.Since(began).Round(time.Millisecond))
	})
	return s.closeErr
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// Calls returns how many AWS calls crossed the front door since the start or the last
// ResetCalls, keyed "service.Operation" (dynamodb.Query, s3.PutObject, lambda.Invoke,
// states.StartExecution…). Calls the stack made to set itself up are included.
func (s *Stack) Calls() map[string]int { return s.calls.snapshot() }

// ResetCalls sets every count to zero and empties the trace.
func (s *Stack) ResetCalls() {
	s.calls.reset()
	s.ResetTrace()
}

// Token signs a dev token that the HTTP API's default JWT authorizer accepts. It fails
// when the template's HTTP APIs have no default JWT authorizer.
func (s *Stack) Token(c TokenClaims) (string, error) {
	if s.plan.defaultAuth == nil {
		return "", errors.New("the template's HTTP APIs have no default JWT authorizer")
	}
	return signToken(s.key, *s.plan.defaultAuth, c, time.Now())
}

// serveFrontDoor is the AWS endpoint.
func (s *Stack) serveFrontDoor(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_local/calls":
		s.serveCalls(w, r)
		return
	case "/_local/faults":
		s.serveFaults(w, r)
		return
	}
	if len(r.URL.Path) >= 10 && r.URL.Path[:10] == "/moto-api/" {
		s.proxy.ServeHTTP(w, r)
		return
	}
	call, proto := classify(r)
	s.calls.add(call)
	requestID := newRequestID()
	invocationID := takeInvocation(r)
	inv := s.invocations.get(invocationID)
	tw := &statusWriter{ResponseWriter: w}
	w = tw
	defer s.traceCall(tw, call, invocationID, inv)()
	s.log.Debug("aws", "call", call.String(), "method", r.Method, "path", r.URL.Path, "invocation", invocationID)
	if s.invocations.isKilled(inv) {
		dropConnection(w)
		return
	}
	if f := s.frontDoorFault(call, r); f != nil {
		s.log.Info("aws fault injected", "call", call.String(), "status", f.Status, "code", f.Code)
		_, _ = io.Copy(io.Discard, r.Body)
		writeFault(w, proto, f, requestID)
		return
	}
	if name, ok := lambdaFunctionFromPath(r); ok {
		s.serveInvoke(w, r, name, requestID)
		return
	}
	if call == (Call{Service: "ses", Operation: "SendEmail"}) && proto == protoRESTJSON {
		if err := s.simpleAsRaw(r); err != nil {
			s.log.Debug("front door", "call", call.String(), "err", err)
			writeAWSError(w, proto, http.StatusBadRequest, "BadRequestException", "the request body could not be read", requestID)
			return
		}
	}
	s.forward(w, r, call, inv)
}

func (s *Stack) serveCalls(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Calls())
	case http.MethodDelete:
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, DELETE")
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
