//! `agents`: runtime agents ("runs"), and the `state_change` log row each status change
//! writes in the same transaction (the live feed is made of those rows).
//!
//! A run carries its definition's name and type (joined at read time) and its token sums
//! and latest activity (kept on the row by the triggers of migration 0002, in the
//! transaction of each prompt or log write, whoever the writer).

use serde::Serialize;
use serde_json::value::RawValue;

use super::TimeColumns;
use super::{bind, status_change, Update};
use crate::db::{write_transaction, Database, DbError, Row, Value};
use crate::domain::{time::now_rfc3339, DefinitionId, Id, LogType, Page, RunId, RunStatus};
use crate::error::ApiError;

/// A runtime agent as the API returns it (and as the feed carries it).
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: RunId,
    pub orchestrator_agent_id: DefinitionId,
    /// The definition's name and type as they are now (`null` only for a row a direct
    /// writer left without its definition, foreign keys off).
    pub agent_name: Option<String>,
    pub agent_type: Option<String>,
    pub session_id: String,
    pub parent_agent_id: Option<RunId>,
    /// What the run is about (Claude Code's session title, else its first prompt, cut);
    /// `null` for runs nothing named.
    pub title: Option<String>,
    /// Where the agent worked (a Claude Code hook's `cwd`); `null` when unknown.
    pub project: Option<String>,
    pub status: RunStatus,
    pub context: Box<RawValue>,
    pub config: Box<RawValue>,
    pub started_at: String,
    pub completed_at: Option<String>,
    pub cost_usd: f64,
    /// Sums over the run's prompts, kept with `cost_usd`.
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub error_message: Option<String>,
    /// The newest of the run's own change, its prompts' and its logs' times.
    pub last_activity_at: String,
    /// `{state, runner, exit_code, input, argv, queued_at, started_at, ended_at}` for a run
    /// queued for a runner (`store::dispatches`), `null` for any other.
    pub dispatch: Box<RawValue>,
    /// The run and its descendants' roll-up ([`tree`]): only in a single run's GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree: Option<Tree>,
}

/// A run's tree: the run and every run under it (`parent_agent_id`, any depth), summed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tree {
    pub runs: i64,
    pub cost_usd: f64,
    pub tokens_input: i64,
    pub tokens_output: i64,
}

/// A run's dispatch as one JSON column: a PRIMARY KEY lookup per run, `NULL` when it has
/// none. `{run}` is the run's id column (`a.id` in reads, `agents.id` in `RETURNING`).
macro_rules! dispatch_column {
    ($run:literal) => {
        concat!(
            "(SELECT json_object('state', x.state, 'runner', x.runner, 'exit_code', \
             x.exit_code, 'input', x.input, 'argv', json(x.argv), 'queued_at', x.queued_at, \
             'started_at', x.started_at, 'ended_at', x.ended_at) FROM dispatches x \
             WHERE x.run_id = ",
            $run,
            ")"
        )
    };
}

/// The run's own columns, as `RETURNING` gives them (unqualified), and its dispatch.
const COLUMNS: &str = concat!(
    "id, orchestrator_agent_id, session_id, parent_agent_id, status, \
     context, config, started_at, completed_at, cost_usd, tokens_input, tokens_output, \
     error_message, COALESCE(last_activity_at, started_at), title, project, ",
    dispatch_column!("agents.id")
);

/// A run with its definition's name and type: `{SELECT} WHERE …` over `agents a`.
const SELECT: &str = concat!(
    "SELECT a.id, a.orchestrator_agent_id, a.session_id, a.parent_agent_id, \
     a.status, a.context, a.config, a.started_at, a.completed_at, a.cost_usd, a.tokens_input, \
     a.tokens_output, a.error_message, COALESCE(a.last_activity_at, a.started_at), a.title, \
     a.project, ",
    dispatch_column!("a.id"),
    ", d.name, d.agent_type FROM agents a \
     LEFT JOIN orchestrator_agents d ON d.id = a.orchestrator_agent_id"
);

