-- Schema and a little data for the orders-api test service (tools/leakyservice).
-- Loaded by tools/pgcluster.py into a throwaway cluster; safe to re-run.
DROP TABLE IF EXISTS orders, accounts, customers;

CREATE TABLE customers (
    id    integer PRIMARY KEY,
    name  text NOT NULL,
    email text NOT NULL
);

CREATE TABLE accounts (
    id            integer PRIMARY KEY,
    customer_id   integer NOT NULL REFERENCES customers(id),
    balance_cents bigint  NOT NULL
);

CREATE TABLE orders (
    id          serial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id),
    total_cents bigint  NOT NULL,
    status      text    NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_idx ON orders (customer_id, id DESC);

INSERT INTO customers (id, name, email)
SELECT i, 'Customer ' || i, 'customer' || i || '@example.com'
FROM generate_series(1, 100) AS i;

-- Every fourth account is empty, so a quarter of transfers take the
-- "insufficient funds" error path (where the tx-mode leak lives).
INSERT INTO accounts (id, customer_id, balance_cents)
SELECT i, i, CASE WHEN i % 4 = 0 THEN 0 ELSE 100000000 END
FROM generate_series(1, 100) AS i;

-- 20 orders per customer (the leaky rows path stops reading after 5).
INSERT INTO orders (customer_id, total_cents, status, created_at)
SELECT (i % 100) + 1, 100 + (i * 37) % 9900,
       CASE WHEN i % 3 = 0 THEN 'open' ELSE 'shipped' END,
       now() - (i || ' minutes')::interval
FROM generate_series(1, 2000) AS i;

ANALYZE;
