\set id random(1, 1000000)
SELECT * FROM bench_1000000 WHERE id = :id;
