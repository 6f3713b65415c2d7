//! `/api/runtime/agents` and `/api/runtime/stats`.

use serde_json::Value as Json;

use super::{created, delete_by_id, found, path_id, Input, Open};
use crate::db::{write_transaction, Database};
use crate::domain::{time::parse_rfc3339, Id, Page, RunId, RunStatus};
use crate::error::ApiError;
use crate::http::{Field, Response};
use crate::store::dispatches;
use crate::store::runs::{self as store, NewRun, RunChanges, RunFilter};
use crate::store::stats;

pub fn list<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let q = &input.query;
    let filter = RunFilter {
        status: q.enum_filter("status", RunStatus::parse, RunStatus::list)?,
        session_id: q.text_filter("session_id")?,
        orchestrator_agent_id: q.id_filter("orchestrator_agent_id")?,
        // An empty search box searches for nothing in particular: all runs.
        q: q.get("q").filter(|text| !text.is_empty()).map(str::to_owned),
        since: match q.get("since") {
            None => None,
            Some(raw) => Some(parse_rfc3339(raw).ok_or_else(|| {
                ApiError::bad_query(
                    "since",
                    format!("since must be an RFC 3339 time such as 2026-11-25T16:37:48.123Z (got {raw:?})"),
                )
            })?),
        },
    };
    let page = Page::parse(q.get("limit"), q.get("offset"))?;
    let db = open()?;
    // Leases that passed are noticed by readers too (a Spin component has no timer).
    dispatches::expire_leases(&db)?;
    Ok(Response::json(200, &store::list(&db, &filter, page)?))
}

pub fn create<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&[
        "orchestrator_agent_id",
        "session_id",
        "parent_agent_id",
        "context",
        "config",
        "title",
        "project",
        "dispatch",
    ])?;
    let dispatch = super::runner::field(body, "dispatch", dispatch_input)?;
    let new = NewRun {
        orchestrator_agent_id: body
            .id("orchestrator_agent_id")?
            .required("orchestrator_agent_id")?
            .into(),
        // A dispatched run may leave its session to the server: a fresh one.
        session_id: match (
            body.non_empty_string("session_id", store::MAX_SESSION_ID)?,
            &dispatch,
        ) {
            (Field::Value(session), _) => session,
            (session, Some(_)) if session.is_absent() => Id::new_v4().into_string(),
            (session, _) => session.required("session_id")?,
        },
        parent_agent_id: body.id("parent_agent_id")?.optional().map(RunId::from),
        // `null` or absent stores an empty object, as `capabilities: null` stores `[]`.
        context: body
            .object("context")?
            .optional()
            .unwrap_or_else(|| "{}".into()),
        config: run_config(body)?.unwrap_or_else(|| "{}".into()),
        title: body.string("title", store::MAX_TITLE)?.optional(),
        project: body.string("project", store::MAX_PROJECT)?.optional(),
    };
    let db = open()?;
    let run = match dispatch {
        None => store::create(&db, new)?,
        Some(input) => write_transaction(&db, |db| {
            let command = dispatches::command_of(db, &new.orchestrator_agent_id)?;
            // Unless the client said otherwise, a dispatched run is named by its input and
            // works in its command's folder, as a Claude Code session is named by its first
            // prompt and its cwd.
            let mut new = new.clone();
            if new.title.is_none() {
                new.title = crate::ingest::sink::title(&input);
            }
            if new.project.is_none() {
                new.project = command.working_dir.clone();
            }
            store::insert_with(db, new, |db, run| {
                dispatches::queue(db, run, &command, &input)?;
                Ok(true)
            })
        })?,
    };
    Ok(created(format!("/api/runtime/agents/{}", run.id), &run))
}

/// `dispatch: {"input"}`: the input as a string (absent or null: empty).
fn dispatch_input(value: &Json) -> Result<String, ApiError> {
    let Json::Object(fields) = value else {
        return Err(ApiError::validation(
            "dispatch",
            "dispatch must be an object {\"input\": \"…\"}",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| k.as_str() != "input") {
        return Err(ApiError::validation(
            &format!("dispatch.{unknown}"),
            format!("dispatch.{unknown} is not an accepted field; accepted: input"),
        ));
    }
    match fields.get("input") {
        None | Some(Json::Null) => Ok(String::new()),
        Some(Json::String(s)) if s.chars().count() <= dispatches::MAX_INPUT => Ok(s.clone()),
        Some(Json::String(_)) => Err(ApiError::validation(
            "dispatch.input",
            format!(
                "dispatch.input must be at most {} characters",
                dispatches::MAX_INPUT
            ),
        )),
        Some(_) => Err(ApiError::validation(
            "dispatch.input",
            "dispatch.input must be a string",
        )),
    }
}

/// A run, with its tree's roll-up (`tree`: the run and every run under it).
pub fn get<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    let id = RunId::from(path_id(raw_id, "runtime agent")?);
    let db = open()?;
    dispatches::expire_leases(&db)?;
    let run = match store::get(&db, &id)? {
        Some(mut run) => {
            run.tree = store::tree(&db, &id)?;
            Some(run)
        }
        None => None,
    };
    found(run, "runtime agent", raw_id)
}

pub fn update<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&[
        "status",
        "error_message",
        "context",
        "config",
        "title",
        "project",
    ])?;
    let changes = RunChanges {
        status: body
            .one_of("status", RunStatus::parse, RunStatus::list)?
            .not_null("status")?,
        error_message: body
            .string("error_message", store::MAX_ERROR_MESSAGE)?
            .for_update(),
        context: match body.object("context")? {
            Field::Absent => None,
            Field::Null => Some("{}".into()),
            Field::Value(v) => Some(v),
        },
        config: if body.contains("config") {
            Some(run_config(body)?.unwrap_or_else(|| "{}".into()))
        } else {
            None
        },
        title: body.string("title", store::MAX_TITLE)?.for_update(),
        project: body.string("project", store::MAX_PROJECT)?.for_update(),
    };
    let id = RunId::from(path_id(raw_id, "runtime agent")?);
    found(
        store::update(&open()?, &id, changes)?,
        "runtime agent",
        raw_id,
    )
}

/// A run's `config` (an object; `null` or absent: none), with its `policy`, when it has one,
/// validated as a definition's is (a rule that does not parse is a 422 naming it).
fn run_config(body: &crate::http::JsonObject) -> Result<Option<String>, ApiError> {
    body.parsed("config", |v| {
        let Json::Object(fields) = v else {
            return Err(ApiError::validation(
                "config",
                "config must be a JSON object",
            ));
        };
        let mut fields = fields.clone();
        if let Some(policy) = fields.get("policy").filter(|p| !p.is_null()) {
            let canonical = crate::domain::Policy::validate(policy, "config.policy")
                .map_err(|e| ApiError::validation(&e.field, e.message))?;
            fields.insert("policy".into(), canonical);
        }
        Ok(Json::Object(fields).to_string())
    })
    .map(Field::optional)
}

pub fn delete<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    delete_by_id(open, raw_id, "runtime agent", |db, id| {
        store::delete(db, &id.into())
    })
}

pub fn stats<D: Database>(open: impl Open<D>) -> Result<Response, ApiError> {
    Ok(Response::json(200, &stats::read(&open()?)?))
}
