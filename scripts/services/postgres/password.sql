SET password_encryption = 'scram-sha-256';
SELECT format('ALTER ROLE %I PASSWORD %L', :'pw', :'secret') \gexec
