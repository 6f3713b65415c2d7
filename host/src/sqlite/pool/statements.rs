//! What a statement may do to its connection, read from its text: whether it leaves
//! connection state a later statement could see (then a lease keeps writing on its own
//! connection), and whether it starts with a keyword.

/// Whether `statement` may leave state on its connection that a later statement could
/// see: a `PRAGMA` other than those that only read or set the database itself and the
/// two a lease carries over (`foreign_keys`, `busy_timeout`), `ATTACH`/`DETACH`, or
/// anything naming a temporary object (`TEMP`, `TEMPORARY`, `temp.`), anywhere in a
/// script. Errs on the side of yes (a word in a string literal counts): a false yes only
/// keeps a lease on its own connection.
pub fn changes_connection_state(statement: &str) -> bool {
    const DATABASE_PRAGMAS: &[&str] = &[
        "user_version",
        "foreign_keys",
        "busy_timeout",
        "journal_mode",
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "schema_version",
        "data_version",
        "page_count",
        "freelist_count",
    ];
    let mut words = statement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty());
    while let Some(word) = words.next() {
        let is = |keyword: &str| word.eq_ignore_ascii_case(keyword);
        if is("pragma") {
            let name = words.next().unwrap_or("");
            if !DATABASE_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(name))
            {
                return true;
            }
        } else if is("attach") || is("detach") || is("temp") || is("temporary") {
            return true;
        }
    }
    false
}

/// Whether the first word of `statement` is `keyword` (ASCII, any case). A statement
/// that starts with `SELECT` only reads (a write would start with `INSERT`, `WITH`…).
pub(super) fn starts_with_keyword(statement: &str, keyword: &str) -> bool {
    let s = statement.trim_start().as_bytes();
    s.len() >= keyword.len()
        && s[..keyword.len()].eq_ignore_ascii_case(keyword.as_bytes())
        && s.get(keyword.len())
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
}