/// A run row: [`COLUMNS`] (title, project and dispatch last), then the definition's name
/// and type.
pub(crate) fn from_row(mut row: Row<'_>) -> Result<Run, DbError> {
    Ok(Run {
        id: RunId::stored(row.text(0)?),
        orchestrator_agent_id: DefinitionId::stored(row.text(1)?),
        session_id: row.text(2)?,
        parent_agent_id: row.opt_text(3)?.map(RunId::stored),
        status: row.parsed(4, RunStatus::parse)?,
        context: row.json(5)?,
        config: row.json(6)?,
        started_at: row.time(7)?,
        completed_at: row.opt_time(8)?,
        cost_usd: row.real(9)?,
        tokens_input: row.int(10)?,
        tokens_output: row.int(11)?,
        error_message: row.opt_text(12)?,
        last_activity_at: row.time(13)?,
        title: row.opt_text(14)?,
        project: row.opt_text(15)?,
        dispatch: row.opt_json(16)?,
        agent_name: row.opt_text(17)?,
        agent_type: row.opt_text(18)?,
        tree: None,
    })
}

/// What a write returns for [`from_row`]: `{COLUMNS}, ?n, ?m`. A `RETURNING` clause cannot
/// join, so the definition's name and type, read earlier in the same transaction (where
/// they cannot change), are bound back as parameters.
fn returning(params: &mut Vec<Value>, name: Option<&str>, agent_type: Option<&str>) -> String {
    let name = bind(params, name);
    let agent_type = bind(params, agent_type);
    format!("{COLUMNS}, {name}, {agent_type}")
}

/// Filters of `GET /api/runtime/agents`.
#[derive(Debug, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub session_id: Option<String>,
    pub orchestrator_agent_id: Option<Id>,
    /// A case-insensitive substring of the definition's name, the session id, the run's
    /// title or its project.
    pub q: Option<String>,
    /// Runs whose `last_activity_at` is at or after this time (the API's time format).
    pub since: Option<String>,
}

/// The longest `session_id` a run keeps, in characters (the API refuses a longer one,
/// ingest cuts it to as many bytes).
pub const MAX_SESSION_ID: usize = 256;
/// The longest `error_message` a run keeps, in characters (the API refuses a longer one,
/// ingest cuts it to as many bytes).
pub const MAX_ERROR_MESSAGE: usize = 65_536;

/// The longest `title` a run keeps, in characters (longer ones are refused by the API and
/// cut by ingest).
pub const MAX_TITLE: usize = 256;
/// The longest `project` (a folder path) a run keeps, in characters.
pub const MAX_PROJECT: usize = 4_096;

/// A validated new run. `context` and `config` are JSON objects' text.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub orchestrator_agent_id: DefinitionId,
    pub session_id: String,
    pub parent_agent_id: Option<RunId>,
    pub context: String,
    pub config: String,
    pub title: Option<String>,
    pub project: Option<String>,
}

/// A validated PATCH: `None` leaves a column; `Some(None)` clears a nullable one.
#[derive(Debug, Default)]
pub struct RunChanges {
    pub status: Option<RunStatus>,
    pub error_message: Option<Option<String>>,
    pub context: Option<String>,
    /// The run's whole `config` object (its `policy` validated).
    pub config: Option<String>,
    pub title: Option<Option<String>>,
    pub project: Option<Option<String>>,
}

