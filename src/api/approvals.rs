//! `/api/approvals`: tool calls that wait for a person, and their decisions; and
//! `POST /api/runtime/agents/{id}/messages`, a person's follow-up to a running agent.

use super::{created, get_by_id, list_page, path_id, Input, Open};
use crate::db::{write_transaction, Database};
use crate::error::ApiError;
use crate::http::Response;
use crate::store::approvals::{self as store, ApprovalFilter};
use crate::store::{prompts, runs};

const STATUSES: &[&str] = &["pending", "allowed", "denied", "expired", "cancelled"];

/// The longest follow-up, in characters.
pub const MAX_FOLLOW_UP: usize = 100_000;

pub fn list<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let q = &input.query;
    let filter = ApprovalFilter {
        status: q
            .enum_filter(
                "status",
                |s| STATUSES.iter().find(|t| **t == s).map(|t| (*t).to_owned()),
                || STATUSES.join(", "),
            )?,
        run_id: q.id_filter("run_id")?.map(|id| id.as_str().to_owned()),
        session_id: q.text_filter("session_id")?,
    };
    list_page(open, q, |db, page| store::list(db, &filter, page))
}

pub fn get<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    get_by_id(open, raw_id, "approval", |db, id| store::get(db, id.as_str()))
}

/// `POST /api/approvals/{id}/decision {"behavior", "message"?, "scope"?}`: 200 with the
/// approval as decided; 409 when it is no longer pending (someone decided first, it expired
/// or its run ended): exactly one decision wins.
pub fn decide<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["behavior", "message", "scope"])?;
    let status = body
        .one_of(
            "behavior",
            |b| match b {
                "allow" => Some("allowed"),
                "deny" => Some("denied"),
                _ => None,
            },
            || "allow, deny".into(),
        )?
        .required("behavior")?;
    let message = body.string("message", store::MAX_MESSAGE)?.optional();
    let scope = body
        .one_of(
            "scope",
            |s| ["once", "session"].into_iter().find(|t| *t == s),
            || "once, session".into(),
        )?
        .optional()
        .unwrap_or("once");
    let id = path_id(raw_id, "approval")?;
    let db = open()?;
    let decided = write_transaction(&db, |db| {
        let Some(current) = store::get(db, id.as_str())? else {
            return Err(super::not_found("approval", raw_id));
        };
        if !current.is_pending() {
            return Err(ApiError::conflict(format!(
                "approval {raw_id} is no longer pending: it is {}",
                current.status
            ))
            .with_details(serde_json::json!({ "status": current.status })));
        }
        match store::decide(db, id.as_str(), status, message.as_deref(), Some(scope))? {
            Some(approval) => Ok(approval),
            None => Err(ApiError::conflict(format!(
                "approval {raw_id} is no longer pending"
            ))),
        }
    })?;
    Ok(Response::json(200, &decided))
}

/// `POST /api/runtime/agents/{id}/messages {"text"}`: 201, a pending `followup` prompt,
/// delivered at the session's next Stop; 409 when the run is final.
pub fn follow_up<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["text"])?;
    let text = body
        .non_empty_string("text", MAX_FOLLOW_UP)?
        .required("text")?;
    let id = path_id(raw_id, "runtime agent")?;
    let db = open()?;
    let prompt = write_transaction(&db, |db| {
        let Some(run) = runs::get(db, &id)? else {
            return Err(super::not_found("runtime agent", raw_id));
        };
        if run.status.is_final() {
            return Err(ApiError::conflict(format!(
                "runtime agent {raw_id} is {}: a final run takes no follow-up",
                run.status.as_str()
            )));
        }
        prompts::insert_followup(db, &id, &text)
    })?;
    Ok(created(
        format!("/api/runtime/prompts/{}", prompt.id),
        &prompt,
    ))
}
