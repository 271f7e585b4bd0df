// Package backchannel delivers OpenID Connect Back-Channel Logout 1.0
// logout tokens from the durable outbox (store.LogoutDelivery): the
// transaction that ends a login session writes one row per client owed a
// token; a Deliverer on any instance claims due rows under a lease, signs
// each token at send time, POSTs it to the client's backchannel_logout_uri,
// deletes the row on 2xx and otherwise tries again later with exponential
// backoff, until it gives up.
//
// The request that ended the session sends its own tokens at once
// (DeliverSession) and waits for them a bounded time; whatever is not done
// then goes on in the background, and every instance's Run picks up rows
// whose sender failed or crashed. A token may reach a relying party twice
// after a crash (a different jti): logout is idempotent for it.
//
// The backchannel_logout_uri is a server of the relying party, which the
// operator registered (admin API; internal/admin validates it): this is not
// a fetch of an address a browser chose.
package backchannel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// EventLogout is the events member of a logout token (Back-Channel Logout
// 1.0 §2.4).
const EventLogout = "http://schemas.openid.net/event/backchannel-logout"

// Store is what delivery needs of persistence; *store.Store satisfies it
// (asserted in internal/server).
type Store interface {
	ClaimLogoutDeliveries(ctx context.Context, c store.LogoutClaim) ([]store.LogoutDelivery, error)
	DeleteLogoutDelivery(ctx context.Context, id string) error
	RetryLogoutDelivery(ctx context.Context, id, claim string, next time.Time, lastErr string, giveUp bool) error
	FindClient(ctx context.Context, id string) (*store.Client, error)
}

// Signer is the signing keys (*keys.Manager).
type Signer interface {
	// CurrentFor is the key that signs now with alg.
	CurrentFor(alg jose.SignatureAlgorithm) (*keys.Key, error)
	// Current is the key that signs now with the configured algorithm.
	Current() (*keys.Key, error)
}

