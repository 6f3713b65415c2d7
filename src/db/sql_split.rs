//! Split a migration file into single statements: the Spin binding executes exactly one
//! statement per call.

/// Split SQL text on `;` outside string literals, quoted identifiers and comments.
/// Empty statements (and comment-only ones) are dropped. A `CREATE TRIGGER` runs to the
/// `;` that follows its closing `END` (the `;`s of its body stay inside it), so a
/// statement in a trigger body must not itself end with a `CASE … END`.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    let mut has_code = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                current.push(c);
                has_code = true;
                for q in chars.by_ref() {
                    current.push(q);
                    if q == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                // Line comment: skip to the end of the line.
                for q in chars.by_ref() {
                    if q == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            ';' if is_open_trigger(&current) => current.push(c),
            ';' => {
                if has_code {
                    statements.push(current.trim().to_owned());
                }
                current.clear();
                has_code = false;
            }
            _ => {
                if !c.is_whitespace() {
                    has_code = true;
                }
                current.push(c);
            }
        }
    }
    if has_code {
        statements.push(current.trim().to_owned());
    }
    statements
}

/// Whether `statement` (so far) is a `CREATE [TEMP] TRIGGER` whose body has not ended.
fn is_open_trigger(statement: &str) -> bool {
    let mut words = statement.split_whitespace().map(str::to_ascii_uppercase);
    if words.next().as_deref() != Some("CREATE") {
        return false;
    }
    let is_trigger = match words.next().as_deref() {
        Some("TRIGGER") => true,
        Some("TEMP" | "TEMPORARY") => words.next().as_deref() == Some("TRIGGER"),
        _ => false,
    };
    let ended = statement
        .split_whitespace()
        .last()
        .is_some_and(|w| w.eq_ignore_ascii_case("END"));
    is_trigger && !ended
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn statements_split_on_semicolons_outside_strings_and_comments() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE t (x TEXT CHECK (x <> ';'));\n\nINSERT INTO t VALUES ('a;b');  -- trailing\n";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TABLE t (x TEXT CHECK (x <> ';'))".to_owned(),
                "INSERT INTO t VALUES ('a;b')".to_owned(),
            ]
        );
    }

    #[test]
    fn a_trigger_is_one_statement_up_to_its_end() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET x = 1;\n  UPDATE c SET y = ';';\nEND;\ncreate temp trigger u after delete on a begin delete from b; end;\nSELECT 1;";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET x = 1;\n  UPDATE c SET y = ';';\nEND".to_owned(),
                "create temp trigger u after delete on a begin delete from b; end".to_owned(),
                "SELECT 1".to_owned(),
            ]
        );
    }

    #[test]
    fn a_file_of_only_comments_has_no_statements() {
        assert!(split_statements("-- nothing\n  \n").is_empty());
    }
}
