package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkey/latchkey/internal/store"
)

// ScopeStore keeps custom scopes' descriptions for the consent page.
type ScopeStore interface {
	// PutScope creates or replaces a description and reports whether it
	// was created.
	PutScope(ctx context.Context, sc *store.Scope) (bool, error)
	FindScope(ctx context.Context, name string) (*store.Scope, error)
	ListScopes(ctx context.Context) ([]*store.Scope, error)
	DeleteScope(ctx context.Context, name string) error
}

// builtinScopes are described, in every language, by the login pages'
// message catalogues (scope.<name>); an operator rewords them there
// (LATCHKEY_THEME_DIR/locales), not here.
var builtinScopes = []string{"openid", "profile", "email", "groups", "offline_access"}

// maxScopeDescription bounds a description: a line or two on a phone.
const maxScopeDescription = 300

// ScopeInfo is a scope as the admin API and CLI show it.
type ScopeInfo struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func scopeInfo(sc *store.Scope) *ScopeInfo {
	return &ScopeInfo{Name: sc.Name, Description: sc.Description, CreatedAt: sc.CreatedAt.UTC(), UpdatedAt: sc.UpdatedAt.UTC()}
}

// checkScopeName refuses what is not an RFC 6749 §3.3 scope-token, and the
// built-in scopes.
func checkScopeName(name string) error {
	if len(name) > 128 || !scopeToken.MatchString(name) {
		return &InputError{Description: "the scope name must be an RFC 6749 scope token (printable ASCII without spaces, quotes or backslashes) of at most 128 characters"}
	}
	if slices.Contains(builtinScopes, name) {
		return &InputError{Description: "built-in scope " + name + " is described by the login pages' translations; reword it in LATCHKEY_THEME_DIR/locales"}
	}
	return nil
}

// PutScope registers or replaces the description of a custom scope, and
// reports whether it was new.
func (s *Service) PutScope(ctx context.Context, name, description string) (*ScopeInfo, bool, error) {
	if err := checkScopeName(name); err != nil {
		return nil, false, err
	}
	description = strings.TrimSpace(description)
	switch {
	case description == "":
		return nil, false, &InputError{Description: "description is required"}
	case !printable(description):
		return nil, false, &InputError{Description: "description must be valid UTF-8 text without control characters"}
	case utf8.RuneCountInString(description) > maxScopeDescription:
		return nil, false, &InputError{Description: "description is longer than 300 characters"}
	}
	sc := &store.Scope{Name: name, Description: description}
	var created bool
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var before *ScopeInfo
		switch old, err := s.store.FindScope(ctx, name); {
		case err == nil:
			before = scopeInfo(old)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		var err error
		if created, err = s.store.PutScope(ctx, sc); err != nil {
			return err
		}
		return s.record(ctx, ActionScopePut, TargetScope, name, before, scopeInfo(sc))
	})
	if err != nil {
		return nil, false, err
	}
	return scopeInfo(sc), created, nil
}

// GetScope returns a custom scope's description, or store.ErrNotFound.
func (s *Service) GetScope(ctx context.Context, name string) (*ScopeInfo, error) {
	if err := checkScopeName(name); err != nil {
		return nil, err
	}
	sc, err := s.store.FindScope(ctx, name)
	if err != nil {
		return nil, err
	}
	return scopeInfo(sc), nil
}

// ListScopes returns every custom scope's description, by name.
func (s *Service) ListScopes(ctx context.Context) ([]*ScopeInfo, error) {
	scs, err := s.store.ListScopes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*ScopeInfo, 0, len(scs))
	for _, sc := range scs {
		out = append(out, scopeInfo(sc))
	}
	return out, nil
}

// DeleteScope forgets a custom scope's description; consent then shows
// its raw id. Clients registered with the scope keep it.
func (s *Service) DeleteScope(ctx context.Context, name string) error {
	if err := checkScopeName(name); err != nil {
		return err
	}
	return s.store.InTx(ctx, func(ctx context.Context) error {
		sc, err := s.store.FindScope(ctx, name)
		if err != nil {
			return err
		}
		if err := s.store.DeleteScope(ctx, name); err != nil {
			return err
		}
		return s.record(ctx, ActionScopeDelete, TargetScope, name, scopeInfo(sc), nil)
	})
}

type scopeRequest struct {
	Description string `json:"description"`
}

func (a *API) putScope(w http.ResponseWriter, r *http.Request) {
	var req scopeRequest
	if !decodeAs(w, r, &req, "invalid_request") {
		return
	}
	sc, created, err := a.svc.PutScope(r.Context(), r.PathValue("name"), req.Description)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "scope described", "scope", sc.Name)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, sc)
}

func (a *API) getScope(w http.ResponseWriter, r *http.Request) {
	sc, err := a.svc.GetScope(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sc)
}

func (a *API) listScopes(w http.ResponseWriter, r *http.Request) {
	scs, err := a.svc.ListScopes(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, scs)
}

func (a *API) deleteScope(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.svc.DeleteScope(r.Context(), name); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "scope description deleted", "scope", name)
	w.WriteHeader(http.StatusNoContent)
}
