//! `GET /api/runtime/stats`: counts and costs, read in one snapshot.

use serde::Serialize;

use crate::db::{read_transaction, Database};
use crate::domain::{PromptStatus, RunStatus};
use crate::error::ApiError;

/// Runs and cost of one agent definition.
#[derive(Debug, Serialize)]
pub struct DefinitionStats {
    pub orchestrator_agent_id: String,
    pub name: String,
    pub runs: i64,
    pub cost_usd: f64,
}

/// The whole answer. Every status is a key, zero included; every definition is listed.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub agents_by_status: serde_json::Map<String, serde_json::Value>,
    pub prompts_by_status: serde_json::Map<String, serde_json::Value>,
    pub cost_usd: f64,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub by_definition: Vec<DefinitionStats>,
}

fn counts<D: Database>(
    db: &D,
    sql: &str,
    keys: impl Iterator<Item = &'static str>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let mut map: serde_json::Map<_, _> = keys.map(|k| (k.to_owned(), 0.into())).collect();
    for mut row in db.execute(sql, &[])?.iter() {
        map.insert(row.text(0)?, row.int(1)?.into());
    }
    Ok(map)
}

pub fn read<D: Database>(db: &D) -> Result<Stats, ApiError> {
    read_transaction(db, |db| {
        let agents_by_status = counts(
            db,
            "SELECT status, count(*) FROM agents GROUP BY status",
            RunStatus::ALL.iter().map(|s| s.as_str()),
        )?;
        let prompts_by_status = counts(
            db,
            "SELECT status, count(*) FROM prompts GROUP BY status",
            PromptStatus::ALL.iter().map(|s| s.as_str()),
        )?;
        let mut totals = db.execute(
            // Sums of what is a number: a direct writer's row may hold text (`'abc'`
            // passes `CHECK (cost_usd >= 0)`) or a fraction of a token; TOTAL never
            // overflows and `< 1e308` also leaves out an infinite cost.
            "SELECT TOTAL(CASE WHEN cost_usd < 1e308 THEN cost_usd END), \
             CAST(TOTAL(CASE WHEN typeof(tokens_input) = 'integer' THEN tokens_input END) \
             AS INTEGER), \
             CAST(TOTAL(CASE WHEN typeof(tokens_output) = 'integer' THEN tokens_output END) \
             AS INTEGER) FROM prompts",
            &[],
        )?;
        let totals = totals
            .first()
            .ok_or_else(|| ApiError::internal("aggregate returned no row"))?;
        let by_definition = db
            .execute(
                "SELECT d.id, d.name, count(a.id), TOTAL(CASE WHEN a.cost_usd < 1e308 THEN a.cost_usd END) \
                 FROM orchestrator_agents d LEFT JOIN agents a ON a.orchestrator_agent_id = d.id \
                 GROUP BY d.id ORDER BY d.created_at, d.id",
                &[],
            )?
            .iter()
            .map(|mut row| {
                Ok(DefinitionStats {
                    orchestrator_agent_id: row.text(0)?,
                    name: row.text(1)?,
                    runs: row.int(2)?,
                    cost_usd: row.real(3)?,
                })
            })
            .collect::<Result<Vec<_>, crate::db::DbError>>()?;
        Ok(Stats {
            agents_by_status,
            prompts_by_status,
            cost_usd: totals.real(0)?,
            tokens_input: totals.int(1)?,
            tokens_output: totals.int(2)?,
            by_definition,
        })
    })
}
