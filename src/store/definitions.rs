//! `orchestrator_agents`: agent definitions.

use serde::Serialize;
use serde_json::value::RawValue;

use super::TimeColumns;
use super::{bind, unreadable, Update};
use crate::db::{Database, DbError, DbErrorKind, Row, Value};
use crate::domain::{time::now_rfc3339, AgentName, AgentType, DefinitionId, Id, Page};
use crate::error::ApiError;

/// An agent definition as the API returns it.
#[derive(Debug, Serialize)]
pub struct Definition {
    pub id: DefinitionId,
    pub name: String,
    pub description: Option<String>,
    pub agent_type: String,
    pub capabilities: Box<RawValue>,
    pub default_model: Option<String>,
    /// `{max_cost_usd, deny_tools, ask_tools, hold_on_stop_secs}` or null.
    pub policy: Box<RawValue>,
    /// The argv a runner starts for a dispatched run, or null (not dispatchable).
    pub command: Box<RawValue>,
    pub working_dir: Option<String>,
    pub timeout_secs: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

const TABLE: &str = "orchestrator_agents";

/// The longest `description` a definition keeps, in characters.
pub const MAX_DESCRIPTION: usize = 4096;
/// The longest `default_model` a definition keeps, in characters.
pub const MAX_MODEL: usize = 256;
/// The longest `working_dir` a definition keeps, in characters.
pub const MAX_WORKING_DIR: usize = 4096;
/// The longest `timeout_secs`: a week.
pub const MAX_TIMEOUT_SECS: i64 = 7 * 24 * 3600;

const COLUMNS: &str = "id, name, description, agent_type, capabilities, default_model, \
     created_at, updated_at, policy, command, working_dir, timeout_secs";

fn from_row(mut row: Row<'_>) -> Result<Definition, DbError> {
    Ok(Definition {
        id: DefinitionId::stored(row.text(0)?),
        name: row.text(1)?,
        description: row.opt_text(2)?,
        agent_type: row.text(3)?,
        capabilities: row.json(4)?,
        default_model: row.opt_text(5)?,
        created_at: row.time(6)?,
        updated_at: row.time(7)?,
        policy: row.opt_json(8)?,
        command: row.opt_json(9)?,
        working_dir: row.opt_text(10)?,
        timeout_secs: row.opt_int(11)?,
    })
}

/// A validated new definition. `capabilities` is a JSON array's text.
#[derive(Debug, Clone)]
pub struct NewDefinition {
    pub name: AgentName,
    pub description: Option<String>,
    pub agent_type: AgentType,
    pub capabilities: String,
    pub default_model: Option<String>,
    /// Canonical JSON texts (see `domain::policy`, `domain::command`).
    pub policy: Option<String>,
    pub command: Option<String>,
    pub working_dir: Option<String>,
    pub timeout_secs: Option<i64>,
}

/// A validated partial update: `None` leaves a column as it is; `Some(None)` clears it.
#[derive(Debug, Default, Clone)]
pub struct DefinitionChanges {
    pub name: Option<AgentName>,
    pub description: Option<Option<String>>,
    pub agent_type: Option<AgentType>,
    pub capabilities: Option<String>,
    pub default_model: Option<Option<String>>,
    pub policy: Option<Option<String>>,
    pub command: Option<Option<String>>,
    pub working_dir: Option<Option<String>>,
    pub timeout_secs: Option<Option<i64>>,
}

fn duplicate_name(err: DbError, name: &str) -> ApiError {
    if err.kind == DbErrorKind::Unique {
        // The field lets a form put the message next to the name input.
        ApiError::conflict(format!("an agent named {name:?} already exists"))
            .with_details(serde_json::json!({ "field": "name" }))
    } else {
        err.into()
    }
}

pub fn list<D: Database>(
    db: &D,
    agent_type: Option<AgentType>,
    page: Page,
) -> Result<Vec<Definition>, DbError> {
    let mut params = Vec::new();
    let filter = match agent_type {
        Some(t) => format!("WHERE agent_type = {}", bind(&mut params, t.as_str())),
        None => String::new(),
    };
    let limit = bind(&mut params, page.limit);
    let offset = bind(&mut params, page.offset);
    let sql = format!(
        "SELECT {COLUMNS} FROM orchestrator_agents {filter} \
         ORDER BY created_at, id LIMIT {limit} OFFSET {offset}"
    );
    let rows = db.execute(&sql, &params)?;
    Ok(unreadable::collect(db, TABLE, 0, rows, from_row))
}

pub fn get<D: Database>(db: &D, id: &DefinitionId) -> Result<Option<Definition>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM orchestrator_agents WHERE id = ?1");
    let rows = db.execute(&sql, &[id.into()])?;
    Ok(unreadable::collect(db, TABLE, 0, rows, from_row).pop())
}

/// Insert; a taken name is a 409.
/// The id of the definition called `name`, if there is one.
pub fn id_by_name<D: Database>(db: &D, name: &str) -> Result<Option<String>, DbError> {
    let mut found = db.execute(
        "SELECT id FROM orchestrator_agents WHERE name = ?1",
        &[name.into()],
    )?;
    match found.first() {
        Some(mut row) => Ok(Some(row.text(0)?)),
        None => Ok(None),
    }
}

pub fn insert<D: Database>(db: &D, new: NewDefinition) -> Result<Definition, ApiError> {
    let now = now_rfc3339();
    let sql = format!(
        "INSERT INTO orchestrator_agents ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11) RETURNING {COLUMNS}"
    );
    let params = [
        Id::new_v4().into(),
        Value::from(new.name.as_ref()),
        new.description.into(),
        new.agent_type.as_str().into(),
        new.capabilities.into(),
        new.default_model.into(),
        now.into(),
        new.policy.into(),
        new.command.into(),
        new.working_dir.into(),
        new.timeout_secs.into(),
    ];
    let rows = db
        .execute(&sql, &params)
        .map_err(|e| duplicate_name(e, new.name.as_ref()))?;
    super::returned(rows, from_row)
}

/// Apply changes and move `updated_at`; `None` when the id is unknown, 409 on a taken name.
pub fn update<D: Database>(
    db: &D,
    id: &Id,
    changes: DefinitionChanges,
) -> Result<Option<Definition>, ApiError> {
    let mut update = Update::of(id);
    let name = changes.name.map(AgentName::into_inner);
    update.set_if("name", name.clone());
    update.set_if("description", changes.description);
    update.set_if("agent_type", changes.agent_type.map(AgentType::as_str));
    update.set_if("capabilities", changes.capabilities);
    update.set_if("default_model", changes.default_model);
    update.set_if("policy", changes.policy);
    update.set_if("command", changes.command);
    update.set_if("working_dir", changes.working_dir);
    update.set_if("timeout_secs", changes.timeout_secs);
    update.set("updated_at", now_rfc3339());
    let mut rows = update
        .execute(db, "orchestrator_agents", COLUMNS)
        .map_err(|e| duplicate_name(e, name.as_deref().unwrap_or_default()))?;
    Ok(rows.first().map(from_row).transpose()?)
}

/// Delete (cascading to runs, their prompts and logs); `false` when the id is unknown.
pub fn delete<D: Database>(db: &D, id: &DefinitionId) -> Result<bool, DbError> {
    let rows = db.execute(
        "DELETE FROM orchestrator_agents WHERE id = ?1 RETURNING id",
        &[id.into()],
    )?;
    Ok(!rows.is_empty())
}
