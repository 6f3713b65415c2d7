//! `/api/runtime/prompts`.

use super::{created, found, get_by_id, list_page, path_id, Input, Open};
use crate::db::Database;
use crate::domain::{PromptId, PromptStatus, PromptType};
use crate::error::ApiError;
use crate::http::Response;
use crate::store::prompts::{self as store, NewPrompt, PromptChanges, PromptFilter};

pub fn list<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let q = &input.query;
    let filter = PromptFilter {
        agent_id: q.id_filter("agent_id")?,
        status: q.enum_filter("status", PromptStatus::parse, PromptStatus::list)?,
        parent_prompt_id: q.id_filter("parent_prompt_id")?,
    };
    list_page(open, q, |db, page| store::list(db, &filter, page))
}

pub fn create<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&[
        "agent_id",
        "prompt_type",
        "prompt_text",
        "prompt_name",
        "model_used",
    ])?;
    let new = NewPrompt {
        agent_id: body.id("agent_id")?.required("agent_id")?,
        prompt_type: body
            .one_of("prompt_type", PromptType::parse, PromptType::list)?
            .required("prompt_type")?,
        prompt_text: body
            .string("prompt_text", store::MAX_TEXT)?
            .required("prompt_text")?,
        prompt_name: body.string("prompt_name", store::MAX_NAME)?.optional(),
        model_used: body.string("model_used", store::MAX_NAME)?.optional(),
    };
    let prompt = store::create(&open()?, new)?;
    Ok(created(
        format!("/api/runtime/prompts/{}", prompt.id),
        &prompt,
    ))
}

pub fn get<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    get_by_id(open, raw_id, "prompt", |db, id| store::get(db, &id.into()))
}

pub fn update<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&[
        "status",
        "response_text",
        "model_used",
        "tokens_input",
        "tokens_output",
        "cost_usd",
        "latency_ms",
        "error_message",
    ])?;
    let changes = PromptChanges {
        status: body
            .one_of("status", PromptStatus::parse, PromptStatus::list)?
            .not_null("status")?,
        response_text: body.string("response_text", store::MAX_TEXT)?.for_update(),
        model_used: body.string("model_used", store::MAX_NAME)?.for_update(),
        tokens_input: body
            .non_negative_int("tokens_input")?
            .not_null("tokens_input")?,
        tokens_output: body
            .non_negative_int("tokens_output")?
            .not_null("tokens_output")?,
        cost_usd: body.non_negative_number("cost_usd")?.not_null("cost_usd")?,
        latency_ms: body.non_negative_int("latency_ms")?.for_update(),
        error_message: body.string("error_message", store::MAX_TEXT)?.for_update(),
    };
    let id = PromptId::from(path_id(raw_id, "prompt")?);
    found(store::update(&open()?, &id, changes)?, "prompt", raw_id)
}
