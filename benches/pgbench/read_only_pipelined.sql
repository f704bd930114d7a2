\set id random(1, 1000000)
\startpipeline
BEGIN READ ONLY;
SELECT pg_catalog.set_config('statement_timeout', '601000', true);
SELECT * FROM bench_1000000 WHERE id = :id;
ROLLBACK;
SELECT pg_catalog.concat_ws(',', pg_catalog.now() OPERATOR(pg_catalog.=) pg_catalog.statement_timestamp(), pg_catalog.count(*) FILTER (WHERE from_sql), pg_catalog.count(*) FILTER (WHERE NOT from_sql)), pg_catalog.pg_advisory_unlock_all(), pg_catalog.setseed(('x' OPERATOR(pg_catalog.||) pg_catalog.left(pg_catalog.replace(pg_catalog.gen_random_uuid()::pg_catalog.text, '-', ''), 12))::pg_catalog.bit(48)::pg_catalog.int8 OPERATOR(pg_catalog./) 140737488355328.0 OPERATOR(pg_catalog.-) 1) FROM pg_catalog.pg_prepared_statements;
\endpipeline
