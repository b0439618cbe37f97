package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"turnover/internal/backoff"
	"turnover/internal/turnover"
)

// A reset batch writes in four rounds whatever its size: the users' locks in one
// transaction (read alongside every user's Query), the users' plans in one transaction
// (alongside the audio deletes), every selected item of every user in BatchWriteItem
// calls of 25 packed across users, and the results with the job's counters in one
// transaction. Per user that is one Query and a share of the writes, close to the least
// the table allows.

// maxTransact is TransactWriteItems' limit of items per call.
const maxTransact = 100

// LockUsers locks users of a domain for a job, for at most ttl, in transactions of up to
// 100 users. A job that holds a lock already gets it again, and a lock whose time is up
// is taken over. It returns the users it could not lock: those another job holds and
// those that do not exist.
func (s *Store) LockUsers(ctx context.Context, domain, jobID string, exts []string, ttl time.Duration) (map[string]bool, error) {
	now := s.now()
	notLocked := map[string]bool{}
	for start := 0; start < len(exts); start += maxTransact {
		chunk := exts[start:min(start+maxTransact, len(exts))]
		for len(chunk) > 0 {
			items := make([]types.TransactWriteItem, len(chunk))
			for i, ext := range chunk {
				items[i] = types.TransactWriteItem{Update: &types.Update{
					TableName:           &s.table,
					Key:                 key(userPK(domain, ext), skProfile),
					UpdateExpression:    aws.String("SET lockJob = :job, lockUntil = :until"),
					ConditionExpression: aws.String("attribute_exists(pk) AND (attribute_not_exists(lockJob) OR lockJob = :job OR lockUntil < :now)"),
					ExpressionAttributeValues: map[string]types.AttributeValue{
						":job": str(jobID), ":until": unixNum(now.Add(ttl)), ":now": unixNum(now),
					},
				}}
			}
			failed, err := s.transact(ctx, items)
			if err != nil {
				return nil, fmt.Errorf("lock users of job %s: %w", jobID, err)
			}
			if len(failed) == 0 {
				break
			}
			left := chunk[:0:0]
			for i, ext := range chunk {
				if failed[i] {
					notLocked[ext] = true
				} else {
					left = append(left, ext)
				}
			}
			chunk = left
		}
	}
	return notLocked, nil
}

// SavePlans saves on each user's profile what a job's reset of them counts (the plan's
// counts, under planJob and planCounts), in transactions of up to 100 users. The reset
// saves them before it deletes anything, so a retry of the job that finds part of a user
// gone reads the first try's counts back with LoadUserData. A save holds only while the
// plan's job holds the user's lock; if a lock has lapsed nothing of that transaction is
// saved and SavePlans returns an error the reset engine classes as transient (see
// retryableError), so the batch is tried again and locks its users anew. Saving again
// what is saved is harmless; CommitResets removes the plan.
func (s *Store) SavePlans(ctx context.Context, domain string, plans []turnover.SavedPlan) error {
	for start := 0; start < len(plans); start += maxTransact {
		chunk := plans[start:min(start+maxTransact, len(plans))]
		items := make([]types.TransactWriteItem, len(chunk))
		for i, p := range chunk {
			counts := p.Counts
			if counts == nil {
				counts = map[string]int{}
			}
			av, err := attributevalue.Marshal(counts)
			if err != nil {
				return fmt.Errorf("encode plan of %s: %w", p.Extension, err)
			}
			items[i] = types.TransactWriteItem{Update: &types.Update{
				TableName:                 &s.table,
				Key:                       key(userPK(domain, p.Extension), skProfile),
				UpdateExpression:          aws.String("SET planJob = :job, planCounts = :counts"),
				ConditionExpression:       aws.String("lockJob = :job"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":job": str(p.JobID), ":counts": av},
			}}
		}
		failed, err := s.transact(ctx, items)
		if err != nil {
			return fmt.Errorf("save plans of %d users: %w", len(chunk), err)
		}
		if len(failed) > 0 {
			return &retryableError{fmt.Errorf("save plans of %d users: the job no longer holds the lock of %d", len(chunk), len(failed))}
		}
	}
	return nil
}

