// Package turnover holds the types at the centre of turnover: users (extensions) of a
// hosted phone system, what a reset wipes, jobs and their results, and the small
// interfaces the logic needs from storage and AWS. Adapters live in their own packages,
// named after what they wrap.
package turnover

import (
	"strings"
	"time"
)

// Status is where a user's account stands.
type Status string

const (
	StatusActive           Status = "active"
	StatusPasswordRequired Status = "password_required"
	StatusSetupRequired    Status = "setup_required"
)

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusActive, StatusPasswordRequired, StatusSetupRequired:
		return true
	}
	return false
}

// Scope is a user's role on the phone system, as carried by the portal's tokens.
type Scope string

const (
	ScopeBasicUser            Scope = "basic_user"
	ScopeCallCenterAgent      Scope = "call_center_agent"
	ScopeCallCenterSupervisor Scope = "call_center_supervisor"
	ScopeOfficeManager        Scope = "office_manager"
	ScopeReseller             Scope = "reseller"
	ScopeSuperUser            Scope = "super_user"
)

// Valid reports whether s is one of the known scopes.
func (s Scope) Valid() bool {
	switch s {
	case ScopeBasicUser, ScopeCallCenterAgent, ScopeCallCenterSupervisor, ScopeOfficeManager, ScopeReseller, ScopeSuperUser:
		return true
	}
	return false
}

// User is one extension of a customer domain. A reset clears the person's identity and
// secrets; the extension itself stays for reuse.
type User struct {
	Domain     string
	Extension  string
	FirstName  string
	LastName   string
	Email      string
	Department string
	Scope      Scope
	Status     Status
	// PasswordHash and VoicemailPINHash are never shown; a reset removes them.
	PasswordHash     string
	VoicemailPINHash string
	// Offboarding is the user's pending offboarding, if any.
	Offboarding *PendingOffboarding
}

// PendingOffboarding names the scheduled offboarding a user is in.
type PendingOffboarding struct {
	ID string
	At time.Time
}

// Login is how the user signs in: EXT@DOMAIN.
func (u User) Login() string { return Login(u.Extension, u.Domain) }

// Login joins an extension and its domain the way the phone system does.
func Login(ext, domain string) string { return ext + "@" + domain }

// Voicemail folders.
const (
	FolderNew   = "new"
	FolderSaved = "saved"
	FolderTrash = "trash"
)

// VoicemailMessage is one message in a user's mailbox, with its audio in S3.
type VoicemailMessage struct {
	ID         string
	Folder     string
	From       string
	ReceivedAt time.Time
	Seconds    int
	AudioKey   string
}

// Greeting kinds. A time-frame greeting plays during one of the user's time frames; the
// recorded name is the user saying their own name.
const (
	GreetingStandard  = "standard"
	GreetingTimeFrame = "timeframe"
	GreetingName      = "name"
)

// Greeting is one recorded greeting, with its audio in S3.
type Greeting struct {
	ID       string
	Kind     string
	Label    string
	AudioKey string
}

// AnsweringRule decides what happens to the user's calls. The default rule rings the
// user's phones.
type AnsweringRule struct {
	ID        string
	Name      string
	TimeFrame string
	Action    string
	Default   bool
}

// Contact is one of the user's own contacts. Shared (domain) contacts live apart.
type Contact struct {
	ID        string
	FirstName string
	LastName  string
	Phone     string
	Email     string
}

// Device kinds. A desk phone is registered by MAC address and stays in the domain's
// inventory; soft phones and mobile-app phones exist only for their user.
const (
	DeviceDesk      = "desk"
	DeviceSoftPhone = "softphone"
	DeviceMobileApp = "mobile"
)

// Device is a phone line of the user's.
type Device struct {
	ID    string
	Kind  string
	MAC   string
	Model string
}

// Phone is a desk phone of the domain's inventory, registered by its MAC address. Users'
// lines on it are their own Device items with the phone's MAC; a reset takes a user's
// line off the phone, and the phone stays in the inventory, with no lines if none are left.
type Phone struct {
	MAC   string
	Model string
	// Label says where the phone is, such as "Front desk".
	Label string
	// Lines are the extensions with a line on the phone, in extension order.
	Lines []string
}

// PhoneNumber is a DID of the domain's inventory, routed to an extension or available.
type PhoneNumber struct {
	Number    string
	Extension string
}

// UserData is a user with everything they own: what the reset options act on.
type UserData struct {
	User      User
	Voicemail []VoicemailMessage
	Greetings []Greeting
	Rules     []AnsweringRule
	Contacts  []Contact
	Devices   []Device
	Numbers   []string
	// Saved is the plan a job saved on the user's profile before it deleted anything of
	// theirs, nil when none is saved (a job's commit clears its own).
	Saved *SavedPlan
}

// DirectoryEntry is one name in the dial-by-name directory.
type DirectoryEntry struct {
	Extension string
	FirstName string
	LastName  string
}

// KeypadDigits spells a name on a phone keypad (ABC=2 … WXYZ=9), dropping everything
// that is not a letter, so a caller who types 7-3-9 finds Reynolds.
func KeypadDigits(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if d, ok := keypad[r]; ok {
			b.WriteByte(d)
		}
	}
	return b.String()
}

var keypad = func() map[rune]byte {
	m := map[rune]byte{}
	for d, letters := range []string{2: "ABC", 3: "DEF", 4: "GHI", 5: "JKL", 6: "MNO", 7: "PQRS", 8: "TUV", 9: "WXYZ"} {
		for _, r := range letters {
			m[r] = byte('0' + d)
		}
	}
	return m
}()

// DirectoryDigits is the key a user is found by: last name, then first name.
func DirectoryDigits(firstName, lastName string) string {
	return KeypadDigits(lastName) + KeypadDigits(firstName)
}
