SELECT format('CREATE ROLE %I LOGIN', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'pw') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'cert')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'cert') \gexec
SELECT format('ALTER ROLE %I LOGIN', r) FROM unnest(ARRAY[:'pw', :'cert']) r
 WHERE NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = r) \gexec
SELECT format('ALTER ROLE %I PASSWORD NULL', :'cert')
 WHERE (SELECT rolpassword FROM pg_authid WHERE rolname = :'cert') IS NOT NULL \gexec
