// Command mailer sends queued welcome and recovery mail at the SES account's rate.
package main

import "turnover/internal/app"

func main() { app.Start(app.Mailer) }
