package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
)

const (
	// jwksTTL is how long a client's fetched key set is used as is.
	jwksTTL = 5 * time.Minute
	// jwksMinRefetch spaces fetches of one jwks_uri: an assertion naming an
	// unknown key may ask for a refetch (the client rotated), but a flood
	// of them must not turn Latchkey into a crawler of the client's host.
	jwksMinRefetch = time.Minute
	// jwksMaxBytes bounds a fetched key set.
	jwksMaxBytes = 64 << 10
	// jwksTimeout bounds one fetch, so a slow host cannot hold token
	// requests for long.
	jwksTimeout = 5 * time.Second
)

// jwksFetcher fetches and caches the key sets of clients registered with a
// jwks_uri (RFC 7591 §2). fosite's own fetcher retries for up to minutes,
// reads bodies of any size and refetches on every request that asks.
type jwksFetcher struct {
	client *http.Client
	now    func() time.Time

	mu   sync.Mutex
	sets map[string]fetchedJWKS
}

type fetchedJWKS struct {
	set *josev3.JSONWebKeySet // the last good set, nil if none yet
	err error                 // the last fetch's failure
	at  time.Time             // when the last fetch was tried
	// done is closed when the first fetch, which others wait for, ends.
	done chan struct{}
}

// jwksHTTPClient fetches key sets. It follows no redirects: the admin
// registered an https URL, and a redirect could lead anywhere, plain http
// or an internal address included.
func jwksHTTPClient() *http.Client {
	return &http.Client{
		Timeout:       jwksTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func newJWKSFetcher(client *http.Client, now func() time.Time) *jwksFetcher {
	return &jwksFetcher{client: client, now: now, sets: map[string]fetchedJWKS{}}
}

// resolve returns uri's key set: the cached one while it is fresh, unless
// refresh asks for a new one and the last fetch is older than
// jwksMinRefetch. A failed fetch keeps serving the last good set. Requests
// that arrive while the first fetch of a set runs wait for it.
func (f *jwksFetcher) resolve(ctx context.Context, uri string, refresh bool) (*josev3.JSONWebKeySet, error) {
	f.mu.Lock()
	e, ok := f.sets[uri]
	if ok && e.done != nil {
		done := e.done
		f.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		f.mu.Lock()
		e = f.sets[uri]
		f.mu.Unlock()
		return e.cached()
	}
	now := f.now()
	age := now.Sub(e.at)
	if ok && (age < jwksMinRefetch || (age < jwksTTL && !refresh)) {
		f.mu.Unlock()
		return e.cached()
	}
	// Claim this fetch. Others wait for it only when there is no set yet.
	e.at = now
	done := make(chan struct{})
	if e.set == nil {
		e.done = done
	}
	f.sets[uri] = e
	f.mu.Unlock()

	set, err := f.fetch(ctx, uri)
	f.mu.Lock()
	defer f.mu.Unlock()
	e = f.sets[uri]
	e.done = nil
	close(done)
	if err != nil {
		e.err = err
	} else {
		e.set, e.err = set, nil
	}
	f.sets[uri] = e
	return e.cached()
}

func (e fetchedJWKS) cached() (*josev3.JSONWebKeySet, error) {
	if e.set != nil {
		return e.set, nil
	}
	if e.err != nil {
		return nil, e.err
	}
	return nil, fmt.Errorf("jwks not fetched yet")
}

func (f *jwksFetcher) fetch(ctx context.Context, uri string) (*josev3.JSONWebKeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, fmt.Errorf("jwks larger than %d bytes", jwksMaxBytes)
	}
	var set josev3.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	return &set, nil
}
