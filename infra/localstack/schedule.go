package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Event types of a function that put it on a schedule: an EventBridge rule (Schedule)
// or an EventBridge Scheduler schedule (ScheduleV2).
const (
	eventSchedule   = "Schedule"
	eventScheduleV2 = "ScheduleV2"
)

// Schedule is one enabled Schedule or ScheduleV2 event of a function.
type Schedule struct {
	// Function is the function's logical id.
	Function string
	// Event is the event's name under the function's Events.
	Event string
	// Expression is the schedule as the template writes it, e.g. rate(1 minute).
	Expression string
	// RuleARN names the rule in the resources of the scheduled event.
	RuleARN string
}

// schedule is a Schedule with what firing it needs.
type schedule struct {
	Schedule
	v2 bool
	// input, when set, is the JSON the target receives instead of the scheduled event.
	input       string
	scheduleARN string // ScheduleV2 only, for <aws.scheduler.schedule-arn>
	cadence     cadence
}

// cadence says when a schedule is next due.
type cadence interface {
	// next returns the first firing time after after, or the zero time when the
	// schedule never fires again.
	next(after time.Time) time.Time
}

// every is a fixed interval: a rate expression, or Options.ScheduleTick.
type every time.Duration

func (e every) next(after time.Time) time.Time { return after.Add(time.Duration(e)) }

