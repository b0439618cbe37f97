// Package demo seeds the demo domain niftywidgets, the customer of the product's source
// documents: nine users, each with data of every kind a reset touches, a number
// inventory with routed and available DIDs, a desk phone inventory (a desk phone for
// each user and a conference-room phone two users have lines on), shared contacts and
// the directory.
package demo

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"turnover/internal/dynamo"
	"turnover/internal/s3store"
	"turnover/internal/turnover"
)

// Domain is the demo domain's name.
const Domain = "niftywidgets"

// OfficeManager is the demo's office manager, the default caller of dev tokens.
const OfficeManager = "1003"

type person struct {
	ext, first, last, dept string
	scope                  turnover.Scope
	status                 turnover.Status
	did                    string
}

// people are the demo domain's users: extension, name, scope and status as the source
// document has them.
var people = []person{
	{"1000", "Inara", "Serra", "Sales", turnover.ScopeCallCenterSupervisor, turnover.StatusActive, "+15555550100"},
	{"1001", "Hoban", "Washburne", "Operations", turnover.ScopeBasicUser, turnover.StatusActive, ""},
	{"1002", "Kaylee", "Frye", "Engineering", turnover.ScopeBasicUser, turnover.StatusActive, "+15555550102"},
	{"1003", "Jayne", "Cobb", "Management", turnover.ScopeOfficeManager, turnover.StatusPasswordRequired, "+15555550103"},
	{"1004", "River", "Tam", "Support", turnover.ScopeCallCenterAgent, turnover.StatusPasswordRequired, ""},
	{"1005", "Simon", "Tam", "Medical", turnover.ScopeBasicUser, turnover.StatusPasswordRequired, ""},
	{"1006", "Zoe", "Washburne", "Operations", turnover.ScopeBasicUser, turnover.StatusSetupRequired, ""},
	{"1007", "Shepherd", "Book", "Support", turnover.ScopeBasicUser, turnover.StatusPasswordRequired, "+15555550107"},
	{"1009", "Malcom", "Reynolds", "Management", turnover.ScopeBasicUser, turnover.StatusPasswordRequired, "+15555550109"},
}

// AvailableNumbers are DIDs in the inventory that route to nobody.
var AvailableNumbers = []string{"+15555550190", "+15555550191", "+15555550192"}

// SharedContacts are the domain's contacts, which resets never touch.
var SharedContacts = []turnover.Contact{
	{ID: "shared-1", FirstName: "Persephone", LastName: "Shipyard", Phone: "+15555550200"},
	{ID: "shared-2", FirstName: "Badger", LastName: "Imports", Phone: "+15555550201"},
	{ID: "shared-3", FirstName: "Alliance", LastName: "Customs", Phone: "+15555550202"},
}

// ConferenceRoom is the desk phone two demo users share: Hoban (1001) and Zoe (1006)
// Washburne each have a line on it, as device "conf" of their own.
var ConferenceRoom = turnover.Phone{MAC: "00:04:f2:00:20:01", Model: "Poly Trio 8800", Label: "Operations conference room", Lines: []string{"1001", "1006"}}

// deskModel is the model of every user's own desk phone.
const deskModel = "Poly VVX 450"

// deskMAC is the MAC of the desk phone of the i-th demo user.
func deskMAC(i int) string { return fmt.Sprintf("00:04:f2:00:10:%02x", i) }

// Phones returns the demo domain's desk phone inventory as it is seeded, the way
// GET /phones lists it: in MAC order, each phone with the extensions that have a line on
// it. Every user has a desk phone of their own, labelled with their extension.
func Phones() []turnover.Phone {
	phones := make([]turnover.Phone, 0, len(people)+1)
	for i, p := range people {
		phones = append(phones, turnover.Phone{MAC: deskMAC(i), Model: deskModel, Label: "Desk " + p.ext, Lines: []string{p.ext}})
	}
	shared := ConferenceRoom
	shared.Lines = slices.Clone(shared.Lines)
	phones = append(phones, shared)
	slices.SortFunc(phones, func(a, b turnover.Phone) int { return strings.Compare(a.MAC, b.MAC) })
	return phones
}

// Users returns the demo users with everything they own. Audio keys point at objects
// that Seed writes.
func Users() []turnover.UserData { return UsersOf(Domain) }

