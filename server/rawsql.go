package server

import (
	"context"
	"database/sql"
)

// Raw SQL access that statements without a store method still use. This
// file goes with store/raw.go, once every statement has its method.

// exec runs q in the transaction, prepared once for the server's life.
func (w *writer) exec(q string, args ...any) (sql.Result, error) { return w.tx.Exec(q, args...) }

// queryRow is exec for a query of one row.
func (w *writer) queryRow(q string, args ...any) *sql.Row { return w.tx.QueryRow(q, args...) }

// querier reads, through a pool or inside a transaction.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}
