package store

import (
	"context"
	"database/sql"
)

const (
	balanceSQL = `SELECT balance_cents FROM accounts WHERE id = $1`
	debitSQL   = `UPDATE accounts SET balance_cents = balance_cents - $2 WHERE id = $1`
	creditSQL  = `UPDATE accounts SET balance_cents = balance_cents + $2 WHERE id = $1`
)

// transferFundsLeakyTx is the planted *sql.Tx leak (mode "tx").
//
// The transaction runs on a context detached from the HTTP request, so that a client
// hanging up cannot abort a half-applied transfer. On the insufficient-funds path it
// returns without tx.Rollback() and without calling cancel: the Tx keeps its
// connection ("idle in transaction" on the server) and its database/sql
// (*Tx).awaitDone goroutine waits forever for a context nobody can cancel any more.
func (s *Store) transferFundsLeakyTx(from, to int, cents int64) error {
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		cancel()
		return err
	}
	var balance int64
	if err := tx.QueryRowContext(ctx, balanceSQL, from).Scan(&balance); err != nil {
		_ = tx.Rollback()
		cancel()
		return err
	}
	if balance < cents {
		return ErrInsufficientFunds // BUG: neither tx.Rollback() nor cancel()
	}
	err = applyTransfer(ctx, tx, from, to, cents)
	cancel()
	return err
}

// transferFunds is the correct variant: every path ends the transaction.
func (s *Store) transferFunds(ctx context.Context, from, to int, cents int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	var balance int64
	if err := tx.QueryRowContext(ctx, balanceSQL, from).Scan(&balance); err != nil {
		return err
	}
	if balance < cents {
		return ErrInsufficientFunds
	}
	return applyTransfer(ctx, tx, from, to, cents)
}

// applyTransfer debits, credits and commits (rolling back on failure).
func applyTransfer(ctx context.Context, tx *sql.Tx, from, to int, cents int64) error {
	if _, err := tx.ExecContext(ctx, debitSQL, from, cents); err != nil {
		_ = tx.Rollback()
		return err
	}
	if _, err := tx.ExecContext(ctx, creditSQL, to, cents); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
