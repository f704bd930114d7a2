\set id random(1, 1000000)
\startpipeline
BEGIN READ ONLY;
SELECT * FROM bench_1000000 WHERE id = :id;
ROLLBACK;
SELECT pg_catalog.count(*) FILTER (WHERE from_sql) FROM pg_catalog.pg_prepared_statements;
\endpipeline
