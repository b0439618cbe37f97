package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the API's OpenAPI 3.1 description, served at GET /v1/openapi.yaml. It
// documents every route of Handler, and the tests hold the two together.
//
//go:embed openapi.yaml
var OpenAPI []byte

// serveOpenAPI answers with the OpenAPI description. It needs no token: it describes
// the API and holds no data.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(OpenAPI)
}
