-- The five tables of the orchestrator. Every CHECK here is also validated in code first,
-- so a client gets a 422 naming the field; the schema is the last line of defence.
-- Times are RFC 3339 UTC text with milliseconds, so text order is time order.

CREATE TABLE orchestrator_agents (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    name          TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    description   TEXT,
    agent_type    TEXT NOT NULL CHECK (agent_type IN
                    ('planner', 'builder', 'reviewer', 'tester', 'orchestrator', 'utility')),
    capabilities  TEXT NOT NULL DEFAULT '[]'
                    CHECK (json_valid(capabilities) AND json_type(capabilities) = 'array'),
    default_model TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX orchestrator_agents_by_created ON orchestrator_agents (created_at, id);
CREATE INDEX orchestrator_agents_by_type ON orchestrator_agents (agent_type, created_at, id);

CREATE TABLE agents (
    id                    TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    orchestrator_agent_id TEXT NOT NULL
                            REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    session_id            TEXT NOT NULL CHECK (length(session_id) BETWEEN 1 AND 256),
    parent_agent_id       TEXT REFERENCES agents (id) ON DELETE SET NULL,
    status                TEXT NOT NULL DEFAULT 'initializing' CHECK (status IN
                            ('initializing', 'planning', 'executing', 'reviewing',
                             'completed', 'failed', 'cancelled')),
    context               TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(context)),
    config                TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    started_at            TEXT NOT NULL,
    completed_at          TEXT,
    cost_usd              REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    error_message         TEXT
);
CREATE INDEX agents_by_started ON agents (started_at, id);
CREATE INDEX agents_by_status ON agents (status, started_at, id);
CREATE INDEX agents_by_session ON agents (session_id, started_at, id);
CREATE INDEX agents_by_definition ON agents (orchestrator_agent_id, started_at, id);
CREATE INDEX agents_by_parent ON agents (parent_agent_id);

CREATE TABLE prompts (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    agent_id      TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    prompt_type   TEXT NOT NULL CHECK (prompt_type IN
                    ('adw', 'command', 'followup', 'correction', 'tool_call')),
    prompt_name   TEXT,
    prompt_text   TEXT NOT NULL,
    response_text TEXT,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                    ('pending', 'streaming', 'completed', 'failed', 'cancelled')),
    model_used    TEXT,
    tokens_input  INTEGER NOT NULL DEFAULT 0 CHECK (tokens_input >= 0),
    tokens_output INTEGER NOT NULL DEFAULT 0 CHECK (tokens_output >= 0),
    cost_usd      REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    latency_ms    INTEGER CHECK (latency_ms IS NULL OR latency_ms >= 0),
    created_at    TEXT NOT NULL,
    completed_at  TEXT,
    error_message TEXT
);
CREATE INDEX prompts_by_created ON prompts (created_at, id);
CREATE INDEX prompts_by_agent ON prompts (agent_id, created_at, id);
CREATE INDEX prompts_by_status ON prompts (status, created_at, id);

-- AUTOINCREMENT: ids are never reused, so a state_change row's id is a cursor that only
-- grows, even after deletions.
CREATE TABLE agent_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    log_level  TEXT NOT NULL DEFAULT 'INFO' CHECK (log_level IN
                 ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    log_type   TEXT NOT NULL CHECK (log_type IN
                 ('state_change', 'milestone', 'error', 'performance', 'tool_call', 'cost_update')),
    message    TEXT NOT NULL,
    details    TEXT CHECK (details IS NULL OR json_valid(details)),
    created_at TEXT NOT NULL
);
CREATE INDEX agent_logs_by_created ON agent_logs (created_at, id);
CREATE INDEX agent_logs_by_agent ON agent_logs (agent_id, created_at, id);
-- The live feed reads state_change rows by id: a partial index keeps that scan to events.
CREATE INDEX agent_logs_state_changes ON agent_logs (id) WHERE log_type = 'state_change';

CREATE TABLE system_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    log_level  TEXT NOT NULL DEFAULT 'INFO' CHECK (log_level IN
                 ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    component  TEXT NOT NULL CHECK (length(component) BETWEEN 1 AND 128),
    message    TEXT NOT NULL,
    details    TEXT CHECK (details IS NULL OR json_valid(details)),
    created_at TEXT NOT NULL
);
CREATE INDEX system_logs_by_created ON system_logs (created_at, id);
