//! Split a migration file into single statements: the Spin binding executes exactly one
//! statement per call.

/// Split SQL text on `;` outside string literals, quoted identifiers and comments.
/// Empty statements (and comment-only ones) are dropped. Triggers (`BEGIN … END;`) are not
/// supported: the migrations don't use them.
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
    fn a_file_of_only_comments_has_no_statements() {
        assert!(split_statements("-- nothing\n  \n").is_empty());
    }
}
