// Package reset is the reset engine: it works out what one user's reset changes (the
// plan), carries it out for each user of a job's batch, and closes the job.
package reset

import "turnover/internal/turnover"

// DefaultRule is the answering rule put back after a user's rules are deleted: ring the
// user's phones.
var DefaultRule = turnover.AnsweringRule{ID: "default", Name: "Default", Action: "ring_all_devices", Default: true}

// Plan works out what resetting d with opts changes. The always-applied part is in every
// plan: soft phones go and the user leaves the directory (the profile itself is cleared
// when the plan is applied). Everything else follows the options, as the product's
// documents define them.
func Plan(d turnover.UserData, opts turnover.ResetOptions) turnover.ResetPlan {
	u := d.User
	p := turnover.ResetPlan{Domain: u.Domain, Extension: u.Extension}
	if u.FirstName != "" || u.LastName != "" {
		p.Directory = &turnover.DirectoryEntry{Extension: u.Extension, FirstName: u.FirstName, LastName: u.LastName}
	}
	for _, dev := range d.Devices {
		switch {
		case dev.Kind == turnover.DeviceSoftPhone:
			p.Devices = append(p.Devices, dev)
		case dev.Kind == turnover.DeviceMobileApp && opts.RemoveDeviceLines:
			p.Devices = append(p.Devices, dev)
		case dev.Kind == turnover.DeviceDesk && opts.RemoveDeviceLines:
			p.Lines = append(p.Lines, dev)
		}
	}
	if opts.DeleteVoicemailMessages {
		p.Voicemail = d.Voicemail
		for _, m := range d.Voicemail {
			if m.AudioKey != "" {
				p.AudioKeys = append(p.AudioKeys, m.AudioKey)
			}
		}
	}
	if opts.DeleteVoicemailGreetings {
		p.Greetings = d.Greetings
		for _, g := range d.Greetings {
			if g.AudioKey != "" {
				p.AudioKeys = append(p.AudioKeys, g.AudioKey)
			}
		}
	}
	if opts.DeleteAnsweringRules {
		p.Rules = d.Rules
		rule := DefaultRule
		p.DefaultRule = &rule
	}
	if opts.DeleteCustomContacts {
		p.Contacts = d.Contacts
	}
	if opts.UnassignPhoneNumbers {
		p.Numbers = d.Numbers
	}
	return p
}
