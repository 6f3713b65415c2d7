//! The closed sets of the schema (its CHECK constraints), each with its legal transitions
//! where it has any.

/// Declares a string enum: parsing, its text, the full list (for messages and OpenAPI).
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in the contract's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// `"a, b, c"`, for error messages.
            pub fn list() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        /// Serialized as its text, as the API has always written it.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// What an agent definition is for.
    AgentType {
        Planner => "planner",
        Builder => "builder",
        Reviewer => "reviewer",
        Tester => "tester",
        Orchestrator => "orchestrator",
        Utility => "utility",
    }
);

string_enum!(
    /// Where an approval is: a pending one past its `expires_at` reads as expired.
    ApprovalStatus {
        Pending => "pending",
        Allowed => "allowed",
        Denied => "denied",
        Expired => "expired",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// Where a runtime agent is in its life.
    RunStatus {
        Initializing => "initializing",
        Planning => "planning",
        Executing => "executing",
        Reviewing => "reviewing",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    /// completed, failed and cancelled end a run.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// Whether a run may change from `self` to `next` (a different status): any active
    /// status may go anywhere (rework goes back), a final one nowhere.
    pub fn can_move_to(self, next: RunStatus) -> bool {
        self != next && !self.is_final()
    }
}

string_enum!(
    /// The kind of LLM call a prompt records.
    PromptType {
        Adw => "adw",
        Command => "command",
        Followup => "followup",
        Correction => "correction",
        ToolCall => "tool_call",
    }
);

string_enum!(
    /// Where a prompt is in its life.
    PromptStatus {
        Pending => "pending",
        Streaming => "streaming",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl PromptStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PromptStatus::Completed | PromptStatus::Failed | PromptStatus::Cancelled
        )
    }

    /// pending → streaming → a final status, pending straight to a final one; never back
    /// to pending, never out of a final status.
    pub fn can_move_to(self, next: PromptStatus) -> bool {
        self != next && !self.is_final() && next != PromptStatus::Pending
    }
}

string_enum!(
    /// Severity of a log line.
    LogLevel {
        Debug => "DEBUG",
        Info => "INFO",
        Warning => "WARNING",
        Error => "ERROR",
        Critical => "CRITICAL",
    }
);

string_enum!(
    /// What an agent log line records. `state_change` is written by the server only.
    LogType {
        StateChange => "state_change",
        Milestone => "milestone",
        Error => "error",
        Performance => "performance",
        ToolCall => "tool_call",
        CostUpdate => "cost_update",
    }
);

string_enum!(
    /// Which table a log line lives in.
    LogSource {
        Agent => "agent",
        System => "system",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_runs_may_move_anywhere_including_back() {
        assert!(RunStatus::Reviewing.can_move_to(RunStatus::Executing));
        assert!(RunStatus::Initializing.can_move_to(RunStatus::Completed));
    }

    #[test]
    fn final_runs_may_not_move_and_same_status_is_not_a_move() {
        for status in [
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            assert!(status.is_final());
            assert!(!status.can_move_to(RunStatus::Planning));
        }
        assert!(!RunStatus::Planning.can_move_to(RunStatus::Planning));
    }

    #[test]
    fn prompts_never_go_back_to_pending() {
        assert!(PromptStatus::Pending.can_move_to(PromptStatus::Streaming));
        assert!(PromptStatus::Pending.can_move_to(PromptStatus::Cancelled));
        assert!(PromptStatus::Streaming.can_move_to(PromptStatus::Completed));
        assert!(!PromptStatus::Streaming.can_move_to(PromptStatus::Pending));
        assert!(!PromptStatus::Failed.can_move_to(PromptStatus::Completed));
    }

    #[test]
    fn enums_parse_only_their_exact_text() {
        assert_eq!(AgentType::parse("planner"), Some(AgentType::Planner));
        assert_eq!(AgentType::parse("Planner"), None);
        assert_eq!(LogLevel::parse("WARNING"), Some(LogLevel::Warning));
        assert_eq!(
            RunStatus::list(),
            "initializing, planning, executing, reviewing, completed, failed, cancelled"
        );
    }
}
