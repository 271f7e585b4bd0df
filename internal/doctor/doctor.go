package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store"
)

// Status of one check.
type Status string

// The statuses. Only Fail makes the report fail.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	// Skip means the check could not run because an earlier one failed.
	Skip Status = "skip"
)

// Check is one line of the report.
type Check struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to do; empty when the status is OK.
	Fix string `json:"fix,omitempty"`
}

// Report is every check, in the order they ran.
type Report struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

// MaxClockSkew is how far this machine's clock may be from the database's
// before doctor warns.
const MaxClockSkew = 2 * time.Second

// Options are doctor's dependencies; the zero value uses the real ones.
type Options struct {
	// Now is this machine's clock.
	Now func() time.Time
	// HTTPClient fetches the issuer's metadata (default: 5 s timeout).
	HTTPClient *http.Client
}

// Run runs every check. cfg is the loaded configuration and loadErr what
// loading it reported (unreadable values); cfg may be nil when the file
// could not be read at all.
func Run(ctx context.Context, cfg *config.Config, loadErr error, opts Options) Report {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	r := &Report{}
	if cfg == nil {
		r.add(Check{Name: "configuration", Status: Fail, Message: loadErr.Error(), Fix: "fix the configuration file"})
		return r.done()
	}
	r.configuration(cfg, loadErr)
	if st := r.database(ctx, cfg); st != nil {
		migrated := r.schema(ctx, st)
		r.clock(ctx, st, opts.Now)
		if migrated {
			r.keys(ctx, st, cfg, opts.Now)
		} else {
			r.add(Check{Name: "signing keys", Status: Skip, Message: "needs a migrated schema"})
		}
		_ = st.Close()
	} else {
		for _, name := range []string{"schema", "clock", "signing keys"} {
			r.add(Check{Name: name, Status: Skip, Message: "needs the database"})
		}
	}
	r.issuer(ctx, cfg, opts.HTTPClient)
	return r.done()
}

func (r *Report) add(c Check) { r.Checks = append(r.Checks, c) }

func (r *Report) done() Report {
	r.OK = true
	for _, c := range r.Checks {
		if c.Status == Fail {
			r.OK = false
		}
	}
	return *r
}

// configuration is what serve validates at start-up, plus its warnings.
func (r *Report) configuration(cfg *config.Config, loadErr error) {
	if err := errors.Join(loadErr, cfg.ValidateGroups(config.GroupAll)); err != nil {
		r.add(Check{Name: "configuration", Status: Fail, Message: strings.ReplaceAll(err.Error(), "\n", "; "),
			Fix: "`latchkey serve` refuses to start with these: fix each variable named (docs/configuration.md)"})
		return
	}
	if len(cfg.Warnings) > 0 {
		r.add(Check{Name: "configuration", Status: Warn, Message: strings.Join(cfg.Warnings, "; "),
			Fix: "valid, but probably not what was meant: see each warning"})
		return
	}
	r.add(Check{Name: "configuration", Status: OK, Message: "every setting is valid"})
}

