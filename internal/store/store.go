package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gosqlite "github.com/glebarez/go-sqlite"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/fosite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialects Latchkey runs on.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// Sentinel errors. ErrNotFound is fosite's own so that fosite and the admin
// API agree on what "missing" means.
var (
	ErrNotFound      = fosite.ErrNotFound
	ErrAlreadyExists = errors.New("already exists")
	// ErrUnavailable means the database cannot be reached; callers answer
	// 503 and let the client retry.
	ErrUnavailable = errors.New("database unavailable")
	// ErrMissingReference means a row named another that does not exist
	// (a consent for a deleted client, say): a foreign-key violation,
	// PostgreSQL 23503 or SQLite's SQLITE_CONSTRAINT_FOREIGNKEY, told by
	// the driver's code, never by the message.
	ErrMissingReference = errors.New("referenced row does not exist")
)

// Store is Latchkey's database.
type Store struct {
	gdb     *gorm.DB
	clients *clientCache
	// observe is Options.OnStatement, or a no-op.
	observe func(context.Context, string)
	stop    context.CancelFunc
	// background holds the listener and the deny-list loads: Close waits
	// for them, so none logs or queries after the store is closed.
	background sync.WaitGroup
	dialect    string
	now        func() time.Time
	log        *slog.Logger
	// heartbeat and listenDial are Options.ListenHeartbeat and listenDial.
	heartbeat  time.Duration
	listenDial pgconn.DialFunc
	// listenURL and pollInterval are Options.ListenURL and PollInterval.
	listenURL    string
	pollInterval time.Duration
	// proofSpends groups concurrent DPoP proof spends (dpop.go).
	proofSpends proofSpends
	// keyWatchers hear that another instance changed the signing keys
	// (keys.go).
	keyWatchers keyWatchers
	// deny is the revocation deny-list in memory (denylist.go), rebuilt
	// every denyRebuild; onDenyLoad is Options.onDenyLoad.
	deny        *denyList
	denyRebuild time.Duration
	onDenyLoad  func(stage string)
}

// Options tune Open. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; tests pass a fake one.
	Now func() time.Time
	// ClientCacheTTL is how long a client may be served from memory
	// (default 1 minute on PostgreSQL, where changes are also pushed to
	// every instance; 1 second on SQLite, where another process such as
	// the CLI may change it). Negative disables the cache.
	ClientCacheTTL time.Duration
	// OnStatement, if set, is called after every SQL statement with its
	// text (placeholders, never values), and before each BEGIN. The
	// query-budget test counts with it.
	OnStatement func(ctx context.Context, sql string)
	// MaxOpenConns bounds the PostgreSQL pool (default 20). SQLite always
	// uses a single connection: it has one writer anyway, and an in-memory
	// database exists only on the connection that made it.
	MaxOpenConns int
	// ListenHeartbeat is how often, on PostgreSQL, the client-cache
	// listener sends itself a NOTIFY (default DefaultListenHeartbeat). When
	// four in a row go missing its connection is taken for dead, the cache
	// is turned off and the loss is logged.
	ListenHeartbeat time.Duration
	// Traced makes a span of every statement run under a traced request
	// (tracing.go). Off, no callback is registered at all.
	Traced bool
	// ListenURL is the PostgreSQL URL the client-cache listener dials
	// (LATCHKEY_DATABASE_LISTEN_URL): LISTEN needs a session of its own,
	// which a pooler in transaction mode does not give. Empty means the
	// database URL; when that turns out not to deliver notifications the
	// cache falls back to polling (cache.go, listen).
	ListenURL string
	// PollInterval is how long a client may be served from memory when
	// the cache polls (default DefaultPollInterval): the bound on how late
	// another instance's change is seen.
	PollInterval time.Duration
	// DenyListRebuild is how often, on PostgreSQL, the in-memory
	// revocation deny-list is reloaded from the database so that expired
	// entries leave it (default DefaultDenyListRebuild; denylist.go).
	DenyListRebuild time.Duration

	// listenDial replaces the listener's dialer in tests.
	listenDial pgconn.DialFunc
	// denyHeard is called after each revocation notice is applied, and
	// onDenyLoad at the stages of a deny-list load: tests time and
	// interleave with them.
	denyHeard  func()
	onDenyLoad func(stage string)
}

// createPrivate makes a new SQLite file readable by its owner only: it holds
// usernames, argon2id hashes and the sealed signing keys, and SQLite would
// create it (and its -wal and -shm files, which copy the main file's mode)
// under the process umask, typically 0644. An existing file is left as the
// operator made it.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return fmt.Errorf("create SQLite database %s: %w", path, err)
	}
	return f.Close()
}