func unixNum(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.Unix(), 10)}
}

// ApplyResets deletes what the plans select and frees the users' numbers, in
// BatchWriteItem calls of 25 packed across all the plans: the selected items, each
// user's setup link (the old person's link dies) and the directory entry they leave by.
// The default answering rule is put back. Deleting what is gone already is no error, so
// a retried reset can run it again; the profiles change only in SavePlans and
// CommitResets. Items still unprocessed after the retries make an error the reset engine
// classes as transient.
func (s *Store) ApplyResets(ctx context.Context, plans []turnover.ResetPlan) error {
	var reqs []types.WriteRequest
	for _, p := range plans {
		r, err := planWrites(p)
		if err != nil {
			return err
		}
		reqs = append(reqs, r...)
	}
	if err := s.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("reset items of %d users: %w", len(plans), err)
	}
	return nil
}

func planWrites(plan turnover.ResetPlan) ([]types.WriteRequest, error) {
	pk := userPK(plan.Domain, plan.Extension)
	reqs := []types.WriteRequest{deleteRequest(pk, skSetup)}
	for _, v := range plan.Voicemail {
		reqs = append(reqs, deleteRequest(pk, voicemailSK(v.Folder, v.ID)))
	}
	for _, g := range plan.Greetings {
		reqs = append(reqs, deleteRequest(pk, prefixGR+g.ID))
	}
	for _, r := range plan.Rules {
		if plan.DefaultRule != nil && r.ID == plan.DefaultRule.ID {
			continue // the default rule's put below replaces it; one call may not name a key twice
		}
		reqs = append(reqs, deleteRequest(pk, prefixAR+r.ID))
	}
	for _, c := range plan.Contacts {
		reqs = append(reqs, deleteRequest(pk, prefixCT+c.ID))
	}
	for _, d := range append(plan.Devices, plan.Lines...) {
		reqs = append(reqs, deleteRequest(pk, prefixDEV+d.ID))
	}
	var puts []any
	for _, n := range plan.Numbers {
		reqs = append(reqs, deleteRequest(pk, prefixDID+n))
		puts = append(puts, numberItem{PK: numPK(plan.Domain), SK: n, Number: n})
	}
	if r := plan.DefaultRule; r != nil {
		puts = append(puts, ruleItem{PK: pk, SK: prefixAR + r.ID, ID: r.ID, Name: r.Name, Action: r.Action, Default: true})
	}
	for _, it := range puts {
		put, err := putRequest(it)
		if err != nil {
			return nil, fmt.Errorf("encode item of %s: %w", plan.Extension, err)
		}
		reqs = append(reqs, put)
	}
	if old, renewed := directoryMove(plan); old != nil && (renewed == nil || renewed.SK != old.SK) {
		reqs = append(reqs, deleteRequest(old.PK, old.SK))
	}
	return reqs, nil
}

// directoryMove is the entry a reset user leaves the directory by and the one a
// recycled user joins it by, each nil when there is none.
func directoryMove(plan turnover.ResetPlan) (old, renewed *directoryItem) {
	if e := plan.Directory; e != nil {
		it := newDirectoryItem(plan.Domain, *e)
		old = &it
	}
	if r := plan.Recycle; r != nil {
		it := newDirectoryItem(plan.Domain, turnover.DirectoryEntry{Extension: plan.Extension, FirstName: r.FirstName, LastName: r.LastName})
		renewed = &it
	}
	return old, renewed
}

