// Command offboard starts the scheduled offboardings that are due; a schedule rule
// invokes it every minute.
package main

import "turnover/internal/app"

func main() { app.Start(app.Offboard) }
