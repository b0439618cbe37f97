package localstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const installHint = `install it with: pip install "moto[server]"`

// moto is the moto server child process.
type moto struct {
	cmd  *exec.Cmd
	url  string
	log  *slog.Logger
	done chan struct{} // closed when the process has exited
	err  error         // exit status, set before done closes

	mu   sync.Mutex
	tail []string // last lines of its output

	stopOnce sync.Once
}

// motoBootstrap runs moto.server's main (what "python3 -m moto.server" runs) and, beside
// the server's start, readies moto 5.2's Step Functions engine and DynamoDB:
//
//   - The engine imports moto.batch.utils for one enum; importing it the usual way runs
//     moto.batch's package, which loads EC2 and its region tables: a second of CPU on
//     every start for a service turnover does not use. utils is loaded on its own.
//   - StartExecution deep-copies the state machine, and with it the whole backend;
//     once any execution has run, the copy meets a thread lock and every later
//     StartExecution fails with a 500. The engine needs only a shallow copy.
//   - StartExecution without a name names the execution "None" rather than a UUID, so
//     a second unnamed execution of a state machine fails with ExecutionAlreadyExists.
//   - moto keeps every DynamoDB model it ever made for its data.json dashboard:
//     overwritten and deleted items, the copy of an item UpdateItem makes, and the copy
//     of the whole table, items and all, that TransactWriteItems makes on every call.
//     Memory grows without end and data.json, which the sent-mail pages read, slows
//     with it (500 items and 50 transactions: 1.5s). Items are left out of data.json
//     and the other DynamoDB models are listed only while moto still uses them.
//   - moto's DynamoDB serves requests on many threads with no lock, and
//     TransactWriteItems checks its conditions, writes, and on a failed condition puts
//     back a copy of the whole table taken before: two transactions on one item can
//     both pass their conditions, and a failed one undoes writes other requests made
//     meanwhile. DynamoDB requests are served one at a time, which makes transactions
//     atomic and isolated as DynamoDB's are. The copy of the whole table, which made
//     every transaction cost as much as the table is large (seconds at 15,000 items),
//     becomes a copy of just the items the transaction names, put back if it fails.
//   - Query reads every item of the table, sorted, to find one partition's, so a job's
//     reads grew with the square of the table. A Query of the table (not an index) looks
//     at its partition's items only.
//   - moto writes every response through a serializer driven by the service model, at
//     about 1.7 ms an item: a Scan of 12,000 items took 11 s. The answers of the calls that
//     return items (GetItem, BatchGetItem, Query, Scan) are written with moto's own
//     DynamoDB JSON encoder instead, byte for byte what the serializer writes for them.
//
// A moto whose insides differ starts as it is, with a line on stderr.
const motoBootstrap = `
import sys, threading, weakref

def light_batch_utils():
    import importlib, os, types, moto
    if "moto.batch" in sys.modules:
        return
    pkg = types.ModuleType("moto.batch")
    pkg.__path__ = [os.path.join(os.path.dirname(moto.__file__), "batch")]
    sys.modules["moto.batch"] = pkg
    try:
        importlib.import_module("moto.batch.utils")
    finally:
        del sys.modules["moto.batch"]

def ready_stepfunctions():
    try:
        light_batch_utils()
    except Exception as e:
        print("local stack: moto.batch.utils loads the usual way:", repr(e), file=sys.stderr)
    try:
        import copy, uuid
        from moto.stepfunctions import models
        from moto.stepfunctions.parser import models as parser
        models.StateMachine.__deepcopy__ = lambda self, memo: copy.copy(self)
        start = parser.StepFunctionsParserBackend.start_execution
        def start_execution(self, state_machine_arn, name=None, *args, **kwargs):
            return start(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)
        parser.StepFunctionsParserBackend.start_execution = start_execution
    except Exception as e:
        print("local stack: Step Functions engine left as it is:", repr(e), file=sys.stderr)

class Untracked(list):
    def append(self, instance):
        pass

class WhileAlive(list):
    """Weak references that iterate as the instances still alive."""
    def append(self, instance):
        if len(self) > 2 * getattr(self, "kept", 0) + 64:
            self[:] = [r for r in list.__iter__(self) if r() is not None]
            self.kept = len(self)
        try:
            ref = weakref.ref(instance)
        except TypeError:
            ref = lambda: instance
        super().append(ref)

    def __iter__(self):
        return iter([i for i in (r() for r in list(list.__iter__(self))) if i is not None])

def light_dynamodb_tracking():
    try:
        import moto.dynamodb.models
        from moto.core.model_instances import model_data
        for name, model in model_data["dynamodb"].items():
            tracked = Untracked() if name == "Item" else WhileAlive()
            for instance in list(model.instances_tracked):
                tracked.append(instance)
            model.instances_tracked = tracked
    except Exception as e:
        print("local stack: moto keeps every DynamoDB model:", repr(e), file=sys.stderr)

def serial_dynamodb():
    try:
        from moto.dynamodb.responses import DynamoHandler
        lock = threading.RLock()
        call = DynamoHandler.call_action
        def call_action(self):
            with lock:
                return call(self)
        DynamoHandler.call_action = call_action
    except Exception as e:
        print("local stack: moto's DynamoDB serves requests side by side:", repr(e), file=sys.stderr)

def item_transactions():
    try:
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table
        transact = DynamoDBBackend.transact_write_items
        def key_of(self, op_type, op):
            table = self.get_table(op["TableName"])
            if op_type != "Put":
                return op["Key"]
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
            return key
        def transact_write_items(self, transact_items):
            saved = []
            for item in transact_items[:100]:
                try:
                    op_type, op = next(iter(item.items()))
                    key = key_of(self, op_type, op)
                    current = self.get_item(op["TableName"], key)
                    saved.append((op["TableName"], key, current and current.to_json()["Attributes"]))
                except Exception:
                    pass  # the transaction itself reports what is wrong with it
            try:
                return transact(self, transact_items)
            except Exception:
                for table_name, key, attrs in reversed(saved):
                    self.delete_item(table_name, key)
                    if attrs is not None:
                        self.put_item(table_name, attrs)
                raise
        # The transaction's own copy of the table: the items above stand in for it.
        Table.__deepcopy__ = lambda self, memo: self
        DynamoDBBackend.transact_write_items = transact_write_items
    except Exception as e:
        print("local stack: moto's transactions copy the whole table:", repr(e), file=sys.stderr)

def partition_queries():
    try:
        from moto.dynamodb.models.table import Table
        query = Table.query
        def partition_query(self, hash_key, *args, **kwargs):
            index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
            if index_name or not self.range_key_attr or hash_key is None:
                return query(self, hash_key, *args, **kwargs)
            items = list(self.items.get(hash_key, {}).values())
            self.all_items = lambda: items
            try:
                return query(self, hash_key, *args, **kwargs)
            finally:
                del self.all_items
        Table.query = partition_query
    except Exception as e:
        print("local stack: moto's Query reads the whole table:", repr(e), file=sys.stderr)

def fast_item_results():
    try:
        from moto.dynamodb.responses import DynamoResult
        from moto.dynamodb.models.utilities import dynamo_json_dump
        serialize = DynamoResult.execute_result
        item_calls = {"GetItem", "BatchGetItem", "Query", "Scan"}
        def execute_result(self, context):
            if context.operation_model.name not in item_calls or not isinstance(self.result, dict):
                return serialize(self, context)
            body = {k: v for k, v in self.result.items() if v is not None}
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, dynamo_json_dump(body)
        DynamoResult.execute_result = execute_result
    except Exception as e:
        print("local stack: moto's item answers go through its slow serializer:", repr(e), file=sys.stderr)

def ready():
    ready_stepfunctions()
    light_dynamodb_tracking()

from moto.server import main
serial_dynamodb()
item_transactions()
partition_queries()
fast_item_results()
threading.Thread(target=ready, daemon=True).start()
main(sys.argv[1:])
`

