//! `/api/agents`: agent definitions.

use super::{created, delete_by_id, found, get_by_id, list_page, path_id, Input, Open};
use crate::db::{autocommit_write, Database};
use crate::domain::{command, AgentName, AgentType, Policy};
use crate::error::ApiError;
use crate::http::{Field, JsonObject, Response};
use crate::store::definitions::{self as store, DefinitionChanges, NewDefinition};

const FIELDS: &[&str] = &[
    "name",
    "description",
    "agent_type",
    "capabilities",
    "default_model",
    "policy",
    "command",
    "working_dir",
    "timeout_secs",
];

fn name(body: &JsonObject) -> Result<Field<AgentName>, ApiError> {
    Ok(match body.string("name", AgentName::MAX_CHARS)? {
        Field::Value(s) => {
            Field::Value(AgentName::parse(s).map_err(|m| ApiError::validation("name", m))?)
        }
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    })
}

/// `policy`, validated (a rule that does not parse is a 422 naming it), as canonical text.
fn policy(body: &JsonObject) -> Result<Field<String>, ApiError> {
    body.parsed("policy", |v| {
        Policy::validate(v, "policy")
            .map(|p| p.to_string())
            .map_err(|e| ApiError::validation(&e.field, e.message))
    })
}

/// `command`: a non-empty argv with known placeholders only.
fn command(body: &JsonObject) -> Result<Field<String>, ApiError> {
    body.parsed("command", |v| {
        command::validate(v)
            .map(|argv| serde_json::json!(argv).to_string())
            .map_err(|(field, message)| ApiError::validation(&field, message))
    })
}

fn timeout_secs(body: &JsonObject) -> Result<Field<i64>, ApiError> {
    body.parsed("timeout_secs", |v| {
        v.as_i64()
            .filter(|n| (1..=store::MAX_TIMEOUT_SECS).contains(n))
            .ok_or_else(|| {
                ApiError::validation(
                    "timeout_secs",
                    format!(
                        "timeout_secs must be a whole number of seconds from 1 to {}",
                        store::MAX_TIMEOUT_SECS
                    ),
                )
            })
    })
}

fn working_dir(body: &JsonObject) -> Result<Field<String>, ApiError> {
    body.non_empty_string("working_dir", store::MAX_WORKING_DIR)
}

fn agent_type(body: &JsonObject) -> Result<Field<AgentType>, ApiError> {
    body.one_of("agent_type", AgentType::parse, AgentType::list)
}

pub fn list<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let q = &input.query;
    let agent_type = q.enum_filter("agent_type", AgentType::parse, AgentType::list)?;
    list_page(open, q, |db, page| store::list(db, agent_type, page))
}

pub fn create<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(FIELDS)?;
    let new = NewDefinition {
        name: name(body)?.required("name")?,
        agent_type: agent_type(body)?.required("agent_type")?,
        description: body
            .string("description", store::MAX_DESCRIPTION)?
            .optional(),
        capabilities: body
            .string_array("capabilities")?
            .optional()
            .unwrap_or_else(|| "[]".into()),
        default_model: body.string("default_model", store::MAX_MODEL)?.optional(),
        policy: policy(body)?.optional(),
        command: command(body)?.optional(),
        working_dir: working_dir(body)?.optional(),
        timeout_secs: timeout_secs(body)?.optional(),
    };
    let db = open()?;
    let definition = autocommit_write(|| store::insert(&db, new.clone()))?;
    Ok(created(
        format!("/api/agents/{}", definition.id),
        &definition,
    ))
}

pub fn get<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    get_by_id(open, raw_id, "agent", |db, id| store::get(db, &id.into()))
}

pub fn update<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(FIELDS)?;
    let changes = DefinitionChanges {
        name: name(body)?.not_null("name")?,
        agent_type: agent_type(body)?.not_null("agent_type")?,
        description: body
            .string("description", store::MAX_DESCRIPTION)?
            .for_update(),
        // `capabilities: null` stores `[]`.
        capabilities: match body.string_array("capabilities")? {
            Field::Absent => None,
            Field::Null => Some("[]".into()),
            Field::Value(v) => Some(v),
        },
        default_model: body.string("default_model", store::MAX_MODEL)?.for_update(),
        policy: policy(body)?.for_update(),
        command: command(body)?.for_update(),
        working_dir: working_dir(body)?.for_update(),
        timeout_secs: timeout_secs(body)?.for_update(),
    };
    let id = path_id(raw_id, "agent")?;
    let db = open()?;
    found(
        autocommit_write(|| store::update(&db, &id, changes.clone()))?,
        "agent",
        raw_id,
    )
}

pub fn delete<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    delete_by_id(open, raw_id, "agent", |db, id| {
        store::delete(db, &id.into())
    })
}