// CommitResets ends users' parts of a job in transactions of up to 100 items: each reset
// user's profile is cleared (or given its recycled identity), unlocked and rid of any
// saved plan (SavePlans), a recycled user joins the directory under the new name, each
// result is written once and the job's done and failed counters grow by the results each
// transaction writes. A profile that no longer says what the reset read makes that user
// stale; a result the job holds already makes the user already recorded; neither holds up
// the others. A stale user keeps the lock and the saved plan, so the reset can read them
// again.
func (s *Store) CommitResets(ctx context.Context, domain, jobID string, commits []turnover.ResetCommit) (turnover.CommitOutcome, error) {
	var out turnover.CommitOutcome
	pending := make([]turnover.ResetCommit, 0, len(commits))
	for _, c := range commits {
		if c.Result != nil || c.Locked {
			pending = append(pending, c)
		}
	}
	for len(pending) > 0 {
		group, items, owners, kinds, err := s.commitGroup(domain, jobID, pending)
		if err != nil {
			return out, err
		}
		failed, err := s.transact(ctx, items)
		if err != nil {
			return out, fmt.Errorf("commit results of job %s: %w", jobID, err)
		}
		if len(failed) == 0 {
			for _, c := range group {
				if c.Result != nil {
					out.Recorded = append(out.Recorded, c.Extension)
				}
			}
			pending = pending[len(group):]
			continue
		}
		// Take out what cannot commit and try the group again without it.
		for i := range items {
			if !failed[i] {
				continue
			}
			if kinds[i] == itemOther {
				// The job's counters (the job item is gone) or a directory entry: no user
				// can be taken out for it, so trying again would fail again.
				return out, fmt.Errorf("commit results of job %s: the job item or a directory entry refused the write", jobID)
			}
			c := &group[owners[i]]
			switch kinds[i] {
			case itemResult:
				out.Already = append(out.Already, c.Extension)
				c.Result, c.Plan = nil, nil // a retry only unlocks
			case itemProfile:
				out.Stale = append(out.Stale, c.Extension)
				c.Result, c.Plan, c.Locked = nil, nil, false
			case itemUnlock:
				c.Locked = false // the lock was lost already
			}
		}
		rest := pending[len(group):]
		pending = pending[:0:0]
		for _, c := range group {
			if c.Result != nil || c.Locked {
				pending = append(pending, c)
			}
		}
		pending = append(pending, rest...)
	}
	return out, nil
}

type itemKind int

const (
	itemProfile itemKind = iota
	itemResult
	itemUnlock
	itemOther
)

// commitGroup builds the transaction for as many of the commits, from the first, as fit
// in 100 items with the counter update. owners and kinds say, per item, whose it is and
// what it is.
func (s *Store) commitGroup(domain, jobID string, commits []turnover.ResetCommit) (group []turnover.ResetCommit, items []types.TransactWriteItem, owners []int, kinds []itemKind, err error) {
	done, failed := 0, 0
	for i, c := range commits {
		var its []types.TransactWriteItem
		var ks []itemKind
		if c.Plan != nil {
			its = append(its, types.TransactWriteItem{Update: profileCommit(s.table, jobID, c)})
			ks = append(ks, itemProfile)
			if _, renewed := directoryMove(*c.Plan); renewed != nil {
				av, err := attributevalue.MarshalMap(renewed)
				if err != nil {
					return nil, nil, nil, nil, fmt.Errorf("encode directory entry: %w", err)
				}
				its = append(its, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: av}})
				ks = append(ks, itemOther)
			}
		} else if c.Locked {
			its = append(its, types.TransactWriteItem{Update: &types.Update{
				TableName:                 &s.table,
				Key:                       key(userPK(domain, c.Extension), skProfile),
				UpdateExpression:          aws.String("REMOVE lockJob, lockUntil, planJob, planCounts"),
				ConditionExpression:       aws.String("lockJob = :job"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":job": str(jobID)},
			}})
			ks = append(ks, itemUnlock)
		}
		if r := c.Result; r != nil {
			av, err := attributevalue.MarshalMap(resultItem{
				PK: jobPK(domain, jobID), SK: resultSK(r.Extension), Extension: r.Extension,
				Outcome: string(r.Outcome), Deleted: r.Deleted, Error: r.Error, At: r.At,
			})
			if err != nil {
				return nil, nil, nil, nil, fmt.Errorf("encode result of %s: %w", r.Extension, err)
			}
			its = append(its, types.TransactWriteItem{Put: &types.Put{
				TableName: &s.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)"),
			}})
			ks = append(ks, itemResult)
		}
		if len(items)+len(its)+1 > maxTransact && len(group) > 0 {
			break
		}
		group = append(group, c)
		items = append(items, its...)
		kinds = append(kinds, ks...)
		for range its {
			owners = append(owners, i)
		}
		switch {
		case c.Result == nil:
		case c.Result.Outcome == turnover.OutcomeFailed:
			failed++
		default:
			done++
		}
	}
	if done+failed > 0 {
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName:                 &s.table,
			Key:                       key(jobPK(domain, jobID), skJob),
			UpdateExpression:          aws.String("ADD done :done, failed :failed"),
			ConditionExpression:       aws.String("attribute_exists(pk)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":done": num(done), ":failed": num(failed)},
		}})
		kinds = append(kinds, itemOther)
		owners = append(owners, -1)
	}
	return group, items, owners, kinds, nil
}

