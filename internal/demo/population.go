package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"turnover/internal/dynamo"
	"turnover/internal/s3store"
	"turnover/internal/turnover"
)

// Profile says how much each user of a generated population owns.
type Profile struct {
	Messages, Greetings, Rules, Contacts, Devices int
}

var (
	// HeavyProfile is a long-serving user: 20 voicemail messages and 4 greetings with
	// audio, 5 answering rules, 50 custom contacts, 3 device lines (desk, soft and
	// mobile), a DID and a directory entry. Resetting it with every option writes 85
	// items besides the profile.
	HeavyProfile = Profile{Messages: 20, Greetings: 4, Rules: 5, Contacts: 50, Devices: 3}
	// LightProfile is a short-serving user: a little of everything.
	LightProfile = Profile{Messages: 2, Greetings: 1, Rules: 2, Contacts: 3, Devices: 2}
)

// Population returns n users of domain, extensions from first on, each owning what the
// profile says, a DID and a name in the directory.
func Population(domain string, first, n int, p Profile) []turnover.UserData {
	folders := []string{turnover.FolderNew, turnover.FolderSaved, turnover.FolderTrash}
	kinds := []string{turnover.GreetingStandard, turnover.GreetingTimeFrame, turnover.GreetingName}
	devices := []turnover.Device{
		{ID: "desk", Kind: turnover.DeviceDesk, Model: "Poly VVX 450"},
		{ID: "soft", Kind: turnover.DeviceSoftPhone, Model: "Desktop softphone"},
		{ID: "mobile", Kind: turnover.DeviceMobileApp, Model: "Mobile app"},
	}
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	out := make([]turnover.UserData, n)
	for i := range n {
		ext := fmt.Sprint(first + i)
		d := turnover.UserData{User: turnover.User{
			Domain: domain, Extension: ext, FirstName: "Pat", LastName: fmt.Sprintf("Member%06d", first+i),
			Email: fmt.Sprintf("member%d@%s.example", first+i, domain), Department: "Operations",
			Scope: turnover.ScopeBasicUser, Status: turnover.StatusActive,
		}}
		for j := range p.Messages {
			id := fmt.Sprintf("vm%02d", j)
			d.Voicemail = append(d.Voicemail, turnover.VoicemailMessage{
				ID: id, Folder: folders[j%len(folders)], From: "+15555550100", ReceivedAt: at.Add(-time.Duration(j) * time.Hour),
				Seconds: 20, AudioKey: s3store.AudioKey(domain, ext, "voicemail", id),
			})
		}
		for j := range p.Greetings {
			id := fmt.Sprintf("gr%d", j)
			d.Greetings = append(d.Greetings, turnover.Greeting{ID: id, Kind: kinds[j%len(kinds)], Label: id, AudioKey: s3store.AudioKey(domain, ext, "greetings", id)})
		}
		for j := range p.Rules {
			r := turnover.AnsweringRule{ID: fmt.Sprintf("rule%d", j), Name: "Rule", Action: "voicemail", TimeFrame: "after_hours"}
			if j == 0 {
				r = turnover.AnsweringRule{ID: "default", Name: "Default", Action: "ring_all_devices", Default: true}
			}
			d.Rules = append(d.Rules, r)
		}
		for j := range p.Contacts {
			d.Contacts = append(d.Contacts, turnover.Contact{ID: fmt.Sprintf("c%03d", j), FirstName: "Contact", LastName: fmt.Sprint(j), Phone: "+15555550199"})
		}
		d.Devices = append(d.Devices, devices[:min(p.Devices, len(devices))]...)
		d.Numbers = []string{fmt.Sprintf("+1555%07d", first+i)}
		out[i] = d
	}
	return out
}

// SeedUsers writes users, their audio (a short silence per message and greeting) and
// their directory entries, a few calls at a time.
func SeedUsers(ctx context.Context, awsCfg aws.Config, table, bucket string, users []turnover.UserData) error {
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), table)
	audio := s3store.New(s3.NewFromConfig(awsCfg), bucket)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	wav := silence(200 * time.Millisecond)
	for _, d := range users {
		for _, m := range d.Voicemail {
			g.Go(func() error { return audio.PutAudio(gctx, m.AudioKey, wav) })
		}
		for _, gr := range d.Greetings {
			g.Go(func() error { return audio.PutAudio(gctx, gr.AudioKey, wav) })
		}
		g.Go(func() error { return store.PutUserData(gctx, d) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("seed %d users: %w", len(users), err)
	}
	return nil
}
