//! What steering reads about a run before it answers a hook: the run and its ancestors
//! (parent_agent_id, nearest first), each with its status and the policies that apply to
//! it (its definition's and its own `config.policy`). One statement per hook event.

use serde_json::Value as Json;

use crate::db::{Database, DbError};
use crate::domain::{Policy, RunId, RunStatus};

/// How far up the tree steering looks: a dispatched run, its Claude Code session, the
/// session's subagent… is three.
const MAX_DEPTH: i64 = 8;

/// One run of the chain.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: RunId,
    pub status: Option<RunStatus>,
    pub error_message: Option<String>,
    pub policy: Policy,
}

/// `run_id` and its ancestors, nearest first. A policy another program stored that does not
/// parse reads as no policy (see [`Policy::effective`]).
pub fn chain<D: Database>(db: &D, run_id: &RunId) -> Result<Vec<Link>, DbError> {
    let mut rows = db.execute(
        "WITH RECURSIVE up (id, depth) AS (\
             SELECT ?1, 0 \
             UNION SELECT a.parent_agent_id, up.depth + 1 FROM agents a JOIN up ON a.id = up.id \
             WHERE a.parent_agent_id IS NOT NULL AND up.depth < ?2) \
         SELECT a.id, a.status, a.error_message, d.policy, \
                CASE WHEN json_valid(a.config) AND json_type(a.config, '$.policy') = 'object' \
                     THEN json_extract(a.config, '$.policy') END \
         FROM up JOIN agents a ON a.id = up.id \
         LEFT JOIN orchestrator_agents d ON d.id = a.orchestrator_agent_id \
         ORDER BY up.depth",
        &[run_id.into(), MAX_DEPTH.into()],
    )?;
    let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str::<Json>(&t).ok());
    let mut chain = Vec::new();
    for mut row in rows.iter() {
        let definition = parse(row.opt_text(3)?);
        let own = parse(row.opt_text(4)?);
        chain.push(Link {
            id: RunId::stored(row.text(0)?),
            status: row.opt_text(1)?.as_deref().and_then(RunStatus::parse),
            error_message: row.opt_text(2)?,
            policy: Policy::effective(definition.as_ref(), own.as_ref()),
        });
    }
    Ok(chain)
}
