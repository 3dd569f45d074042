-- The dashboard finds jobs by idempotency key, finished ones included; the unique
-- index covers only live jobs. Only jobs that have a key pay for this index.
CREATE INDEX jobs_idempotency_key_any_idx ON pgq.jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