// UsersOf returns the demo users as users of domain, so tests can seed copies of the
// demo domain side by side.
func UsersOf(domain string) []turnover.UserData {
	seedTime := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	out := make([]turnover.UserData, 0, len(people))
	for i, p := range people {
		u := turnover.User{
			Domain: domain, Extension: p.ext, FirstName: p.first, LastName: p.last,
			Email: fmt.Sprintf("%s.%s@%s.example", strings.ToLower(p.first), strings.ToLower(p.last), domain), Department: p.dept,
			Scope: p.scope, Status: p.status,
		}
		d := turnover.UserData{User: u}
		for j, folder := range []string{turnover.FolderNew, turnover.FolderNew, turnover.FolderSaved, turnover.FolderSaved, turnover.FolderTrash} {
			id := fmt.Sprintf("vm%d", j+1)
			d.Voicemail = append(d.Voicemail, turnover.VoicemailMessage{
				ID: id, Folder: folder, From: fmt.Sprintf("+1555555%04d", 3000+i*10+j),
				ReceivedAt: seedTime.Add(-time.Duration(i*24+j) * time.Hour), Seconds: 12 + j*7,
				AudioKey: s3store.AudioKey(domain, p.ext, "voicemail", id),
			})
		}
		for _, g := range []turnover.Greeting{
			{ID: "gr1", Kind: turnover.GreetingStandard, Label: "Standard"},
			{ID: "gr2", Kind: turnover.GreetingTimeFrame, Label: "After hours"},
			{ID: "name", Kind: turnover.GreetingName, Label: "Recorded name"},
		} {
			g.AudioKey = s3store.AudioKey(domain, p.ext, "greetings", g.ID)
			d.Greetings = append(d.Greetings, g)
		}
		d.Rules = []turnover.AnsweringRule{
			{ID: "default", Name: "Default", Action: "ring_all_devices", Default: true},
			{ID: "after-hours", Name: "After hours", TimeFrame: "after_hours", Action: "voicemail"},
			{ID: "lunch", Name: "Lunch", TimeFrame: "lunch", Action: "forward:1000"},
		}
		d.Contacts = []turnover.Contact{
			{ID: "c1", FirstName: "Saffron", LastName: "Contact" + p.ext, Phone: fmt.Sprintf("+1555555%04d", 4000+i)},
			{ID: "c2", FirstName: "Niska", LastName: "Contact" + p.ext, Phone: fmt.Sprintf("+1555555%04d", 4100+i)},
		}
		d.Devices = []turnover.Device{
			{ID: "desk", Kind: turnover.DeviceDesk, MAC: deskMAC(i), Model: deskModel},
			{ID: "soft", Kind: turnover.DeviceSoftPhone, Model: "Desktop softphone"},
			{ID: "mobile", Kind: turnover.DeviceMobileApp, Model: "Mobile app"},
		}
		if slices.Contains(ConferenceRoom.Lines, p.ext) {
			d.Devices = append(d.Devices, turnover.Device{ID: "conf", Kind: turnover.DeviceDesk, MAC: ConferenceRoom.MAC, Model: ConferenceRoom.Model})
		}
		if p.did != "" {
			d.Numbers = []string{p.did}
		}
		out = append(out, d)
	}
	return out
}

// Seed writes the demo domain into the table and bucket. Seeding again puts the demo
// back as it was, under the same keys.
func Seed(ctx context.Context, awsCfg aws.Config, table, bucket string) error {
	return SeedDomain(ctx, awsCfg, table, bucket, Domain)
}

// SeedDomain writes a copy of the demo domain under another name.
func SeedDomain(ctx context.Context, awsCfg aws.Config, table, bucket, domain string) error {
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), table)
	users := UsersOf(domain)
	for i := range users {
		if err := withSecrets(&users[i].User); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return SeedUsers(gctx, awsCfg, table, bucket, users) })
	g.Go(func() error { return store.PutAvailableNumbers(gctx, domain, AvailableNumbers) })
	g.Go(func() error { return store.PutSharedContacts(gctx, domain, SharedContacts) })
	g.Go(func() error { return store.PutPhones(gctx, domain, Phones()) })
	if err := g.Wait(); err != nil {
		return fmt.Errorf("seed %s: %w", domain, err)
	}
	return nil
}

// withSecrets gives users who have set up their account a hashed password and PIN;
// users made by a reset have neither. The hashes are of random values nobody knows.
func withSecrets(u *turnover.User) error {
	pin, err := bcrypt.GenerateFromPassword([]byte("pin-"+u.Extension+"-"+time.Now().String()), bcrypt.MinCost)
	if err != nil {
		return err
	}
	u.VoicemailPINHash = string(pin)
	if u.Status == turnover.StatusActive {
		pw, err := bcrypt.GenerateFromPassword([]byte("pw-"+u.Extension+"-"+time.Now().String()), bcrypt.MinCost)
		if err != nil {
			return err
		}
		u.PasswordHash = string(pw)
	}
	if u.Status == turnover.StatusSetupRequired {
		u.VoicemailPINHash = ""
	}
	return nil
}

// silence is a mono 8 kHz 16-bit PCM WAV of the given length.
func silence(d time.Duration) []byte {
	samples := int(d.Seconds() * 8000)
	data := samples * 2
	b := make([]byte, 44+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	return b
}
