-- sqlite workload for the allocator benchmark: bulk and row-by-row inserts, two indexes, joins,
-- grouping, sorting, updates and deletes on an in-memory database (every page is malloc'ed).
-- scripts/bench.sh prepends ".parameter set @n N" and pipes it into `sqlite3 :memory:`.
-- The last line prints a checksum of every result; the driver compares it across allocators.
PRAGMA cache_size = -400000;
CREATE TABLE item(id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, name TEXT NOT NULL,
                  price REAL NOT NULL, note TEXT);
BEGIN;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < @n)
INSERT INTO item SELECT x, (x * 7919) % 1000, printf('item-%09d', (x * 104729) % 1000000007),
                        (x % 1000) * 0.25, printf('%x/%x/%s', x * x, x * 31, substr('abcdefghijklmnop', 1 + x % 16))
FROM s;
COMMIT;
CREATE TABLE grp(id INTEGER PRIMARY KEY, label TEXT NOT NULL, hits INTEGER NOT NULL DEFAULT 0);
INSERT INTO grp(id, label) SELECT DISTINCT grp, 'group-' || grp FROM item;
CREATE INDEX item_grp ON item(grp);
CREATE INDEX item_name ON item(name);
CREATE TABLE result(k TEXT PRIMARY KEY, v TEXT);
INSERT INTO result SELECT 'count', count(*) || '/' || sum(grp) || '/' || total(price) FROM item;
INSERT INTO result SELECT 'top', group_concat(label || '=' || c, ',') FROM
  (SELECT g.label AS label, count(*) AS c, total(i.price) AS t FROM item i JOIN grp g ON g.id = i.grp
   GROUP BY g.id ORDER BY t DESC, g.id LIMIT 5);
INSERT INTO result SELECT 'range', count(*) FROM item WHERE name BETWEEN 'item-100000000' AND 'item-300000000';
INSERT INTO result SELECT 'sorted', sum(length(note)) || '/' || count(*) FROM
  (SELECT note FROM item ORDER BY name LIMIT @n / 2);
INSERT INTO result SELECT 'lookup', total(i.price) FROM item i
  WHERE i.name IN (SELECT name FROM item WHERE id % 97 = 0);
-- row-by-row: a statement per group, as an application would issue them
UPDATE grp SET hits = (SELECT count(*) FROM item WHERE item.grp = grp.id AND item.price > 100);
UPDATE item SET price = price * 1.5, note = note || '!' WHERE grp % 3 = 0;
DELETE FROM item WHERE id % 5 = 0;
INSERT INTO result SELECT 'after', count(*) || '/' || total(price) || '/' || (SELECT sum(hits) FROM grp) FROM item;
INSERT INTO result SELECT 'distinct', count(DISTINCT substr(note, -3)) FROM item;
SELECT 'sqlite ok checksum=' || (SELECT group_concat(k || ':' || v, ';') FROM (SELECT k, v FROM result ORDER BY k));
