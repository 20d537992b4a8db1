-- The worker's queue, in its own schema (its role's search_path).
CREATE TABLE jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    error text,
    run_after timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- What claim() reads: the runnable jobs, oldest first.
CREATE INDEX jobs_queued ON jobs (run_after, id) WHERE status = 'queued';
