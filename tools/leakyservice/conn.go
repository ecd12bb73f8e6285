package main

import (
	"context"
	"database/sql"
)

const sessionTimeoutSQL = `SET statement_timeout = 5000`

// lookupUserDedicatedConnLeaky is the planted *sql.Conn leak (mode "conn").
//
// It takes a dedicated connection from the pool to set a session parameter before the
// query, and on the path for accounts under review (every fourth customer) returns
// without conn.Close(): the connection never goes back to the pool. Nothing in
// database/sql runs a goroutine for a Conn; once MaxOpenConns are gone, every query in
// the process waits in (*DB).conn.
func lookupUserDedicatedConnLeaky(ctx context.Context, db *sql.DB, id int) (User, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return User{}, err
	}
	if _, err := conn.ExecContext(ctx, sessionTimeoutSQL); err != nil {
		_ = conn.Close()
		return User{}, err
	}
	var u User
	err = conn.QueryRowContext(ctx, userByIDSQL, id).Scan(&u.ID, &u.Name, &u.Email)
	if err == nil && u.ID%4 == 0 {
		return u, nil // BUG: accounts under review return before conn.Close()
	}
	_ = conn.Close()
	return u, err
}