// database opens the store, or reports why it cannot; nil means skip the
// checks that need it. A SQLite file that does not exist is reported, not
// created.
func (r *Report) database(ctx context.Context, cfg *config.Config) *store.Store {
	dialect, source, err := config.ParseDatabaseURL(cfg.DatabaseURL)
	if err != nil {
		r.add(Check{Name: "database", Status: Fail, Message: fmt.Sprintf("%sDATABASE_URL %v", config.EnvPrefix, err), Fix: "set LATCHKEY_DATABASE_URL"})
		return nil
	}
	if dialect == store.DialectSQLite && source != store.SQLiteMemory {
		if _, err := os.Stat(source); errors.Is(err, fs.ErrNotExist) {
			r.add(Check{Name: "database", Status: Fail, Message: "no SQLite database at " + source,
				Fix: "check LATCHKEY_DATABASE_URL and the working directory; `latchkey migrate up` creates it"})
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, dialect, source, store.Options{Logger: slog.New(slog.DiscardHandler), ClientCacheTTL: -1})
	if err != nil {
		r.add(Check{Name: "database", Status: Fail, Message: err.Error(),
			Fix: "check that the database server runs and that LATCHKEY_DATABASE_URL names it (host, port, user, database, sslmode)"})
		return nil
	}
	r.add(Check{Name: "database", Status: OK, Message: dialect + " database answers"})
	return st
}

// schema compares the applied migrations with this binary's. It reports
// whether any migration is applied, that is whether the tables exist.
func (r *Report) schema(ctx context.Context, st *store.Store) (migrated bool) {
	pending, err := st.Pending(ctx)
	if err != nil {
		r.add(Check{Name: "schema", Status: Fail, Message: err.Error(), Fix: "compare `latchkey migrate status` with the migrations of this release"})
		return false
	}
	current, known, err := st.SchemaVersion(ctx)
	if err != nil {
		r.add(Check{Name: "schema", Status: Fail, Message: err.Error(), Fix: "check the database user's rights on goose_db_version"})
		return false
	}
	switch {
	case pending:
		r.add(Check{Name: "schema", Status: Fail, Message: fmt.Sprintf("behind this binary: at %05d, this binary needs %05d", current, known),
			Fix: "take a backup, then run `latchkey migrate up` (or start with `latchkey serve --migrate`)"})
	case current > known:
		r.add(Check{Name: "schema", Status: Warn, Message: fmt.Sprintf("ahead of this binary: at %05d, this binary knows up to %05d", current, known),
			Fix: "a newer release migrated the database: expected during a rolling upgrade, otherwise run the newer binary"})
	default:
		r.add(Check{Name: "schema", Status: OK, Message: fmt.Sprintf("up to date at %05d", current)})
	}
	return current > 0
}

// clock compares this machine's clock with the database server's, taking
// the midpoint of the round trip.
func (r *Report) clock(ctx context.Context, st *store.Store, now func() time.Time) {
	if st.Dialect() != store.DialectPostgres {
		r.add(Check{Name: "clock", Status: OK, Message: "SQLite runs in this process, on this machine's clock"})
		return
	}
	before := now()
	dbNow, err := st.DatabaseNow(ctx)
	after := now()
	if err != nil {
		r.add(Check{Name: "clock", Status: Fail, Message: err.Error(), Fix: "check the database connection"})
		return
	}
	mid := before.Add(after.Sub(before) / 2)
	skew := mid.Sub(dbNow)
	msg := fmt.Sprintf("this machine's clock is %s from the database's", skew.Round(time.Millisecond))
	if skew.Abs() > MaxClockSkew {
		r.add(Check{Name: "clock", Status: Warn, Message: msg,
			Fix: fmt.Sprintf("over %s apart: token lifetimes, key activation and cleanup drift; run NTP (chrony, systemd-timesyncd) on both machines", MaxClockSkew)})
		return
	}
	r.add(Check{Name: "clock", Status: OK, Message: msg})
}

// keys reads the signing keys without changing them.
func (r *Report) keys(ctx context.Context, st *store.Store, cfg *config.Config, now func() time.Time) {
	ss := cfg.SystemSecrets()
	if len(ss) == 0 || cfg.ValidateGroups(config.GroupSecret) != nil {
		r.add(Check{Name: "signing keys", Status: Skip, Message: "needs a valid LATCHKEY_SECRET"})
		return
	}
	rows, err := st.ListSigningKeys(ctx)
	if err != nil {
		r.add(Check{Name: "signing keys", Status: Fail, Message: err.Error(), Fix: "check the schema and the database user's rights"})
		return
	}
	if len(rows) == 0 {
		r.add(Check{Name: "signing keys", Status: Warn, Message: "no signing keys yet", Fix: "`latchkey serve` makes them at its first start"})
		return
	}
	chains, err := keys.Inspect(rows, ss, cfg.KeyRotationPeriod, now())
	if err != nil {
		r.add(Check{Name: "signing keys", Status: Fail, Message: err.Error(), Fix: "fix LATCHKEY_SECRET"})
		return
	}
	var fails, warns, oks []string
	for _, c := range chains {
		switch {
		case len(c.Unopenable) > 0:
			fails = append(fails, fmt.Sprintf("%s: LATCHKEY_SECRET does not open %s", c.Alg, strings.Join(c.Unopenable, ", ")))
		case c.Signing == "" && c.Pending == "":
			warns = append(warns, fmt.Sprintf("%s: no key (serve makes one at start)", c.Alg))
		case c.Signing == "":
			warns = append(warns, fmt.Sprintf("%s: key %s is published and not yet signing", c.Alg, c.Pending))
		case c.RotationOverdue:
			warns = append(warns, fmt.Sprintf("%s: key %s has signed past LATCHKEY_KEY_ROTATION_PERIOD (%s) with no successor", c.Alg, c.Signing, cfg.KeyRotationPeriod))
		case len(c.SealedByOlder) > 0:
			warns = append(warns, fmt.Sprintf("%s: %s sealed under an older secret of the list (replaced by the next maintenance)", c.Alg, strings.Join(c.SealedByOlder, ", ")))
		default:
			oks = append(oks, fmt.Sprintf("%s signs with %s", c.Alg, c.Signing))
		}
	}
	switch {
	case len(fails) > 0:
		r.add(Check{Name: "signing keys", Status: Fail, Message: strings.Join(append(fails, warns...), "; "),
			Fix: "start with the LATCHKEY_SECRET the keys were sealed under (during a secret rotation: \"new,old\"), or restore it from the backup; docs/security.md"})
	case len(warns) > 0:
		r.add(Check{Name: "signing keys", Status: Warn, Message: strings.Join(warns, "; "),
			Fix: "start `latchkey serve` (it maintains the keys), or run `latchkey keys rotate`"})
	default:
		r.add(Check{Name: "signing keys", Status: OK, Message: strings.Join(oks, "; ")})
	}
}

// issuer fetches the issuer's discovery document. Only a warning when it
// fails: from inside, the public URL may not route to this server.
func (r *Report) issuer(ctx context.Context, cfg *config.Config, hc *http.Client) {
	const name = "issuer"
	if cfg.Issuer == "" {
		r.add(Check{Name: name, Status: Skip, Message: "no issuer configured"})
		return
	}
	u := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		r.add(Check{Name: name, Status: Warn, Message: err.Error(), Fix: "set LATCHKEY_ISSUER to the public URL"})
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error repeats the method and URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		r.add(Check{Name: name, Status: Warn, Message: "GET " + u + ": " + err.Error(),
			Fix: "is the server running and the URL routed here? From inside a network the public URL may not be reachable; then check from outside"})
		return
	}
	defer resp.Body.Close()
	var md struct {
		Issuer string `json:"issuer"`
	}
	if resp.StatusCode != http.StatusOK {
		r.add(Check{Name: name, Status: Warn, Message: fmt.Sprintf("GET %s answered %d", u, resp.StatusCode),
			Fix: "the URL does not reach a Latchkey server: check the proxy's routes"})
		return
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&md); err != nil {
		r.add(Check{Name: name, Status: Warn, Message: fmt.Sprintf("GET %s: not a discovery document: %v", u, err),
			Fix: "the URL does not reach a Latchkey server: check the proxy's routes"})
		return
	}
	if md.Issuer != cfg.Issuer {
		r.add(Check{Name: name, Status: Warn, Message: fmt.Sprintf("%s answers issuer %q, configured %q", u, md.Issuer, cfg.Issuer),
			Fix: "another server answers there, or it runs with another LATCHKEY_ISSUER: clients reject tokens whose iss differs (give every instance the same LATCHKEY_ISSUER)"})
		return
	}
	r.add(Check{Name: name, Status: OK, Message: u + " names this issuer"})
}