// WAL lets readers proceed during a write; busy_timeout makes a second
// process wait for the lock instead of failing; BEGIN IMMEDIATE takes the
// write lock up front so two transactions never deadlock upgrading a read
// lock; foreign keys make deleting a client delete its tokens.
const sqlitePragmas = "_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"

// SQLiteMemory is the source of an in-memory SQLite database.
const SQLiteMemory = ":memory:"

// Open connects to a database. dialect is DialectPostgres, with source the
// PostgreSQL URL, or DialectSQLite, with source the file (SQLiteMemory for
// an in-memory database): what config.ParseDatabaseURL makes of
// LATCHKEY_DATABASE_URL. It does not migrate; see Migrate and Pending.
func Open(ctx context.Context, dialect, source string, opts Options) (*Store, error) {
	var dsn string
	switch dialect {
	case DialectPostgres:
		dsn = source
	case DialectSQLite:
		if source == "" {
			return nil, errors.New("open sqlite database: no file named")
		}
		dsn = "file:" + source + "?" + sqlitePragmas
		if source != SQLiteMemory {
			if err := createPrivate(source); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("open database: unknown dialect %q", dialect)
	}
	var dialector gorm.Dialector
	if dialect == DialectPostgres {
		dialector = postgres.Open(dsn)
	} else {
		dialector = sqlite.Open(dsn)
	}
	gdb, err := gorm.Open(dialector, &gorm.Config{
		// SQL statements carry token hashes and client metadata: never log them.
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if opts.OnStatement != nil {
		if err := observeStatements(gdb, opts.OnStatement); err != nil {
			return nil, err
		}
	}
	if opts.Traced {
		if err := traceStatements(gdb, dialect); err != nil {
			return nil, err
		}
	}
	if dialect == DialectSQLite {
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetConnMaxLifetime(0)
		sqlDB.SetConnMaxIdleTime(0)
	} else {
		n := opts.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &Store{gdb: gdb, dialect: dialect, now: opts.Now, log: opts.Logger, heartbeat: opts.ListenHeartbeat, listenDial: opts.listenDial}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultListenHeartbeat
	}
	s.listenURL, s.pollInterval = opts.ListenURL, opts.PollInterval
	s.deny, s.onDenyLoad = newDenyList(), opts.onDenyLoad
	s.deny.heard = opts.denyHeard
	s.denyRebuild = opts.DenyListRebuild
	if s.denyRebuild <= 0 {
		s.denyRebuild = DefaultDenyListRebuild
	}
	if s.pollInterval <= 0 {
		s.pollInterval = DefaultPollInterval
	}
	ttl := opts.ClientCacheTTL
	if ttl == 0 {
		ttl = time.Second
		if dialect == DialectPostgres {
			ttl = time.Minute
		}
	}
	// On PostgreSQL the cache starts off and turns on once the
	// invalidation channel listens.
	s.observe = opts.OnStatement
	if s.observe == nil {
		s.observe = func(context.Context, string) {}
	}
	s.clients = newClientCache(ttl, dialect == DialectSQLite, func() time.Time { return s.now() })
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Ping(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	if dialect == DialectPostgres && ttl > 0 {
		lctx, stop := context.WithCancel(context.Background())
		s.stop = stop
		s.background.Go(func() { s.listen(lctx, dsn) })
	}
	return s, nil
}

// observeStatements reports every statement GORM sends, whatever kind.
func observeStatements(gdb *gorm.DB, fn func(context.Context, string)) error {
	report := func(db *gorm.DB) { fn(db.Statement.Context, db.Statement.SQL.String()) }
	cb := gdb.Callback()
	for _, err := range []error{
		cb.Create().After("gorm:create").Register("latchkey:observe", report),
		cb.Query().After("gorm:query").Register("latchkey:observe", report),
		cb.Update().After("gorm:update").Register("latchkey:observe", report),
		cb.Delete().After("gorm:delete").Register("latchkey:observe", report),
		cb.Row().After("gorm:row").Register("latchkey:observe", report),
		cb.Raw().After("gorm:raw").Register("latchkey:observe", report),
	} {
		if err != nil {
			return fmt.Errorf("register statement observer: %w", err)
		}
	}
	return nil
}

// Dialect is DialectPostgres or DialectSQLite.
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers; /readyz calls it.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Ready is Ping and, on PostgreSQL, a check that the server takes writes:
// a standby, which a URL without target_session_attrs=read-write or an
// address that moved to a demoted primary can lead to, answers a ping and
// refuses every write. /readyz calls it, so that a load balancer stops
// sending requests that could only be answered 503.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	if s.dialect != DialectPostgres {
		return nil
	}
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return err
	}
	// Through database/sql, not GORM: no request's statement, so it does
	// not show in statement counts.
	var readOnly string
	if err := sqlDB.QueryRowContext(ctx, "SHOW transaction_read_only").Scan(&readOnly); err != nil {
		return fmt.Errorf("readiness: %w", translate(err))
	}
	if readOnly == "on" {
		return fmt.Errorf("%w: the PostgreSQL server takes no writes (a standby, or default_transaction_read_only is on)", ErrUnavailable)
	}
	return nil
}

// SQLDB is the connection pool, for its statistics (the metrics'
// DBStatsCollector); nothing else may query through it.
func (s *Store) SQLDB() (*sql.DB, error) { return s.gdb.DB() }

// Close releases the connection pool.
func (s *Store) Close() error {
	if s.stop != nil {
		s.stop()
		done := make(chan struct{})
		go func() { s.background.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeWait):
			s.log.Warn("store closed before its listener stopped")
		}
	}
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// closeWait bounds how long Close waits for the background goroutines; each
// stops at its context's end, within the listener connection's one-second
// close.
const closeWait = 5 * time.Second

func (s *Store) nowUTC() time.Time { return s.now().UTC() }

// Now reads the store's clock (Options.Now): the server uses it as its own
// when given no other, so that one fake clock in a test moves everything.
func (s *Store) Now() time.Time { return s.now() }

// lookupable reports whether s can be a key in the database. PostgreSQL
// refuses NUL bytes and invalid UTF-8 with an error; such a key can match no
// row, so lookups answer ErrNotFound without asking.
func lookupable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// unavailable tells a database that cannot be reached from one that
// answered with an error.
func unavailable(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, sql.ErrConnDone), errors.Is(err, driver.ErrBadConn), errors.As(err, &connErr), errors.As(err, &netErr),
		// A connection the driver closed when its server went away (a
		// failover), met by the next statement or COMMIT of its
		// transaction: nothing of it was sent, so nothing committed.
		errors.Is(err, pgconn.ErrConnClosed):
		return true
	case errors.As(err, &pgErr):
		// admin_shutdown, crash_shutdown, cannot_connect_now,
		// too_many_connections; and read_only_sql_transaction: a standby
		// (or a demoted primary) refusing a write, which a failover can
		// show for a moment, is a database that cannot take the request
		// now, not a failed request.
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300", "25006":
			return true
		}
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database is closed") || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "broken pipe")
}

