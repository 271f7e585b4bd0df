package admin

import (
	"context"
	"net/http"
	"time"
)

// FactorInfo is one second factor as the admin API shows it: never its
// secret.
type FactorInfo struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// Factors is GET /admin/users/{id}/factors.
type Factors struct {
	Factors []FactorInfo `json:"factors"`
	// RecoveryCodes is how many unused recovery codes the person has.
	RecoveryCodes int `json:"recovery_codes"`
}

// ListFactors returns a person's second factors. store.ErrNotFound if
// there is no such user.
func (s *Service) ListFactors(ctx context.Context, userID string) (*Factors, error) {
	if _, err := s.store.FindUser(ctx, userID); err != nil {
		return nil, err
	}
	fs, err := s.store.ListFactors(ctx, userID)
	if err != nil {
		return nil, err
	}
	n, err := s.store.CountRecoveryCodes(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := &Factors{Factors: make([]FactorInfo, len(fs)), RecoveryCodes: n}
	for i, f := range fs {
		out.Factors[i] = FactorInfo{ID: f.ID, Kind: f.Kind, CreatedAt: f.CreatedAt, LastUsedAt: f.LastUsedAt}
	}
	return out, nil
}

// ResetFactors removes one of a person's factors (factorID), or all of
// them with their recovery codes (factorID empty): the way back for
// someone who lost their authenticator and their codes. Their next
// sign-in is by password alone, so an operator resets only after checking
// who asks. store.ErrNotFound for an unknown user or factor.
func (s *Service) ResetFactors(ctx context.Context, userID, factorID string) error {
	return s.store.InTx(ctx, func(ctx context.Context) error {
		before, err := s.ListFactors(ctx, userID)
		if err != nil {
			return err
		}
		if err := s.store.DeleteFactors(ctx, userID, factorID); err != nil {
			return err
		}
		after, err := s.ListFactors(ctx, userID)
		if err != nil {
			return err
		}
		return s.record(ctx, ActionUserResetFactors, TargetUser, userID, before, after)
	})
}

func (a *API) listFactors(w http.ResponseWriter, r *http.Request) {
	fs, err := a.svc.ListFactors(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, fs)
}

func (a *API) resetFactors(w http.ResponseWriter, r *http.Request) {
	id, factor := r.PathValue("id"), r.PathValue("factor")
	if err := a.svc.ResetFactors(r.Context(), id, factor); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "second factors reset", "user_id", id, "factor_id", factor)
	w.WriteHeader(http.StatusNoContent)
}
