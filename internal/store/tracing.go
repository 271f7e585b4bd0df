package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

const spanKey = "latchkey:span"

// traceStatements makes a span of every statement run under a traced
// request: a child of the span in the statement's context, named by its
// verb and table, with its text (placeholders, never values: they are
// token hashes and personal data). Statements outside a traced request
// (the janitor, key reloads) make none.
func traceStatements(gdb *gorm.DB, dialect string) error {
	system := "sqlite"
	if dialect == DialectPostgres {
		system = "postgresql"
	}
	before := func(db *gorm.DB) {
		ctx, span := tracing.Start(db.Statement.Context, "sql", attribute.String("db.system", system))
		if span.IsRecording() {
			db.Statement.Context = ctx
			db.InstanceSet(spanKey, span)
		}
	}
	after := func(db *gorm.DB) {
		v, ok := db.InstanceGet(spanKey)
		if !ok {
			return
		}
		span := v.(trace.Span)
		sql := db.Statement.SQL.String()
		verb, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
		name := strings.ToUpper(verb)
		if db.Statement.Table != "" {
			name += " " + db.Statement.Table
		}
		span.SetName(name)
		span.SetAttributes(attribute.String("db.statement", sql), attribute.Int64("db.rows_affected", db.RowsAffected))
		if db.Error != nil && !errors.Is(db.Error, gorm.ErrRecordNotFound) {
			// Not the driver's text: PostgreSQL names the conflicting key's
			// value in a unique violation.
			span.SetStatus(codes.Error, "statement failed")
		}
		span.End()
	}
	cb := gdb.Callback()
	for _, err := range []error{
		cb.Create().Before("gorm:create").Register("latchkey:trace_before", before),
		cb.Create().After("gorm:create").Register("latchkey:trace_after", after),
		cb.Query().Before("gorm:query").Register("latchkey:trace_before", before),
		cb.Query().After("gorm:query").Register("latchkey:trace_after", after),
		cb.Update().Before("gorm:update").Register("latchkey:trace_before", before),
		cb.Update().After("gorm:update").Register("latchkey:trace_after", after),
		cb.Delete().Before("gorm:delete").Register("latchkey:trace_before", before),
		cb.Delete().After("gorm:delete").Register("latchkey:trace_after", after),
		cb.Row().Before("gorm:row").Register("latchkey:trace_before", before),
		cb.Row().After("gorm:row").Register("latchkey:trace_after", after),
		cb.Raw().Before("gorm:raw").Register("latchkey:trace_before", before),
		cb.Raw().After("gorm:raw").Register("latchkey:trace_after", after),
	} {
		if err != nil {
			return fmt.Errorf("register statement tracing: %w", err)
		}
	}
	return nil
}