// profileCommit clears a reset user's identity and secrets, or gives the extension its
// recycled identity, records the job, releases its lock and removes the saved plan (this
// job's or one another job left behind), provided the profile still has the name and last
// reset the job read and the job still holds the lock.
func profileCommit(table, jobID string, c turnover.ResetCommit) *types.Update {
	plan := *c.Plan
	u := profileUpdate(table, userPK(plan.Domain, plan.Extension), plan.Extension, jobID, plan.Recycle)
	*u.UpdateExpression += ", lockJob, lockUntil, planJob, planCounts"
	cond := []string{"attribute_exists(pk)", "lockJob = :lockJob"}
	u.ExpressionAttributeValues[":lockJob"] = str(jobID)
	var first, last string
	if e := plan.Directory; e != nil {
		first, last = e.FirstName, e.LastName
	}
	for _, a := range []struct{ name, value, ref string }{
		{"firstName", first, ":readFirst"}, {"lastName", last, ":readLast"}, {"resetJob", c.ReadResetJob, ":readJob"},
	} {
		if a.value == "" {
			cond = append(cond, "attribute_not_exists("+a.name+")")
			continue
		}
		cond = append(cond, a.name+" = "+a.ref)
		u.ExpressionAttributeValues[a.ref] = str(a.value)
	}
	u.ConditionExpression = aws.String(strings.Join(cond, " AND "))
	return u
}

// transact runs one transaction. It reports which items' conditions failed (the
// transaction then wrote nothing), and retries, with backoff, a transaction cancelled
// only by conflicts with other transactions or throttling.
func (s *Store) transact(ctx context.Context, items []types.TransactWriteItem) (map[int]bool, error) {
	for attempt := 0; ; attempt++ {
		_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		var tc *types.TransactionCanceledException
		if err == nil || !errors.As(err, &tc) {
			return nil, err
		}
		failed := map[int]bool{}
		retryable := true
		for i, r := range tc.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed":
				failed[i] = true
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
			case "", "None":
			default:
				retryable = false
			}
		}
		if len(failed) > 0 {
			return failed, nil
		}
		if !retryable || attempt >= maxAttempts {
			return nil, err
		}
		if err := backoff.Wait(ctx, attempt+1, 25*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// GetRecycleRowsOf returns the new identities a job gives the given extensions, keyed
// by extension; extensions without one are left out.
func (s *Store) GetRecycleRowsOf(ctx context.Context, domain, jobID string, exts []string) (map[string]turnover.NewIdentity, error) {
	keys := make([]map[string]types.AttributeValue, len(exts))
	for i, ext := range exts {
		keys[i] = key(jobPK(domain, jobID), prefixRecycle+ext)
	}
	items, err := batchGet[recycleItem](ctx, s, keys)
	if err != nil {
		return nil, fmt.Errorf("get new identities of job %s: %w", jobID, err)
	}
	rows := make(map[string]turnover.NewIdentity, len(items))
	for _, r := range items {
		rows[r.Extension] = r.identity()
	}
	return rows, nil
}
