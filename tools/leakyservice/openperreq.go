package main

import (
	"context"
	"database/sql"
)

// User is one customer record.
type User struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

const userByIDSQL = `SELECT id, name, email FROM customers WHERE id = $1`

// lookupUserOpenPerRequest is the planted pool-per-request leak (mode "openperreq").
//
// It opens a new *sql.DB for every call and never closes it. Each call leaves behind
// a whole pool: its connectionOpener goroutine, and an idle connection to PostgreSQL
// that no MaxOpenConns setting of the service's real pool accounts for.
func lookupUserOpenPerRequest(ctx context.Context, dsn string, id int) (User, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return User{}, err
	}
	// BUG: missing defer db.Close()
	var u User
	err = db.QueryRowContext(ctx, userByIDSQL, id).Scan(&u.ID, &u.Name, &u.Email)
	return u, err
}

// lookupUser is the correct variant: it uses the long-lived pool.
func lookupUser(ctx context.Context, db *sql.DB, id int) (User, error) {
	var u User
	err := db.QueryRowContext(ctx, userByIDSQL, id).Scan(&u.ID, &u.Name, &u.Email)
	return u, err
}

// slowUserReport is mode "slow": no leak, but every tenth lookup runs a 20-second report
// query, detached from the request so the client giving up does not cancel it. Its
// connection is silent (the server is busy) while a goroutine waits for the answer: the
// analyzer must not take it for a forgotten connection.
func slowUserReport(db *sql.DB, id int) (User, error) {
	var u User
	err := db.QueryRowContext(context.Background(), slowReportSQL, id).Scan(
		&u.ID, &u.Name, &u.Email)
	return u, err
}

const slowReportSQL = `SELECT id, name, email FROM customers, pg_sleep(20) WHERE id = $1`
