package api

import (
	"net/http"

	"turnover/internal/turnover"
)

// listPhones answers the domain's desk phone inventory: each phone with the extensions
// that have a line on it. A phone whose users were all reset with removeDeviceLines is
// still listed, with no lines.
func (s *Server) listPhones(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	phones, err := s.Users.ListPhones(r.Context(), r.PathValue("domain"))
	if err != nil {
		return err
	}
	type phoneJSON struct {
		MAC   string   `json:"mac"`
		Model string   `json:"model"`
		Label string   `json:"label"`
		Lines []string `json:"lines"`
	}
	body := struct {
		Phones []phoneJSON `json:"phones"`
	}{Phones: make([]phoneJSON, len(phones))}
	for i, p := range phones {
		lines := p.Lines
		if lines == nil {
			lines = []string{}
		}
		body.Phones[i] = phoneJSON{MAC: p.MAC, Model: p.Model, Label: p.Label, Lines: lines}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
