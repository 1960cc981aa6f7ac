package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// statements keeps each query prepared once per pool. database/sql then
// prepares it once per connection and reuses it, so a query with arguments
// is one round trip (MySQL's binary protocol) instead of a prepare, an
// execute and a close every time, and an image travels as bytes, never
// escaped into SQL text.
type statements struct {
	db *sql.DB
	m  sync.Map // query -> *sql.Stmt
	// mu orders keeping a statement and closing them all.
	mu     sync.Mutex
	closed bool
}

// get returns query prepared on the pool, preparing it the first time.
// A failed prepare (the database away) is not kept: the next call tries
// again.
func (s *statements) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.m.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	// Prepared without the lock, so that callers waiting on a database
	// that does not answer each keep to their own deadline.
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = st.Close()
		return nil, errors.New("store closed")
	}
	if old, loaded := s.m.LoadOrStore(query, st); loaded {
		_ = st.Close() // another caller prepared it first
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

// close closes the prepared statements (before the pool).
func (s *statements) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.m.Range(func(_, st any) bool {
		_ = st.(*sql.Stmt).Close()
		return true
	})
}
