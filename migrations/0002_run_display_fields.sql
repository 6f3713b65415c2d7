-- Version 2: what a screen shows beside each run, kept on the run's row so that a list of
-- runs stays one indexed read: its token sums beside cost_usd, and the time of its latest
-- activity (its own change, its prompts' and its logs' times).
--
-- Triggers keep cost_usd, the token sums and last_activity_at right for every writer of
-- the file — the API and the programs that write it directly (the Python ADW scripts) —
-- in the transaction of the write that changes them, so the invariant "a run's cost and
-- tokens are the sums over its prompts" holds whoever wrote the prompt.
--
-- Times are normalised with strftime('%Y-%m-%dT%H:%M:%fZ', …) before they are compared:
-- a direct writer's datetime('now') ("YYYY-MM-DD HH:MM:SS") does not sort as text against
-- the API's RFC 3339, and an unparseable time is ignored rather than stored.
--
-- (The statement splitter ends a trigger at "END;": no statement inside a trigger body
-- may end with a CASE … END.)

ALTER TABLE agents ADD COLUMN tokens_input INTEGER NOT NULL DEFAULT 0 CHECK (tokens_input >= 0);
ALTER TABLE agents ADD COLUMN tokens_output INTEGER NOT NULL DEFAULT 0 CHECK (tokens_output >= 0);
-- NULL only until the insert trigger below fills it from started_at.
ALTER TABLE agents ADD COLUMN last_activity_at TEXT;

-- Backfill: sums over the prompts (cost_usd too, which heals a run a direct writer left
-- wrong), and the newest time among the run's own, its prompts' and its logs'.
UPDATE agents SET
    (cost_usd, tokens_input, tokens_output) = (
        SELECT COALESCE(SUM(p.cost_usd), 0), COALESCE(SUM(p.tokens_input), 0),
               COALESCE(SUM(p.tokens_output), 0)
        FROM prompts p WHERE p.agent_id = agents.id),
    last_activity_at = COALESCE((
        SELECT MAX(t) FROM (
            SELECT strftime('%Y-%m-%dT%H:%M:%fZ', agents.started_at) AS t
            UNION ALL SELECT strftime('%Y-%m-%dT%H:%M:%fZ', agents.completed_at)
            UNION ALL SELECT MAX(strftime('%Y-%m-%dT%H:%M:%fZ', p.created_at))
                FROM prompts p WHERE p.agent_id = agents.id
            UNION ALL SELECT MAX(strftime('%Y-%m-%dT%H:%M:%fZ', p.completed_at))
                FROM prompts p WHERE p.agent_id = agents.id
            UNION ALL SELECT MAX(strftime('%Y-%m-%dT%H:%M:%fZ', l.created_at))
                FROM agent_logs l WHERE l.agent_id = agents.id)),
        agents.started_at);

-- The feed's events written before this version carry runs without the new fields. Give
-- them the definition's name and type as they are now, last_activity_at the event's own
-- time, and the token sums of the prompts that existed by then (tokens reported later on
-- such a prompt are counted: the closest the old rows allow).
UPDATE agent_logs SET details = json_set(details,
        '$.run.agent_name', (SELECT d.name FROM agents a JOIN orchestrator_agents d
                             ON d.id = a.orchestrator_agent_id WHERE a.id = agent_logs.agent_id),
        '$.run.agent_type', (SELECT d.agent_type FROM agents a JOIN orchestrator_agents d
                             ON d.id = a.orchestrator_agent_id WHERE a.id = agent_logs.agent_id),
        '$.run.tokens_input', (SELECT COALESCE(SUM(p.tokens_input), 0) FROM prompts p
                               WHERE p.agent_id = agent_logs.agent_id
                               AND p.created_at <= agent_logs.created_at),
        '$.run.tokens_output', (SELECT COALESCE(SUM(p.tokens_output), 0) FROM prompts p
                                WHERE p.agent_id = agent_logs.agent_id
                                AND p.created_at <= agent_logs.created_at),
        '$.run.last_activity_at', agent_logs.created_at)
WHERE log_type = 'state_change' AND json_valid(details)
    AND json_type(details, '$.run') = 'object';

-- Sessions are listed by their newest activity, and `since` filters on it.
CREATE INDEX agents_by_activity ON agents (last_activity_at);

-- A run inserted without last_activity_at (a direct writer) starts at its start.
CREATE TRIGGER agents_activity_from_start AFTER INSERT ON agents
WHEN NEW.last_activity_at IS NULL
BEGIN
    UPDATE agents SET last_activity_at =
        COALESCE(strftime('%Y-%m-%dT%H:%M:%fZ', NEW.started_at), NEW.started_at)
    WHERE id = NEW.id;
END;

-- A run that ends is active at its end (the API sets both already; then this writes nothing).
CREATE TRIGGER agents_activity_on_completion AFTER UPDATE OF completed_at ON agents
WHEN NEW.completed_at IS NOT NULL
BEGIN
    UPDATE agents SET last_activity_at = strftime('%Y-%m-%dT%H:%M:%fZ', NEW.completed_at)
    WHERE id = NEW.id
        AND strftime('%Y-%m-%dT%H:%M:%fZ', NEW.completed_at) > COALESCE(last_activity_at, '');
END;

-- The roll-ups: the run's cost and tokens are recomputed from its prompts (an index range
-- on prompts_by_agent), never adjusted by a delta, so a run left wrong heals on its next
-- prompt write.
CREATE TRIGGER prompts_roll_up_on_insert AFTER INSERT ON prompts
BEGIN
    UPDATE agents SET (cost_usd, tokens_input, tokens_output) = (
        SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tokens_input), 0),
               COALESCE(SUM(tokens_output), 0)
        FROM prompts WHERE agent_id = NEW.agent_id)
    WHERE id = NEW.agent_id;
    UPDATE agents SET last_activity_at = strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at)
    WHERE id = NEW.agent_id
        AND strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at) > COALESCE(last_activity_at, '');
END;

CREATE TRIGGER prompts_roll_up_on_update
AFTER UPDATE OF cost_usd, tokens_input, tokens_output, agent_id ON prompts
BEGIN
    UPDATE agents SET (cost_usd, tokens_input, tokens_output) = (
        SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tokens_input), 0),
               COALESCE(SUM(tokens_output), 0)
        FROM prompts WHERE agent_id = agents.id)
    WHERE id IN (NEW.agent_id, OLD.agent_id);
END;

CREATE TRIGGER prompts_roll_up_on_delete AFTER DELETE ON prompts
BEGIN
    UPDATE agents SET (cost_usd, tokens_input, tokens_output) = (
        SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tokens_input), 0),
               COALESCE(SUM(tokens_output), 0)
        FROM prompts WHERE agent_id = OLD.agent_id)
    WHERE id = OLD.agent_id;
END;

CREATE TRIGGER prompts_activity_on_update AFTER UPDATE OF completed_at ON prompts
WHEN NEW.completed_at IS NOT NULL
BEGIN
    UPDATE agents SET last_activity_at = strftime('%Y-%m-%dT%H:%M:%fZ', NEW.completed_at)
    WHERE id = NEW.agent_id
        AND strftime('%Y-%m-%dT%H:%M:%fZ', NEW.completed_at) > COALESCE(last_activity_at, '');
END;

CREATE TRIGGER agent_logs_activity AFTER INSERT ON agent_logs
BEGIN
    UPDATE agents SET last_activity_at = strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at)
    WHERE id = NEW.agent_id
        AND strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at) > COALESCE(last_activity_at, '');
END;
