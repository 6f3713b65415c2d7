//! Domain types that can only exist valid: parse once at the edge, trust afterwards.

pub mod command;
pub mod enums;
pub mod id;
pub mod name;
pub mod page;
pub mod policy;
pub mod rule;
pub mod text;
pub mod time;

pub use enums::{
    AgentType, ApprovalStatus, LogLevel, LogSource, LogType, PromptStatus, PromptType, RunStatus,
};
pub use id::{ApprovalId, DefinitionId, Id, PromptId, RunId};
pub use name::AgentName;
pub use page::{Page, PageError};
pub use policy::Policy;
pub use rule::Rule;
