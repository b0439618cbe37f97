package api

import (
	"net/http"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"turnover/internal/reset"
	"turnover/internal/turnover"
)

// maxPreviewUsers is the most users one preview reads; larger resets are previewed in
// parts.
const maxPreviewUsers = 1000

// previewReadsAtOnce bounds the users a preview reads at the same time.
const previewReadsAtOnce = 16

type previewUser struct {
	Extension     string         `json:"extension"`
	Found         bool           `json:"found"`
	WillDelete    map[string]int `json:"willDelete"`
	AlwaysRemoved []string       `json:"alwaysRemoved"`
	Warnings      []string       `json:"warnings"`
}

// previewReset is the confirmation screen: for each user, what the selected options
// would delete, counted from the same plan the reset then carries out. It changes
// nothing.
func (s *Server) previewReset(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
	domain := r.PathValue("domain")
	req, err := readResetRequest(w, r)
	if err != nil {
		return err
	}
	if len(req.Users) > maxPreviewUsers {
		return turnover.Errorf(turnover.EUNPROCESSABLE, "A preview shows at most %d users; preview the reset in parts.", maxPreviewUsers)
	}
	busy, err := s.usersInRunningJobs(r, domain)
	if err != nil {
		return err
	}
	users := make([]previewUser, len(req.Users))
	g, ctx := errgroup.WithContext(r.Context())
	g.SetLimit(previewReadsAtOnce)
	for i, ext := range req.Users {
		g.Go(func() error {
			u := previewUser{Extension: ext, WillDelete: map[string]int{}, AlwaysRemoved: turnover.AlwaysRemoved, Warnings: []string{}}
			data, _, err := s.Users.LoadUserData(ctx, domain, ext)
			switch {
			case turnover.ErrorCode(err) == turnover.ENOTFOUND:
				u.AlwaysRemoved = []string{}
				u.Warnings = append(u.Warnings, "Extension "+ext+" does not exist in domain "+domain+"; a reset would record it as failed and reset the others.")
			case err != nil:
				return err
			default:
				u.Found = true
				u.WillDelete = reset.Plan(data, req.Options).Counts(req.Options)
				if o := data.User.Offboarding; o != nil {
					u.Warnings = append(u.Warnings, "Extension "+ext+" is in offboarding "+o.ID+", scheduled for "+o.At.UTC().Format(time.RFC3339)+".")
				}
			}
			if job, ok := busy[ext]; ok {
				u.Warnings = append(u.Warnings, "Extension "+ext+" is in reset job "+job+", which is still running.")
			}
			if own, ok := ownExtension(id, domain); ok && own == ext {
				u.Warnings = append(u.Warnings, "This is your own extension; you cannot reset it.")
			}
			if req.Options.Recycle && !slices.ContainsFunc(req.Recycle, func(row recycleRow) bool { return row.Extension == ext }) {
				u.Warnings = append(u.Warnings, "No recycle row for "+ext+": after the reset it waits for its new identity (recycle_pending).")
			}
			users[i] = u
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	totals := map[string]int{"users": len(users)}
	for _, u := range users {
		if u.Found {
			totals["found"]++
		}
		for k, n := range u.WillDelete {
			totals[k] += n
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Users  []previewUser  `json:"users"`
		Totals map[string]int `json:"totals"`
	}{users, totals})
	return nil
}

// usersInRunningJobs maps each user of the domain's running jobs to its job.
func (s *Server) usersInRunningJobs(r *http.Request, domain string) (map[string]string, error) {
	jobs, err := s.Jobs.RunningJobs(r.Context(), domain)
	if err != nil {
		return nil, err
	}
	busy := map[string]string{}
	for _, job := range jobs {
		manifest, err := s.Manifests.GetManifest(r.Context(), domain, job)
		if err != nil {
			return nil, err
		}
		for _, b := range manifest {
			for _, ext := range b.Users {
				busy[ext] = job
			}
		}
	}
	return busy, nil
}
