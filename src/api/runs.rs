//! `/api/runtime/agents` and `/api/runtime/stats`.

use super::{created, delete_by_id, found, get_by_id, list_page, path_id, Input, Open};
use crate::db::Database;
use crate::domain::{time::parse_rfc3339, RunStatus};
use crate::error::ApiError;
use crate::http::{Field, Response};
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
    list_page(open, q, |db, page| store::list(db, &filter, page))
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
    ])?;
    let new = NewRun {
        orchestrator_agent_id: body
            .id("orchestrator_agent_id")?
            .required("orchestrator_agent_id")?,
        session_id: body
            .non_empty_string("session_id", store::MAX_SESSION_ID)?
            .required("session_id")?,
        parent_agent_id: body.id("parent_agent_id")?.optional(),
        // `null` or absent stores an empty object, as `capabilities: null` stores `[]`.
        context: body
            .object("context")?
            .optional()
            .unwrap_or_else(|| "{}".into()),
        config: body
            .object("config")?
            .optional()
            .unwrap_or_else(|| "{}".into()),
        title: body.string("title", store::MAX_TITLE)?.optional(),
        project: body.string("project", store::MAX_PROJECT)?.optional(),
    };
    let run = store::create(&open()?, new)?;
    Ok(created(format!("/api/runtime/agents/{}", run.id), &run))
}

pub fn get<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    get_by_id(open, raw_id, "runtime agent", store::get)
}

pub fn update<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["status", "error_message", "context", "title", "project"])?;
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
        title: body.string("title", store::MAX_TITLE)?.for_update(),
        project: body.string("project", store::MAX_PROJECT)?.for_update(),
    };
    let id = path_id(raw_id, "runtime agent")?;
    found(
        store::update(&open()?, &id, changes)?,
        "runtime agent",
        raw_id,
    )
}

pub fn delete<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    delete_by_id(open, raw_id, "runtime agent", store::delete)
}

pub fn stats<D: Database>(open: impl Open<D>) -> Result<Response, ApiError> {
    Ok(Response::json(200, &stats::read(&open()?)?))
}
