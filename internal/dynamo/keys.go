// Package dynamo keeps turnover's data in one DynamoDB table.
//
// Single-table layout. Everything a user owns lives in that user's item collection, so
// one paginated Query finds it all:
//
//	pk USER#{domain}#{ext}   sk PROFILE            the user (gsi1: USERS#{domain} / {ext}), with the
//	                                               lock of the job resetting them (lockJob, lockUntil)
//	                                               and the counts that job saved before deleting
//	                                               anything (planJob, planCounts)
//	                         sk VM#{folder}#{id}   voicemail message
//	                         sk GR#{id}            greeting (incl. time-frame and recorded name)
//	                         sk AR#{id}            answering rule
//	                         sk CT#{id}            custom contact
//	                         sk DEV#{id}           device line; a desk phone's line carries the
//	                                               phone's MAC (gsi1: LINES#{domain} / {mac}#{ext}#{id}),
//	                                               so deleting the line takes it off the phone
//	                         sk DID#{number}       DID routed to the user
//
// Domain-level things have their own key spaces:
//
//	pk DIR#{domain}          sk {digits}#{ext}     dial-by-name directory, by digit prefix
//	pk NUM#{domain}          sk {number}           phone number inventory
//	pk PHONE#{domain}        sk {mac}              desk phone inventory (model, label); a reset
//	                                               never touches it, only the lines on the phones
//	pk SHARED#{domain}       sk CT#{id}            shared (domain) contacts
//	pk JOB#{domain}#{jobId}  sk JOB                a reset job and its counters
//	                         sk RESULT#{ext}       one user's result in that job
//	                         sk RECYCLE#{ext}      the new identity the job gives an extension
//	                         (gsi1: JOBS#{domain} / {createdAt}#{jobId})
//
// Every key carries the domain, so nothing one tenant asks for can reach another's items.
package dynamo

const (
	skProfile     = "PROFILE"
	skJob         = "JOB"
	prefixVM      = "VM#"
	prefixGR      = "GR#"
	prefixAR      = "AR#"
	prefixCT      = "CT#"
	prefixDEV     = "DEV#"
	prefixDID     = "DID#"
	prefixRes     = "RESULT#"
	prefixRecycle = "RECYCLE#"
	indexGSI1     = "gsi1"
)

func userPK(domain, ext string) string     { return "USER#" + domain + "#" + ext }
func usersGSIPK(domain string) string      { return "USERS#" + domain }
func jobsGSIPK(domain string) string       { return "JOBS#" + domain }
func dirPK(domain string) string           { return "DIR#" + domain }
func dirSK(digits, ext string) string      { return digits + "#" + ext }
func numPK(domain string) string           { return "NUM#" + domain }
func phonePK(domain string) string         { return "PHONE#" + domain }
func linesGSIPK(domain string) string      { return "LINES#" + domain }
func lineGSISK(mac, ext, id string) string { return mac + "#" + ext + "#" + id }
func sharedPK(domain string) string        { return "SHARED#" + domain }
func jobPK(domain, jobID string) string    { return "JOB#" + domain + "#" + jobID }
func resultSK(ext string) string           { return prefixRes + ext }
func voicemailSK(folder, id string) string { return prefixVM + folder + "#" + id }