pub fn list<D: Database>(db: &D, filter: &RunFilter, page: Page) -> Result<Vec<Run>, DbError> {
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    if let Some(status) = filter.status {
        conditions.push(format!("a.status = {}", bind(&mut params, status.as_str())));
    }
    if let Some(session) = &filter.session_id {
        conditions.push(format!(
            "a.session_id = {}",
            bind(&mut params, session.as_str())
        ));
    }
    if let Some(def) = &filter.orchestrator_agent_id {
        conditions.push(format!(
            "a.orchestrator_agent_id = {}",
            bind(&mut params, def)
        ));
    }
    if let Some(q) = &filter.q {
        // LIKE is case-insensitive for ASCII letters; the text's own `%`, `_` and `\` are
        // escaped so they match themselves.
        let pattern = bind(&mut params, format!("%{}%", escape_like(q)));
        conditions.push(format!(
            "(d.name LIKE {pattern} ESCAPE '\\' OR a.session_id LIKE {pattern} ESCAPE '\\' \
             OR a.title LIKE {pattern} ESCAPE '\\' OR a.project LIKE {pattern} ESCAPE '\\')"
        ));
    }
    if let Some(since) = &filter.since {
        conditions.push(format!(
            "COALESCE(a.last_activity_at, a.started_at) >= {}",
            bind(&mut params, since.as_str())
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let limit = bind(&mut params, page.limit);
    let offset = bind(&mut params, page.offset);
    let sql = format!(
        "{SELECT} {filter} ORDER BY a.started_at DESC, a.id DESC LIMIT {limit} OFFSET {offset}"
    );
    let rows = db.execute(&sql, &params)?;
    Ok(super::unreadable::collect(db, "agents", 0, rows, from_row))
}

/// `text` with LIKE's wildcards (and the escape character itself) escaped by `\`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Every run of a session, newest first (the session's detail).
pub fn of_session<D: Database>(db: &D, session_id: &str) -> Result<Vec<Run>, DbError> {
    let sql = format!("{SELECT} WHERE a.session_id = ?1 ORDER BY a.started_at DESC, a.id DESC");
    let rows = db.execute(&sql, &[session_id.into()])?;
    Ok(super::unreadable::collect(db, "agents", 0, rows, from_row))
}

pub fn get<D: Database>(db: &D, id: &RunId) -> Result<Option<Run>, DbError> {
    let sql = format!("{SELECT} WHERE a.id = ?1");
    let rows = db.execute(&sql, &[id.into()])?;
    // An unreadable row is reported and reads as absent (see `store::unreadable`).
    Ok(super::unreadable::collect(db, "agents", 0, rows, from_row).pop())
}

/// The runs that are not final, newest first (the feed's snapshot).
pub fn active<D: Database>(db: &D) -> Result<Vec<Run>, DbError> {
    let sql = format!(
        "{SELECT} WHERE a.status IN ('initializing', 'planning', 'executing', 'reviewing') \
         ORDER BY a.started_at DESC, a.id DESC"
    );
    let rows = db.execute(&sql, &[])?;
    Ok(super::unreadable::collect(db, "agents", 0, rows, from_row))
}

/// Create a run in `initializing`, with its first `state_change` row, atomically.
/// A definition or parent that does not exist is a 422 naming the field.
pub fn create<D: Database>(db: &D, new: NewRun) -> Result<Run, ApiError> {
    // A rerun (see `write_transaction`) starts from the same request.
    write_transaction(db, |db| insert(db, new.clone()))
}

/// [`create`] inside the caller's write transaction (ingest applies a whole delivery in
/// one), so the run's INSERT and first `state_change` row are written in one place.
pub fn insert<D: Database>(db: &D, new: NewRun) -> Result<Run, ApiError> {
    insert_with(db, new, |_, _| Ok(false))
}

/// [`insert`], with `attach` run between the run's INSERT and its first `state_change`
/// row (a dispatch queues the run there); when it says it wrote something, the run is
/// read again, so the first event carries it.
pub fn insert_with<D: Database>(
    db: &D,
    new: NewRun,
    attach: impl FnOnce(&D, &Run) -> Result<bool, ApiError>,
) -> Result<Run, ApiError> {
    let mut definition = db.execute(
        "SELECT name, agent_type FROM orchestrator_agents WHERE id = ?1",
        &[(&new.orchestrator_agent_id).into()],
    )?;
    let Some(mut definition) = definition.first() else {
        return Err(ApiError::validation(
            "orchestrator_agent_id",
            format!(
                "orchestrator_agent_id {} does not exist",
                new.orchestrator_agent_id
            ),
        ));
    };
    let (name, agent_type) = (definition.text(0)?, definition.text(1)?);
    if let Some(parent) = &new.parent_agent_id {
        if !super::exists(db, "agents", parent.as_str())? {
            return Err(ApiError::validation(
                "parent_agent_id",
                format!("parent_agent_id {parent} does not exist"),
            ));
        }
    }
    // One time for the start, the activity and the first state_change row, so the run
    // the feed carries is the run a GET returns.
    let now = now_rfc3339();
    let mut params = vec![
        Id::new_v4().into(),
        (&new.orchestrator_agent_id).into(),
        new.session_id.into(),
        new.parent_agent_id.as_ref().into(),
        new.context.into(),
        new.config.into(),
        now.as_str().into(),
        new.title.into(),
        new.project.into(),
    ];
    let returning = returning(&mut params, Some(&name), Some(&agent_type));
    let sql = format!(
        "INSERT INTO agents (id, orchestrator_agent_id, session_id, parent_agent_id, status, \
         context, config, started_at, last_activity_at, cost_usd, tokens_input, \
         tokens_output, title, project) \
         VALUES (?1, ?2, ?3, ?4, 'initializing', ?5, ?6, ?7, ?7, 0, 0, 0, ?8, ?9) \
         RETURNING {returning}"
    );
    let mut run = super::returned(db.execute(&sql, &params)?, from_row)?;
    if attach(db, &run)? {
        run = get(db, &run.id)?.ok_or_else(|| ApiError::internal("a run just inserted is gone"))?;
    }
    record_state_change(db, None, &run, &now)?;
    Ok(run)
}

/// Apply a PATCH atomically with its `state_change` row. `None` for an unknown id; 409 for
/// leaving a final status. The same status again changes nothing and logs nothing.
pub fn update<D: Database>(
    db: &D,
    id: &RunId,
    changes: RunChanges,
) -> Result<Option<Run>, ApiError> {
    write_transaction(db, |db| {
        let Some(current) = get(db, id)? else {
            return Ok(None);
        };
        let from = current.status;
        let moving_to = status_change(
            &format!("run {id}"),
            from,
            changes.status,
            RunStatus::can_move_to,
        )?;
        apply(db, id, current, from, moving_to, &changes).map(Some)
    })
}

/// Move `current` (now in `from`) to `to`, inside the caller's write transaction (ingest's
/// status moves), with its `state_change` row: the same UPDATE as a PATCH of the status
/// (and of `error_message`, when there is one). The caller has checked the move is legal.
pub fn move_status<D: Database>(
    db: &D,
    current: Run,
    from: RunStatus,
    to: RunStatus,
    error_message: Option<String>,
) -> Result<Run, ApiError> {
    let id = current.id.clone();
    let changes = RunChanges {
        error_message: error_message.map(Some),
        ..RunChanges::default()
    };
    apply(db, &id, current, from, Some(to), &changes)
}

/// Write `changes` (the status already decided: `moving_to`) to the run `current` with one
/// UPDATE, and the `state_change` row of a move. Nothing to change: `current` as it is.
fn apply<D: Database>(
    db: &D,
    id: &RunId,
    current: Run,
    from: RunStatus,
    moving_to: Option<RunStatus>,
    changes: &RunChanges,
) -> Result<Run, ApiError> {
    let now = now_rfc3339();
    let mut update = Update::of(id);
    if let Some(next) = moving_to {
        update.set("status", next.as_str());
        if next.is_final() {
            update.set("completed_at", now.as_str());
        }
    }
    update.set_if("error_message", changes.error_message.clone());
    update.set_if("context", changes.context.clone());
    update.set_if("config", changes.config.clone());
    update.set_if("title", changes.title.clone());
    update.set_if("project", changes.project.clone());
    if update.is_empty() {
        return Ok(current);
    }
    // Any change of the run is activity; its state_change row gets the same time.
    update.set("last_activity_at", now.as_str());
    let returning = returning(
        update.params(),
        current.agent_name.as_deref(),
        current.agent_type.as_deref(),
    );
    let run = super::returned(update.execute(db, "agents", &returning)?, from_row)?;
    if let Some(next) = moving_to {
        record_state_change(db, Some(from), &run, &now)?;
        if next.is_final() {
            // Nobody needs to decide for a run that has ended.
            let why = match next {
                RunStatus::Cancelled => "the run was stopped",
                _ => "the run ended",
            };
            super::approvals::cancel_pending(db, &run.id, why)?;
        }
    }
    Ok(run)
}

/// Fill what a run lacks of its title and project; a column it has keeps its value.
pub fn fill_title_project<D: Database>(
    db: &D,
    id: &RunId,
    title: Option<String>,
    project: Option<String>,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE agents SET title = COALESCE(title, ?2), project = COALESCE(project, ?3) \
         WHERE id = ?1",
        &[id.into(), title.into(), project.into()],
    )?;
    Ok(())
}

/// Delete a run (cascading to its prompts and logs, and its events with them).
pub fn delete<D: Database>(db: &D, id: &RunId) -> Result<bool, DbError> {
    let rows = db.execute(
        "DELETE FROM agents WHERE id = ?1 RETURNING id",
        &[id.into()],
    )?;
    Ok(!rows.is_empty())
}

/// The roll-up of `id`'s tree: the run and every run under it by `parent_agent_id`, any
/// depth (`agents_by_parent`). `UNION` (not `UNION ALL`) keeps a cycle a direct writer
/// made from looping. `None` for an unknown run.
pub fn tree<D: Database>(db: &D, id: &RunId) -> Result<Option<Tree>, DbError> {
    let mut rows = db.execute(
        "WITH RECURSIVE tree (id) AS (\
             SELECT id FROM agents WHERE id = ?1 \
             UNION SELECT c.id FROM agents c JOIN tree t ON c.parent_agent_id = t.id) \
         SELECT count(*), COALESCE(sum(a.cost_usd), 0.0), COALESCE(sum(a.tokens_input), 0), \
                COALESCE(sum(a.tokens_output), 0) \
         FROM tree JOIN agents a ON a.id = tree.id",
        &[id.into()],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let runs = row.int(0)?;
    if runs == 0 {
        return Ok(None);
    }
    Ok(Some(Tree {
        runs,
        cost_usd: row.real(1)?,
        tokens_input: row.int(2)?,
        tokens_output: row.int(3)?,
    }))
}

#[derive(Serialize)]
struct StateChange<'a> {
    from: Option<&'a str>,
    to: &'a str,
    run: &'a Run,
}

/// Write the `state_change` row of a status change: `{"from", "to", "run"}`, `run` being
/// the runtime agent right after the change. Its id is the event's cursor; its time is the
/// change's (`now`), which is the run's `last_activity_at`.
pub(crate) fn record_state_change<D: Database>(
    db: &D,
    from: Option<RunStatus>,
    run: &Run,
    now: &str,
) -> Result<(), ApiError> {
    let details = serde_json::to_string(&StateChange {
        from: from.map(RunStatus::as_str),
        to: run.status.as_str(),
        run,
    })
    .map_err(|e| ApiError::internal(format!("cannot encode state change: {e}")))?;
    let message = match from {
        None => format!("created in {}", run.status),
        Some(from) => format!("{from} → {}", run.status),
    };
    feed_row(db, run, LogType::StateChange, message, details, now)
}

#[derive(Serialize)]
struct CostChange<'a> {
    cost_usd: f64,
    tokens_input: i64,
    tokens_output: i64,
    run: &'a Run,
}

/// Write the `cost_update` row of a change of a run's cost or tokens: `{"cost_usd",
/// "tokens_input", "tokens_output", "run"}`, read after the change. It is an `agent_update`
/// on the feed, so a screen never shows a stale cost. Writers call it once per run per
/// transaction (one delivery, one PATCH), which is what bounds how many events a busy
/// session makes; a run that is gone writes nothing.
pub(crate) fn record_cost_change<D: Database>(db: &D, id: &RunId) -> Result<(), ApiError> {
    let Some(run) = get(db, id)? else {
        return Ok(());
    };
    let details = serde_json::to_string(&CostChange {
        cost_usd: run.cost_usd,
        tokens_input: run.tokens_input,
        tokens_output: run.tokens_output,
        run: &run,
    })
    .map_err(|e| ApiError::internal(format!("cannot encode cost change: {e}")))?;
    let message = format!(
        "cost ${:.6}, tokens {} in, {} out",
        run.cost_usd, run.tokens_input, run.tokens_output
    );
    feed_row(
        db,
        &run,
        LogType::CostUpdate,
        message,
        details,
        &now_rfc3339(),
    )
}

/// One row of the feed: an `agent_logs` row whose `details.run` is the run.
fn feed_row<D: Database>(
    db: &D,
    run: &Run,
    log_type: LogType,
    message: String,
    details: String,
    now: &str,
) -> Result<(), ApiError> {
    super::logs::insert_feed_row(db, &run.id, log_type, &message, &details, now)?;
    Ok(())
}
