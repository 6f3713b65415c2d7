-- Ingest (Claude Code hooks, OpenTelemetry): what an outside event already produced.
--
-- One table of keys, each naming the run it belongs to:
--   'run:<source>:<session>[:<agent>]'  the run of a Claude Code session (or subagent, or
--                                       OTLP conversation), so every later event, hooks or
--                                       OTLP, finds the same run;
--   'tool:<session>:<tool_use_id>', 'hash:<sha256>'  a delivery already applied, so a
--                                       retried delivery changes nothing the second time.
-- The key is the primary key: two concurrent deliveries of one event cannot both insert.
-- Keys go with their run (retention, DELETE), so a pruned session starts afresh.
CREATE TABLE ingest_keys (
    key      TEXT PRIMARY KEY NOT NULL,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX ingest_keys_by_agent ON ingest_keys (agent_id);
