-- inventory-api: stock per SKU; every third SKU is sold out (the leaky path).
CREATE TABLE items (sku integer PRIMARY KEY, stock integer NOT NULL);
INSERT INTO items (sku, stock)
SELECT s, CASE WHEN s % 3 = 0 THEN 0 ELSE 1000000 END FROM generate_series(1, 300) AS s;