// translate maps driver errors to the sentinels callers test with errors.Is.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%w", ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %w", ErrAlreadyExists, err)
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		// Both dialects map the driver's code to this (TranslateError).
		return fmt.Errorf("%w: %w", ErrMissingReference, err)
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected: the caller may retry
			return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", ErrAlreadyExists, err)
		case "26000", "42P05": // invalid_sql_statement_name, duplicate_prepared_statement
			return fmt.Errorf("%w (%s)", err, pooledStatementHint)
		}
		return err
	}
	var liteErr *gosqlite.Error
	if errors.As(err, &liteErr) {
		// SQLite result codes (https://sqlite.org/rescode.html): the low
		// byte is the primary code, the rest says which constraint.
		switch code := liteErr.Code(); {
		case code&0xff == sqliteBusy, code&0xff == sqliteLocked:
			return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
		case code == sqliteConstraintUnique, code == sqliteConstraintPrimaryKey:
			return fmt.Errorf("%w: %w", ErrAlreadyExists, err)
		}
	}
	return err
}

// pooledStatementHint says what to do when pgx's cached prepared statements
// meet a pooler in transaction mode (PgBouncer before 1.21, or without
// max_prepared_statements): the statement was prepared on one server
// connection and is used, or prepared again, on another.
const pooledStatementHint = "a prepared statement met another server connection: if LATCHKEY_DATABASE_URL goes through a pooler " +
	"in transaction mode, add default_query_exec_mode=exec to it (docs/operations.md, PgBouncer)"

// SQLite result codes translate() looks at.
const (
	sqliteBusy                 = 5    // SQLITE_BUSY
	sqliteLocked               = 6    // SQLITE_LOCKED
	sqliteConstraintPrimaryKey = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	sqliteConstraintUnique     = 2067 // SQLITE_CONSTRAINT_UNIQUE
)
