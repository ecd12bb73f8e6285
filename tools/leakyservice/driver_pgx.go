//go:build pgxstdlib

package main

import _ "github.com/jackc/pgx/v5/stdlib"

// driverName: pgx v5 through database/sql (the other build uses lib/pq).
const driverName = "pgx"
