package store

import (
	"database/sql"
	"database/sql/driver"

	"github.com/XSAM/otelsql"
	"github.com/extagram/extagram/internal/telemetry"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// Every query is a span of the calling request's trace (while tracing is
// on; see internal/telemetry). Left out: the rows'
// iteration and the session resets between uses of a pooled connection,
// which would double the spans and say nothing of the query.
func traceOptions(system attribute.KeyValue) []otelsql.Option {
	return []otelsql.Option{
		otelsql.WithAttributes(system),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitRows:             true,
			OmitConnResetSession: true,
			OmitConnectorConnect: true,
		}),
	}
}

// openTraced is sql.Open with every query traced while tracing is on.
func openTraced(driverName, dsn string, system attribute.KeyValue) (*sql.DB, error) {
	if !telemetry.Enabled() {
		return sql.Open(driverName, dsn)
	}
	return otelsql.Open(driverName, dsn, traceOptions(system)...)
}

// openDBTraced is sql.OpenDB with every query traced while tracing is on.
func openDBTraced(c driver.Connector, system attribute.KeyValue) *sql.DB {
	if !telemetry.Enabled() {
		return sql.OpenDB(c)
	}
	return otelsql.OpenDB(c, traceOptions(system)...)
}

var (
	systemMySQL  = semconv.DBSystemNameMySQL
	systemSQLite = semconv.DBSystemNameSQLite
)
