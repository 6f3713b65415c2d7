-- Version 3, ingest fidelity: what a person needs to recognise a run, which user prompt a
-- model call served, and cost changes on the live feed.
--
-- agents.title    what the run is about: Claude Code's session title when it sends one, else
--                 the first prompt, cut (ingest sets it; NULL for runs the REST API made).
-- agents.project  where the agent worked: the Claude Code hook's `cwd`.
-- prompts.parent_prompt_id  for a model call, the user prompt it served (NULL for a user
--                 prompt, and while the user prompt is not known yet); SET NULL when that
--                 prompt goes, so a model call never dangles.
-- prompts.source_prompt_id  the outside tool's own id of the user prompt (Claude Code's
--                 `prompt_id` in hooks, `prompt.id` in its telemetry): the join key, kept
--                 so whichever of the two reports arrives first, the other finds it.
ALTER TABLE agents ADD COLUMN title TEXT;
ALTER TABLE agents ADD COLUMN project TEXT;
ALTER TABLE prompts ADD COLUMN parent_prompt_id TEXT REFERENCES prompts (id) ON DELETE SET NULL;
ALTER TABLE prompts ADD COLUMN source_prompt_id TEXT;

CREATE INDEX prompts_by_parent ON prompts (parent_prompt_id) WHERE parent_prompt_id IS NOT NULL;
CREATE INDEX prompts_by_source ON prompts (source_prompt_id) WHERE source_prompt_id IS NOT NULL;

-- The feed is made of state_change rows and, from this version, of the cost_update rows the
-- server writes when a run's cost or tokens change (their details carry the run). One
-- partial index over both keeps the feed's scan to events.
CREATE INDEX agent_logs_feed ON agent_logs (id) WHERE log_type IN ('state_change', 'cost_update');
DROP INDEX agent_logs_state_changes;
