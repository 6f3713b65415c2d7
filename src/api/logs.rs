//! `/api/runtime/logs`: both log tables, merged on read.

use super::{list_page, Input, Open};
use crate::db::{autocommit_write, Database};
use crate::domain::{LogLevel, LogSource, LogType};
use crate::error::ApiError;
use crate::http::Response;
use crate::store::logs::{self as store, LogFilter, NewLog};

pub fn list<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let q = &input.query;
    let filter = LogFilter {
        source: q.enum_filter("source", LogSource::parse, LogSource::list)?,
        agent_id: q.id_filter("agent_id")?,
        level: q.enum_filter("level", LogLevel::parse, LogLevel::list)?,
        log_type: q.enum_filter("log_type", LogType::parse, LogType::list)?,
    };
    if filter.source == Some(LogSource::System) {
        for param in ["agent_id", "log_type"] {
            if q.get(param).is_some() {
                return Err(ApiError::bad_query(
                    param,
                    format!("{param} filters agent logs; it cannot be used with source=system"),
                ));
            }
        }
    }
    list_page(open, q, |db, page| store::list(db, &filter, page))
}

pub fn create<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let body = input.body()?;
    let source = body
        .one_of("source", LogSource::parse, LogSource::list)?
        .required("source")?;
    let level = body
        .one_of("log_level", LogLevel::parse, LogLevel::list)?
        .not_null("log_level")?
        .unwrap_or(LogLevel::Info);
    let new = match source {
        LogSource::Agent => {
            body.only(&[
                "source",
                "agent_id",
                "log_type",
                "message",
                "log_level",
                "details",
            ])?;
            let agent_id = body.id("agent_id")?.required("agent_id")?;
            let log_type = body
                .one_of("log_type", LogType::parse, LogType::list)?
                .required("log_type")?;
            if log_type == LogType::StateChange {
                return Err(ApiError::validation(
                    "log_type",
                    "log_type state_change is reserved for the server's status changes",
                ));
            }
            NewLog::Agent {
                agent_id,
                log_type,
                level,
                message: body
                    .string("message", store::MAX_MESSAGE)?
                    .required("message")?,
                details: body.any_json("details")?.optional(),
            }
        }
        LogSource::System => {
            body.only(&["source", "component", "message", "log_level", "details"])?;
            NewLog::System {
                component: body
                    .non_empty_string("component", store::MAX_COMPONENT)?
                    .required("component")?,
                level,
                message: body
                    .string("message", store::MAX_MESSAGE)?
                    .required("message")?,
                details: body.any_json("details")?.optional(),
            }
        }
    };
    let db = open()?;
    let log = autocommit_write(|| store::insert(&db, new.clone()))?;
    Ok(Response::json(201, &log))
}
