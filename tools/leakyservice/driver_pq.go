//go:build !pgxstdlib

package main

import _ "github.com/lib/pq"

// driverName is the database/sql driver the service opens: lib/pq here, pgx v5's stdlib
// when built with -tags pgxstdlib (driver_pgx.go).
const driverName = "postgres"
