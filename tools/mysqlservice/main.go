// catalog-api: a small service on MySQL/MariaDB through database/sql and
// go-sql-driver/mysql, with a switchable, planted leak (-mode rows: a *sql.Rows not closed
// on one path; -mode healthy: none). It exists to produce real captures of a MySQL
// driver for forensics.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"

	"github.com/go-sql-driver/mysql"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "app address (loopback only)")
	pprofAddr := flag.String("pprof", "127.0.0.1:0", "net/http/pprof address (loopback only)")
	dsn := flag.String("dsn", "", "go-sql-driver/mysql DSN (a 127.0.0.1 server)")
	mode := flag.String("mode", "rows", "rows (planted leak) or healthy")
	maxOpen := flag.Int("maxopen", 6, "db.SetMaxOpenConns")
	rate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (0: Go's default)")
	flag.Parse()
	if *mode != "rows" && *mode != "healthy" {
		log.Fatalf("unknown -mode %q", *mode)
	}
	if *rate > 0 {
		runtime.MemProfileRate = *rate
	}
	if err := createDatabase(*dsn); err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("mysql", *dsn)
	if err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(*maxOpen)
	if err := setup(context.Background(), db); err != nil {
		log.Fatal(err)
	}
	c := &catalog{db: db, leaky: *mode == "rows"}
	app, pprofLn := loopback(*listen), loopback(*pprofAddr)
	mux := http.NewServeMux()
	mux.HandleFunc("/items", c.handleItems)
	http.HandleFunc("/debug/dbstats", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(db.Stats())
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	go func() { log.Fatal(http.Serve(pprofLn, nil)) }() // http.DefaultServeMux: pprof, dbstats
	fmt.Printf("ready app=http://%s pprof=http://%s mode=%s pid=%d go=%s\n",
		app.Addr(), pprofLn.Addr(), *mode, os.Getpid(), runtime.Version())
	log.Fatal(http.Serve(app, mux))
}

// createDatabase creates the DSN's database on a throwaway server (idempotent).
func createDatabase(dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	name := cfg.DBName
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.Exec("CREATE DATABASE IF NOT EXISTS `" + name + "`")
	return err
}

// setup creates the catalog schema and a few hundred items (idempotent).
func setup(ctx context.Context, db *sql.DB) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, category INT NOT NULL,
			name VARCHAR(64) NOT NULL, price_cents INT NOT NULL, KEY (category, id))`,
		`DELETE FROM items`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	for i := 1; i <= 600; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO items VALUES (?, ?, ?, ?)`,
			i, i%30+1, "item "+strconv.Itoa(i), 100+i*7%900); err != nil {
			return err
		}
	}
	return nil
}
