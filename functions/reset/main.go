// Command reset resets one batch of a job's users for the reset-users state machine.
package main

import "turnover/internal/app"

func main() { app.Start(app.Reset) }