// startMoto starts moto's server on port in its own process group. frontDoorPort
// becomes MOTO_PORT, so moto's Step Functions engine calls Lambda and S3 through the
// front door. It returns at once; use ready to wait for it.
func startMoto(python string, port, frontDoorPort int, log *slog.Logger) (*moto, error) {
	cmd := exec.Command(python, "-c", motoBootstrap, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = append(os.Environ(),
		"MOTO_PORT="+strconv.Itoa(frontDoorPort),
		"PYTHONUNBUFFERED=1",
		"NO_PROXY=localhost,127.0.0.1",
		"no_proxy=localhost,127.0.0.1",
	)
	// Its own group, so that stopping it stops everything it started; and killed with
	// us if this process dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto: %w", err)
	}
	m := &moto{cmd: cmd, url: "http://127.0.0.1:" + strconv.Itoa(port), log: log, done: make(chan struct{})}
	go m.drain(out)
	return m, nil
}

func (m *moto) drain(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m.mu.Lock()
		m.tail = append(m.tail, line)
		if len(m.tail) > 30 {
			m.tail = m.tail[len(m.tail)-30:]
		}
		m.mu.Unlock()
		m.log.Debug("moto", "out", line)
	}
	_, _ = io.Copy(io.Discard, out)
	m.err = m.cmd.Wait()
	close(m.done)
}

func (m *moto) output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.tail, "\n")
}

// ready waits until moto answers, then turns on state machine execution.
func (m *moto) ready(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(15 * time.Millisecond)
	defer tick.Stop()
	last := "" // the status of an answer that was not moto's
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.url+"/moto-api/config",
			strings.NewReader(`{"stepfunctions":{"execute_state_machine":true}}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			// Not moto's answer: another server took the port between freePort and
			// moto's bind (tests start stacks side by side). moto then exits on its bind
			// error, which done reports.
			last = resp.Status
		}
		select {
		case <-ctx.Done():
			if last != "" {
				return fmt.Errorf("moto: configure state machine execution: %s", last)
			}
			return fmt.Errorf("moto did not start: %w", ctx.Err())
		case <-m.done:
			return m.exitError()
		case <-tick.C:
		}
	}
}

// portTaken reports whether moto exited because its port was in use.
func (m *moto) portTaken() bool {
	select {
	case <-m.done:
		return strings.Contains(m.output(), "Address already in use")
	default:
		return false
	}
}

func (m *moto) exitError() error {
	out := m.output()
	// Tell a missing install from a crash.
	if check := exec.Command(m.cmd.Path, "-c", "import moto.server"); check.Run() != nil {
		return fmt.Errorf("moto is not installed for %s (%s)\n%s", m.cmd.Path, installHint, out)
	}
	return fmt.Errorf("moto exited before it was ready (%v):\n%s", m.err, out)
}

// stop ends moto's whole process group and returns once moto has been reaped. moto
// keeps everything in memory, so there is nothing to save: SIGKILL spares the second
// a Python interpreter with every moto backend loaded takes to tear itself down.
func (m *moto) stop() {
	m.stopOnce.Do(func() {
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	})
}

// findPython returns the path of python3, or an error saying how to get moto.
func findPython() (string, error) {
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", errors.New("python3 is not on PATH; the local stack runs moto on it (" + installHint + ")")
	}
	return p, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
