// Command api serves the portal's HTTP API behind API Gateway's JWT authorizer.
package main

import "turnover/internal/app"

func main() { app.Start(app.API) }
