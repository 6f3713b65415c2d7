-- Version 3, dispatch: runs started on runners (docs/dispatch.md).
--
-- One row per dispatched run (a run that was not dispatched has none). The argv is resolved
-- from the definition's `command` when the run is queued, so editing the definition later
-- does not change a queued run.
--
-- state        queued → running (a runner claimed it) → exited (the runner reported the
--              end) | lost (its lease passed without a heartbeat).
-- lease_id     the claim's id: heartbeat, output and exit must carry it, so a runner whose
--              run was declared lost (or claimed again) cannot write to it.
-- lease_until  running only: a run whose lease_until has passed is lost (checked lazily by
--              claims, heartbeats and reads; a Spin component has no timer).
-- output_lines how many output lines the run's logs hold (the per-run bound).
-- output_received how many lines the runner has sent (its `from` count): a batch sent
--              again after a lost answer is not kept twice.
-- Times are the API's RFC 3339 text with milliseconds, so text order is time order.
CREATE TABLE dispatches (
    run_id       TEXT PRIMARY KEY NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    state        TEXT NOT NULL DEFAULT 'queued' CHECK (state IN
                   ('queued', 'running', 'exited', 'lost')),
    input        TEXT NOT NULL DEFAULT '',
    argv         TEXT NOT NULL
                   CHECK (json_valid(argv) AND json_type(argv) = 'array'),
    working_dir  TEXT,
    timeout_secs INTEGER CHECK (timeout_secs IS NULL OR timeout_secs > 0),
    runner       TEXT,
    lease_id     TEXT,
    lease_until  TEXT,
    exit_code    INTEGER,
    output_lines INTEGER NOT NULL DEFAULT 0,
    output_received INTEGER NOT NULL DEFAULT 0,
    queued_at    TEXT NOT NULL,
    started_at   TEXT,
    ended_at     TEXT
);
-- A claim takes the oldest queued run; the lease check reads running rows by lease_until.
-- Both partial: they hold only the few rows that are waiting or running.
CREATE INDEX dispatches_queue ON dispatches (queued_at, run_id) WHERE state = 'queued';
CREATE INDEX dispatches_leases ON dispatches (lease_until) WHERE state = 'running';
