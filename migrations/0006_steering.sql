-- Version 3, steering and dispatch: what a person decides for the agents of a definition,
-- the requests that wait for a person, and what a runner may start.
--
-- orchestrator_agents.policy        {max_cost_usd, deny_tools, ask_tools, hold_on_stop_secs}
--                                   (validated by the API; a run's config.policy overrides
--                                   it field by field).
-- orchestrator_agents.command       argv (JSON array of strings) a runner starts for a
--                                   dispatched run; placeholders {input} {run_id} {session_id}.
-- orchestrator_agents.working_dir   where it starts (the runner's own folder when NULL).
-- orchestrator_agents.timeout_secs  how long it may run (no limit when NULL).
ALTER TABLE orchestrator_agents ADD COLUMN policy TEXT
    CHECK (policy IS NULL OR (json_valid(policy) AND json_type(policy) = 'object'));
ALTER TABLE orchestrator_agents ADD COLUMN command TEXT
    CHECK (command IS NULL OR (json_valid(command) AND json_type(command) = 'array'));
ALTER TABLE orchestrator_agents ADD COLUMN working_dir TEXT;
ALTER TABLE orchestrator_agents ADD COLUMN timeout_secs INTEGER
    CHECK (timeout_secs IS NULL OR timeout_secs > 0);

-- A tool call that waits for a person: made by a PermissionRequest hook, or by a
-- PreToolUse that matches an ask_tools rule. The hook request stays open while it is
-- pending, up to expires_at; a pending row past expires_at reads as expired (the hook that
-- held it may have been cut off before it could say so).
-- scope 'session' on an allowed row lets the same rule (or tool) through for the rest of
-- the session without asking again.
CREATE TABLE approvals (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    run_id      TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL,
    hook_event  TEXT NOT NULL,
    tool_name   TEXT NOT NULL,
    tool_input  TEXT CHECK (tool_input IS NULL OR json_valid(tool_input)),
    rule        TEXT,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                  ('pending', 'allowed', 'denied', 'expired', 'cancelled')),
    message     TEXT,
    scope       TEXT CHECK (scope IS NULL OR scope IN ('once', 'session')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    decided_at  TEXT
);
CREATE INDEX approvals_by_created ON approvals (created_at, id);
CREATE INDEX approvals_by_run ON approvals (run_id, created_at, id);
CREATE INDEX approvals_by_session ON approvals (session_id, created_at, id);
CREATE INDEX approvals_pending ON approvals (status, created_at, id) WHERE status = 'pending';

-- The feed gains approval_update events: milestone rows whose details carry the approval
-- (as cost_update rows carry the run). The partial index holds exactly the feed's rows, so
-- other milestones (a runner's output, notifications) are never scanned by a feed read.
CREATE INDEX agent_logs_events ON agent_logs (id)
    WHERE log_type IN ('state_change', 'cost_update')
       OR (log_type = 'milestone' AND json_type(details, '$.approval') = 'object');
DROP INDEX agent_logs_feed;
