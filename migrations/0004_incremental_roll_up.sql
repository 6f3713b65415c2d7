-- A new prompt adds its cost and tokens to its run instead of re-summing all of the run's
-- prompts: 0002's insert trigger read every earlier prompt of the run on each insert, so a
-- long session (thousands of prompts, or an OTLP batch of hundreds) paid for its whole
-- history on every write. Inserts are the common write; updates and deletes still
-- recompute from the prompts (0002's triggers), so a run a direct writer left wrong still
-- heals on the next change of one of its prompts.
--
-- MAX() of two values is NULL when either is, hence the COALESCEs: an unparseable
-- created_at leaves last_activity_at as it was. (No CASE … END here: see 0002.)

DROP TRIGGER prompts_roll_up_on_insert;

CREATE TRIGGER prompts_roll_up_on_insert AFTER INSERT ON prompts
BEGIN
    UPDATE agents SET
        cost_usd = cost_usd + NEW.cost_usd,
        tokens_input = tokens_input + NEW.tokens_input,
        tokens_output = tokens_output + NEW.tokens_output,
        last_activity_at = COALESCE(
            MAX(last_activity_at, strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at)),
            last_activity_at,
            strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at))
    WHERE id = NEW.agent_id;
END;