// schedules reads the enabled Schedule and ScheduleV2 events of a function.
func schedules(t *Template, r *Resource) ([]*schedule, error) {
	id := r.LogicalID
	evs, _ := t.withGlobals("Function", r.Properties)["Events"].(map[string]any)
	names := make([]string, 0, len(evs))
	for k := range evs {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []*schedule
	for _, name := range names {
		ev, _ := evs[name].(map[string]any)
		typ, _ := ev["Type"].(string)
		if typ != eventSchedule && typ != eventScheduleV2 {
			continue
		}
		sc, err := readSchedule(t, id, name, typ, ev["Properties"])
		if err != nil {
			return nil, fmt.Errorf("%s event %s: %w", id, name, err)
		}
		if sc != nil {
			out = append(out, sc)
		}
	}
	return out, nil
}

// readSchedule reads one schedule event; a disabled one is nil.
func readSchedule(t *Template, fn, event, typ string, rawProps any) (*schedule, error) {
	rp, err := t.Resolve(rawProps)
	if err != nil {
		return nil, err
	}
	props, _ := rp.(map[string]any)
	str := func(key string) (string, error) {
		v, ok := props[key]
		if !ok {
			return "", nil
		}
		s, err := scalarString(v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		return s, nil
	}
	if enabled, err := eventEnabled(props); err != nil || !enabled {
		return nil, err
	}
	state, err := str("State")
	if err != nil {
		return nil, err
	}
	if state == "DISABLED" {
		return nil, nil
	}

	sc := &schedule{Schedule: Schedule{Function: fn, Event: event}, v2: typ == eventScheduleV2}
	exprKey := "Schedule"
	if sc.v2 {
		exprKey = "ScheduleExpression"
	}
	if sc.Expression, err = str(exprKey); err != nil {
		return nil, err
	}
	if sc.Expression == "" {
		return nil, fmt.Errorf("%s event has no %s", typ, exprKey)
	}
	loc := time.UTC
	if sc.v2 {
		tz, err := str("ScheduleExpressionTimezone")
		if err != nil {
			return nil, err
		}
		if tz != "" {
			if loc, err = time.LoadLocation(tz); err != nil {
				return nil, fmt.Errorf("ScheduleExpressionTimezone: %w", err)
			}
		}
	}
	if sc.cadence, err = parseScheduleExpression(sc.Expression, loc); err != nil {
		return nil, fmt.Errorf("%s: %w", exprKey, err)
	}

	name, err := str("Name")
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = StackName + "-" + fn + "-" + event
	}
	sc.RuleARN = fmt.Sprintf("arn:%s:events:%s:%s:rule/%s", Partition, Region, AccountID, name)
	if sc.v2 {
		group, err := str("GroupName")
		if err != nil {
			return nil, err
		}
		if group == "" {
			group = "default"
		}
		sc.scheduleARN = fmt.Sprintf("arn:%s:scheduler:%s:%s:schedule/%s/%s", Partition, Region, AccountID, group, name)
	}
	if sc.input, err = str("Input"); err != nil {
		return nil, err
	}
	if sc.input != "" && !json.Valid([]byte(sc.input)) {
		return nil, errors.New("Input is not valid JSON")
	}
	return sc, nil
}

// parseScheduleExpression reads rate(N minute|minutes|hour|hours|day|days) and
// cron(minutes hours day-of-month month day-of-week year); cron fields are read in loc.
func parseScheduleExpression(expr string, loc *time.Location) (cadence, error) {
	switch {
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		d, err := parseRate(expr[len("rate(") : len(expr)-1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", expr, err)
		}
		return every(d), nil
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		c, err := parseCron(expr[len("cron("):len(expr)-1], loc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", expr, err)
		}
		return c, nil
	case strings.HasPrefix(expr, "at("):
		return nil, fmt.Errorf("%s: one-time at() schedules are not supported locally; use rate() or cron()", expr)
	}
	return nil, fmt.Errorf("%q is neither rate(…) nor cron(…)", expr)
}

// parseRate reads "N unit" the way EventBridge does: N a positive whole number, the
// unit singular for 1 and plural otherwise.
func parseRate(s string) (time.Duration, error) {
	num, unit, ok := strings.Cut(s, " ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n <= 0 || strconv.Itoa(n) != num {
		return 0, errors.New("want rate(N unit) with N a positive whole number")
	}
	var per time.Duration
	switch strings.TrimSuffix(unit, "s") {
	case "minute":
		per = time.Minute
	case "hour":
		per = time.Hour
	case "day":
		per = 24 * time.Hour
	default:
		return 0, fmt.Errorf("unit %q is not minute(s), hour(s) or day(s)", unit)
	}
	if plural := strings.HasSuffix(unit, "s"); plural != (n > 1) {
		return 0, errors.New("the unit is singular for 1 and plural for more")
	}
	if n > int(time.Duration(1<<63-1)/per) {
		return 0, errors.New("the interval is too long")
	}
	return time.Duration(n) * per, nil
}

// cronSchedule is an EventBridge cron expression. Each field is the set of values it
// takes, indexed by value.
type cronSchedule struct {
	minute, hour, dom, month, dow, year []bool
	byWeekday                           bool // day-of-month is ?, so day-of-week decides
	loc                                 *time.Location
}

type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var cronFields = [6]cronField{
	{name: "minutes", min: 0, max: 59},
	{name: "hours", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: map[string]int{
		"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
		"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
	}},
	{name: "day-of-week", min: 1, max: 7, names: map[string]int{
		"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7,
	}},
	{name: "year", min: 1970, max: 2199},
}

// parseCron reads the six fields of an EventBridge cron expression: numbers, names of
// months and weekdays, *, ranges (a-b), lists (a,b) and increments (a/n, */n), with ?
// in exactly one of day-of-month and day-of-week. L, W and # are refused.
func parseCron(s string, loc *time.Location) (*cronSchedule, error) {
	fields := strings.Fields(s)
	if len(fields) != len(cronFields) {
		return nil, errors.New("want six fields: minutes hours day-of-month month day-of-week year")
	}
	var sets [6][]bool
	for i, f := range cronFields {
		if fields[i] == "?" {
			if i != 2 && i != 4 {
				return nil, fmt.Errorf("%s: ? is only for day-of-month or day-of-week", f.name)
			}
			continue
		}
		set, err := f.parse(fields[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		sets[i] = set
	}
	if (sets[2] == nil) == (sets[4] == nil) {
		return nil, errors.New("one of day-of-month and day-of-week must be ?, and only one")
	}
	return &cronSchedule{
		minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4], year: sets[5],
		byWeekday: sets[2] == nil,
		loc:       loc,
	}, nil
}

func (f cronField) parse(s string) ([]bool, error) {
	set := make([]bool, f.max+1)
	for _, part := range strings.Split(s, ",") {
		rng, stepText, hasStep := strings.Cut(part, "/")
		lo, hi := f.min, f.max
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return nil, err
			}
			switch {
			case isRange:
				if hi, err = f.value(b); err != nil {
					return nil, err
				}
				if hi < lo {
					return nil, fmt.Errorf("range %s runs backwards", rng)
				}
			case !hasStep:
				hi = lo
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("increment %q is not a positive whole number", stepText)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set[v] = true
		}
	}
	return set, nil
}

func (f cronField) value(s string) (int, error) {
	if v, ok := f.names[strings.ToUpper(s)]; ok {
		return v, nil
	}
	if strings.ContainsAny(s, "LW#") {
		return 0, fmt.Errorf("%q: L, W and # are not supported locally", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		return 0, fmt.Errorf("%q is not a value from %d to %d", s, f.min, f.max)
	}
	return n, nil
}

// maxCronSteps bounds the search for the next firing; each step skips at least a
// minute and at most a year.
const maxCronSteps = 1 << 16

func (c *cronSchedule) next(after time.Time) time.Time {
	t := after.In(c.loc).Truncate(time.Minute).Add(time.Minute)
	for range maxCronSteps {
		y, mo, d := t.Date()
		switch {
		case y >= len(c.year):
			return time.Time{}
		case !c.year[y]:
			t = time.Date(y+1, 1, 1, 0, 0, 0, 0, c.loc)
		case !c.month[mo]:
			t = time.Date(y, mo+1, 1, 0, 0, 0, 0, c.loc)
		case c.byWeekday && !c.dow[int(t.Weekday())+1], !c.byWeekday && !c.dom[d]:
			t = time.Date(y, mo, d+1, 0, 0, 0, 0, c.loc)
		case !c.hour[t.Hour()]:
			t = time.Date(y, mo, d, t.Hour()+1, 0, 0, 0, c.loc)
		case !c.minute[t.Minute()]:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

// scheduledEvent is the payload of one firing at at: the schedule's Input when the
// template gives one, else the event EventBridge sends for a scheduled rule.
func (sc *schedule) scheduledEvent(at time.Time) []byte {
	at = at.UTC().Truncate(time.Second)
	if sc.input != "" {
		if !sc.v2 {
			return []byte(sc.input)
		}
		// EventBridge Scheduler fills in its context attributes.
		return []byte(strings.NewReplacer(
			"<aws.scheduler.schedule-arn>", sc.scheduleARN,
			"<aws.scheduler.scheduled-time>", at.Format(time.RFC3339),
			"<aws.scheduler.execution-id>", newRequestID(),
			"<aws.scheduler.attempt-number>", "1",
		).Replace(sc.input))
	}
	b, _ := json.Marshal(events.CloudWatchEvent{
		Version:    "0",
		ID:         newRequestID(),
		DetailType: "Scheduled Event",
		Source:     "aws.events",
		AccountID:  AccountID,
		Time:       at,
		Region:     Region,
		Resources:  []string{sc.RuleARN},
		Detail:     json.RawMessage("{}"),
	})
	return b
}

// Schedules lists the enabled Schedule and ScheduleV2 events of the template's
// functions, ordered by function and event.
func (s *Stack) Schedules() []Schedule {
	out := make([]Schedule, len(s.plan.schedules))
	for i, sc := range s.plan.schedules {
		out[i] = sc.Schedule
	}
	return out
}

// FireSchedules fires every enabled schedule of the template once, one after the
// other, with the scheduled event's time set to at (to the second, in UTC). Each
// invocation takes the front door's Lambda Invoke path: it counts as lambda.Invoke and
// Options.Faults applies.
//
// It returns the first failure: an injected fault, a function error (wrapping the
// function's messages.InvokeResponse_Error), or a timeout; the remaining schedules
// still fire.
func (s *Stack) FireSchedules(ctx context.Context, at time.Time) error {
	_, err := s.fireSchedules(ctx, at)
	return err
}

// fireSchedules is FireSchedules that also returns the logical ids of the functions it
// invoked.
func (s *Stack) fireSchedules(ctx context.Context, at time.Time) ([]string, error) {
	// Close ends the firings as it ends every other invocation.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.baseCtx, cancel)()
	fired := []string{}
	var first error
	for _, sc := range s.plan.schedules {
		if len(fired) == 0 || fired[len(fired)-1] != sc.Function {
			fired = append(fired, sc.Function)
		}
		if err := s.fire(ctx, sc, at); err != nil && first == nil {
			first = err
		}
	}
	return fired, first
}

// fire invokes a schedule's function once with its payload for at, counted and
// subject to faults as a Lambda Invoke crossing the front door is.
func (s *Stack) fire(ctx context.Context, sc *schedule, at time.Time) error {
	f := s.functions[s.plan.resources.Functions[sc.Function]]
	if f == nil {
		return fmt.Errorf("schedule %s of %s: the function is not built", sc.Event, sc.Function)
	}
	s.log.Debug("schedule fired", "function", sc.Function, "event", sc.Event, "time", at.UTC().Truncate(time.Second))
	call := Call{Service: "lambda", Operation: "Invoke"}
	s.calls.add(call)
	if fault := s.fault(call); fault != nil {
		return fmt.Errorf("schedule %s of %s: lambda.Invoke failed with injected fault %d %s", sc.Event, sc.Function, fault.Status, fault.Code)
	}
	res := s.invoke(ctx, f, newRequestID(), sc.scheduledEvent(at))
	if res.Err != nil {
		return fmt.Errorf("schedule %s of %s: %w", sc.Event, sc.Function, *res.Err)
	}
	return nil
}

// startSchedules fires each schedule on its own timer until Close: every
// Options.ScheduleTick when that is positive, else as the template says. A firing
// that outlasts the interval delays the next one rather than overlapping it.
func (s *Stack) startSchedules() {
	tick := s.opt.ScheduleTick
	if tick < 0 {
		return
	}
	for _, sc := range s.plan.schedules {
		c := sc.cadence
		if tick > 0 {
			c = every(tick)
		}
		s.timers.Add(1)
		go s.runSchedule(sc, c)
	}
}

func (s *Stack) runSchedule(sc *schedule, c cadence) {
	defer s.timers.Done()
	ctx := s.baseCtx
	due := time.Now()
	for {
		next := c.next(due)
		if now := time.Now(); !next.IsZero() && !next.After(now) {
			// Behind after a long firing: skip what was missed.
			next = c.next(now)
		}
		if next.IsZero() {
			s.log.Debug("schedule has no further firing", "function", sc.Function, "event", sc.Event)
			return
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		due = next
		if err := s.fire(ctx, sc, next); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduled invocation failed", "function", sc.Function, "event", sc.Event, "err", err)
		}
	}
}

// serveFireSchedules answers POST /_local/schedules:fire[?at=RFC3339] from a loopback
// address: it fires every schedule once as FireSchedules does.
func (s *Stack) serveFireSchedules(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAPIMessage(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	// It has no authorizer, so only this machine may use it.
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || !net.ParseIP(host).IsLoopback() {
		writeAPIMessage(w, http.StatusForbidden, "Forbidden")
		return
	}
	if !s.ready.Load() {
		writeAPIMessage(w, http.StatusServiceUnavailable, "starting")
		return
	}
	at := time.Now()
	if v := r.URL.Query().Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			// An unescaped + of a UTC offset arrives as a space.
			t, err = time.Parse(time.RFC3339, strings.ReplaceAll(v, " ", "+"))
		}
		if err != nil {
			writeAPIMessage(w, http.StatusBadRequest, "at must be an RFC 3339 time, e.g. 2030-01-02T03:04:05Z")
			return
		}
		at = t
	}
	fired, err := s.fireSchedules(r.Context(), at)
	body := struct {
		Fired []string `json:"fired"`
		Error string   `json:"error,omitempty"`
	}{Fired: fired}
	status := http.StatusOK
	if err != nil {
		status, body.Error = http.StatusInternalServerError, err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// eventEnabled reads a function event's Enabled property, true when absent.
func eventEnabled(props map[string]any) (bool, error) {
	v, ok := props["Enabled"]
	if !ok {
		return true, nil
	}
	s, err := scalarString(v)
	if err != nil {
		return false, fmt.Errorf("Enabled: %w", err)
	}
	enabled, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("Enabled: %q is not a boolean", s)
	}
	return enabled, nil
}
