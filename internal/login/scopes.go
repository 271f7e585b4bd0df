package login

import (
	"context"
	"fmt"
)

// ScopeLine is one scope on the consent page: its id and what it lets the
// application do, in the page's language ("" when nobody described it).
type ScopeLine struct {
	Name, Description string
}

// describeScopes describes each scope: a built-in one (or any the theme's
// catalogue knows as "scope.<name>") in lang, a custom one with the
// description registered through the admin API. The store is asked only
// when a scope is not in the catalogue, in one query: the usual
// openid-profile-email consent costs nothing.
func (h *Handler) describeScopes(ctx context.Context, lang string, scopes []string) ([]ScopeLine, error) {
	out := make([]ScopeLine, len(scopes))
	var custom []string
	for i, s := range scopes {
		out[i].Name = s
		if h.locales.has(lang, "scope."+s) {
			out[i].Description = h.locales.text(lang, "scope."+s)
		} else {
			custom = append(custom, s)
		}
	}
	if len(custom) == 0 {
		return out, nil
	}
	desc, err := h.store.ScopeDescriptions(ctx, custom)
	if err != nil {
		return nil, fmt.Errorf("scope descriptions: %w", err)
	}
	for i := range out {
		if d, ok := desc[out[i].Name]; ok && out[i].Description == "" {
			out[i].Description = d
		}
	}
	return out, nil
}
