//! `bench-http`'s table: one row per endpoint, the host's and the native server's
//! figures side by side, as Markdown.

use crate::load::Stats;

/// One endpoint's label and, per server, its stats.
pub type Row = (&'static str, Vec<(&'static str, Stats)>);

pub fn print_table(rows: &[Row]) {
    let mut lines: Vec<Vec<String>> = vec![vec![
        "endpoint".into(),
        "host req/s".into(),
        "p50 ms".into(),
        "p99 ms".into(),
        "cpu us/req".into(),
        "native req/s".into(),
        "p50 ms".into(),
        "p99 ms".into(),
        "cpu us/req".into(),
        "host/native".into(),
        "non-2xx h/n".into(),
    ]];
    let dash = || "-".to_string();
    for (label, results) in rows {
        let get = |name: &str| results.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
        let cells = |s: Option<&Stats>| match s {
            Some(s) => vec![
                format!("{:.0}", s.rps()),
                format!("{:.2}", s.percentile_ms(50.0)),
                format!("{:.2}", s.percentile_ms(99.0)),
                format!("{:.0}", s.cpu_us_per_request()),
            ],
            None => vec![dash(), dash(), dash(), dash()],
        };
        let host = get("host");
        let native = get("native");
        let mut line = vec![label.to_string()];
        line.extend(cells(host));
        line.extend(cells(native));
        line.push(match (host, native) {
            (Some(h), Some(n)) => format!("{:.2}", h.rps() / n.rps().max(1e-9)),
            _ => dash(),
        });
        let errs = |s: Option<&Stats>| {
            s.map_or_else(dash, |s| {
                if s.errors > 0 {
                    format!("{}+{}err", s.non_2xx, s.errors)
                } else {
                    s.non_2xx.to_string()
                }
            })
        };
        line.push(format!("{}/{}", errs(host), errs(native)));
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        println!("| {} |", cells.join(" | "));
        if i == 0 {
            let seps: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    if c == 0 {
                        "-".repeat(w + 2)
                    } else {
                        format!("{}:", "-".repeat(w + 1))
                    }
                })
                .collect();
            println!("|{}|", seps.join("|"));
        }
    }
}
