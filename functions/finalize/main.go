// Command finalize closes a reset job once the state machine has run all its batches.
package main

import "turnover/internal/app"

func main() { app.Start(app.Finalize) }