// Options tune a Deliverer; the zero value of each is its default.
type Options struct {
	// Issuer is the iss of logout tokens.
	Issuer string
	// Timeout bounds one POST, connection included (default 5s). The
	// request that ended a session waits less than this (see
	// DeliverSession); the send goes on after it stops waiting.
	Timeout time.Duration
	// Interval is how often Run looks for due deliveries (default 2s).
	Interval time.Duration
	// Batch bounds the rows one claim takes (default 50).
	Batch int
	// BaseBackoff is the wait after the first failure, doubled after each
	// (default 10s), up to MaxBackoff (default 1h).
	BaseBackoff, MaxBackoff time.Duration
	// GiveUpAfter: a delivery failing this long after the session ended
	// is abandoned (default 24h).
	GiveUpAfter time.Duration
	// TokenTTL is the exp of a logout token after its iat (default 2m;
	// Back-Channel Logout §2.4 recommends a short lifetime).
	TokenTTL time.Duration
	// Client sends the POSTs; nil is one with Timeout that follows no
	// redirect (a 3xx is a failure: the registered URI is the endpoint).
	Client *http.Client
	// Outcomes counts deliveries by outcome (metrics.BackchannelLogouts);
	// nil counts nothing.
	Outcomes *prometheus.CounterVec
	// Now is the clock of schedules and token times; nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Deliverer sends logout tokens.
type Deliverer struct {
	store Store
	keys  Signer
	opts  Options
	// inflight tracks sends started by DeliverSession, which outlive the
	// request that started them; Run waits for them before it returns.
	inflight sync.WaitGroup
}

// New returns a Deliverer with the defaults filled in.
func New(st Store, km Signer, opts Options) *Deliverer {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Batch <= 0 {
		opts.Batch = 50
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = 10 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Hour
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = 24 * time.Hour
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{
			Timeout: opts.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Deliverer{store: st, keys: km, opts: opts}
}

// Timeout is the bound on one POST (Options.Timeout).
func (d *Deliverer) Timeout() time.Duration { return d.opts.Timeout }

// lease outlasts a send: the POST's timeout, signing and the database
// writes around it.
func (d *Deliverer) lease() time.Duration { return 2*d.opts.Timeout + 30*time.Second }

// DeliverSession sends at once the tokens owed for the login session sid
// and returns a channel closed when they are sent or rescheduled. The sends
// run on a context of their own (ctx's values, not its cancellation), each
// bounded by Options.Timeout, so that the caller may stop waiting (the
// person's logout page waits at most a second) without cutting them short.
func (d *Deliverer) DeliverSession(ctx context.Context, sid string) <-chan struct{} {
	done := make(chan struct{})
	if sid == "" {
		close(done)
		return done
	}
	d.inflight.Add(1)
	go func() {
		defer d.inflight.Done()
		defer close(done)
		ctx := context.WithoutCancel(ctx)
		rows, err := d.store.ClaimLogoutDeliveries(ctx, store.LogoutClaim{SID: sid, Limit: d.opts.Batch, Lease: d.lease()})
		if err != nil {
			d.opts.Logger.WarnContext(ctx, "back-channel logout: claim deliveries", "error", err)
			return
		}
		d.sendAll(ctx, rows)
	}()
	return done
}

// Wait waits for the sends DeliverSession started.
func (d *Deliverer) Wait() { d.inflight.Wait() }

// Pass delivers every due row, batch by batch, and reports how many it
// claimed. Rows another instance holds are left to it.
func (d *Deliverer) Pass(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		rows, err := d.store.ClaimLogoutDeliveries(ctx, store.LogoutClaim{Limit: d.opts.Batch, Lease: d.lease()})
		if err != nil {
			return total, err
		}
		total += len(rows)
		d.sendAll(ctx, rows)
		if len(rows) < d.opts.Batch {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// Run makes a Pass every Interval until ctx ends, then waits for the sends
// DeliverSession started, so that none meets a closed store.
func (d *Deliverer) Run(ctx context.Context) {
	defer d.inflight.Wait()
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		if _, err := d.Pass(ctx); err != nil && ctx.Err() == nil {
			d.opts.Logger.WarnContext(ctx, "back-channel logout pass failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendAll sends the claimed rows side by side: one slow relying party
// does not hold up the others.
func (d *Deliverer) sendAll(ctx context.Context, rows []store.LogoutDelivery) {
	var wg sync.WaitGroup
	for _, row := range rows {
		wg.Go(func() { d.send(ctx, row) })
	}
	wg.Wait()
}

// send delivers one row and records the outcome. Database errors are
// logged: the lease runs out and the row comes due again.
func (d *Deliverer) send(ctx context.Context, row store.LogoutDelivery) {
	log := d.opts.Logger.With("client_id", row.ClientID, "delivery", row.ID, "attempt", row.Attempts)
	client, err := d.store.FindClient(ctx, row.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		d.count("dropped")
		if err := d.store.DeleteLogoutDelivery(ctx, row.ID); err != nil {
			log.WarnContext(ctx, "back-channel logout: forget delivery of a deleted client", "error", err)
		}
		return
	}
	if err == nil {
		err = d.post(ctx, client, row)
	}
	// The outcome is recorded even when shutdown cancelled the send, so
	// that the row is not left leased until its lease runs out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err == nil {
		d.count("delivered")
		log.InfoContext(ctx, "back-channel logout delivered")
		if err := d.store.DeleteLogoutDelivery(ctx, row.ID); err != nil {
			log.WarnContext(ctx, "back-channel logout: forget delivered row", "error", err)
		}
		return
	}
	now := d.opts.Now()
	next := now.Add(d.backoff(row.Attempts))
	giveUp := next.Sub(row.CreatedAt) > d.opts.GiveUpAfter
	if giveUp {
		d.count("gave_up")
		log.WarnContext(ctx, "back-channel logout given up", "error", err, "since", row.CreatedAt)
	} else {
		d.count("retry")
		log.InfoContext(ctx, "back-channel logout failed; will retry", "error", err, "next_attempt_at", next)
	}
	msg := err.Error()
	if len(msg) > 500 {
		// Cut on a byte count, then drop a rune cut in half: PostgreSQL
		// refuses invalid UTF-8, and the reschedule would fail with it.
		msg = strings.ToValidUTF8(msg[:500], "")
	}
	if err := d.store.RetryLogoutDelivery(ctx, row.ID, row.Claim, next, msg, giveUp); err != nil {
		log.WarnContext(ctx, "back-channel logout: reschedule", "error", err)
	}
}

// backoff is the wait after the attempts-th failure: BaseBackoff doubled
// each time, at most MaxBackoff.
func (d *Deliverer) backoff(attempts int) time.Duration {
	wait := d.opts.BaseBackoff
	for i := 1; i < attempts && wait < d.opts.MaxBackoff; i++ {
		wait *= 2
	}
	return min(wait, d.opts.MaxBackoff)
}

func (d *Deliverer) count(outcome string) {
	if d.opts.Outcomes != nil {
		d.opts.Outcomes.WithLabelValues(outcome).Inc()
	}
}

// post signs the token and POSTs it (Back-Channel Logout 1.0 §2.5): a form
// with logout_token; 200 or 204 (any 2xx) is success (§2.8).
func (d *Deliverer) post(ctx context.Context, client *store.Client, row store.LogoutDelivery) error {
	token, err := d.Token(ctx, client, row.Subject, row.SID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, row.URI, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post logout token: %w", err)
	}
	defer resp.Body.Close()
	// Read a little so the connection can be reused; the body means
	// nothing (§2.8 allows an error JSON, which is logged in short).
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("relying party answered %d: %q", resp.StatusCode, snippet)
	}
	return nil
}

// Token signs a logout token (Back-Channel Logout 1.0 §2.4) for client:
// iss aud iat exp jti sid sub events, no nonce, typ logout+jwt, with the
// client's id_token_signed_response_alg (what it verifies ID tokens with),
// or the configured algorithm while that one has no key.
func (d *Deliverer) Token(ctx context.Context, client *store.Client, subject, sid string) (string, error) {
	key, err := d.keys.CurrentFor(jose.SignatureAlgorithm(client.IDTokenAlg()))
	if errors.Is(err, keys.ErrNoSigningKey) {
		d.opts.Logger.InfoContext(ctx, "back-channel logout: no key for the client's algorithm; signing with the configured one",
			"client_id", client.ID, "alg", client.IDTokenAlg())
		key, err = d.keys.Current()
	}
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	jti, err := secrets.RandomToken(16)
	if err != nil {
		return "", err
	}
	now := d.opts.Now()
	payload, err := json.Marshal(map[string]any{
		"iss": d.opts.Issuer, "aud": client.ID, "iat": now.Unix(), "exp": now.Add(d.opts.TokenTTL).Unix(),
		"jti": jti, "sub": subject, "sid": sid,
		"events": map[string]any{EventLogout: map[string]any{}},
	})
	if err != nil {
		return "", err
	}
	return key.Sign(keys.TypLogoutToken, payload)
}
