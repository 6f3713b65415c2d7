//! Ids: UUID v4, lowercase and hyphenated; matched case-insensitively.
//!
//! [`Id`] is an id a client sent, parsed. The typed ids ([`RunId`], [`DefinitionId`],
//! [`PromptId`], [`ApprovalId`]) name which table's row an id belongs to, so a run's id
//! cannot be passed where a prompt's is meant. They come from an [`Id`] or from a stored
//! row as it is: the schema admits any 36 characters, and a row another program wrote
//! must still be readable (and addressable) by its id, UUID or not.

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

/// A canonical (lowercase, hyphenated) UUID string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(String);

impl Id {
    /// A new random (v4) id.
    pub fn new_v4() -> Self {
        Id(Uuid::new_v4().hyphenated().to_string())
    }

    /// Parse a hyphenated UUID in any letter case; other spellings (braces, URN, no
    /// hyphens) are refused so that an id has exactly one accepted form per case.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 36 {
            return None;
        }
        Uuid::try_parse(s)
            .ok()
            .map(|u| Id(u.hyphenated().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id a row holds, as it holds it.
            pub fn stored(text: String) -> Self {
                $name(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<Id> for $name {
            fn from(id: Id) -> Self {
                $name(id.0)
            }
        }

        impl From<&Id> for $name {
            fn from(id: &Id) -> Self {
                $name(id.0.clone())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// A runtime agent's id (`agents.id`).
    RunId
);
typed_id!(
    /// An agent definition's id (`orchestrator_agents.id`).
    DefinitionId
);
typed_id!(
    /// A prompt's id (`prompts.id`).
    PromptId
);
typed_id!(
    /// An approval's id (`approvals.id`).
    ApprovalId
);

#[cfg(test)]
mod tests {
    use super::Id;

    #[test]
    fn an_uppercase_id_is_the_same_id() {
        let id = Id::new_v4();
        assert_eq!(Id::parse(&id.as_str().to_uppercase()), Some(id));
    }

    #[test]
    fn non_uuid_and_unhyphenated_forms_are_refused() {
        assert_eq!(Id::parse("not-a-uuid"), None);
        assert_eq!(Id::parse("67e5504410b1426f9247bb680e5fe0c8"), None);
        assert_eq!(Id::parse("{67e55044-10b1-426f-9247-bb680e5fe0c8}"), None);
    }
}
