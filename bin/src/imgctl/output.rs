//! Tables for people, the API's answers as JSON or YAML for scripts.

use serde_json::Value;

/// Prints `rows` under `headers` (unless `no_headers`) in columns two spaces apart; the last column is
/// not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>], no_headers: bool) {
    print!("{}", render(headers, rows, no_headers));
}

fn render(headers: &[&str], rows: &[Vec<String>], no_headers: bool) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| if no_headers { 0 } else { h.chars().count() }).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < widths.len() {
                text.extend(std::iter::repeat_n(' ', widths[i].saturating_sub(cell.chars().count())));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    if !no_headers {
        line(&mut headers.iter().copied());
    }
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Prints one document, pretty: JSON, or YAML when `yaml`.
pub fn document(value: &Value, yaml: bool) {
    print!("{}", render_document(value, yaml));
}

fn render_document(value: &Value, yaml: bool) -> String {
    let json = || serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()) + "\n";
    if yaml {
        // A JSON value always has a YAML form; should the writer fail all the same, JSON is valid YAML.
        serde_norway::to_string(value).unwrap_or_else(|_| json())
    } else {
        json()
    }
}

/// An optional cell: `-` when empty.
pub fn cell(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned()
}

/// `142MB`, decimal units as `docker images` prints them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_on_the_widest_cell_and_headers_can_be_left_out() {
        let rows = vec![vec!["1".to_owned(), "docker.io/library/redis".to_owned(), "x".to_owned()]];
        assert_eq!(
            render(&["ID", "IMAGE", "STATUS"], &rows, false),
            "ID  IMAGE                    STATUS\n1   docker.io/library/redis  x\n"
        );
        assert_eq!(render(&["ID", "IMAGE", "STATUS"], &rows, true), "1  docker.io/library/redis  x\n");
    }

    #[test]
    fn yaml_keeps_the_json_document() {
        let value: Value = serde_json::from_str(r#"{"b": [1, "two", null], "a": {"x": true, "y": "3"}}"#).unwrap();
        let yaml = render_document(&value, true);
        assert_eq!(yaml, "b:\n- 1\n- two\n- null\na:\n  x: true\n  y: '3'\n");
        assert_eq!(serde_norway::from_str::<Value>(&yaml).unwrap(), value);
        assert_eq!(render_document(&value, false), serde_json::to_string_pretty(&value).unwrap() + "\n");
    }

    #[test]
    fn sizes_are_decimal() {
        assert_eq!(
            (size(0), size(999), size(3331), size(142_000_000)),
            ("0B".into(), "999B".into(), "3.3kB".into(), "142MB".into())
        );
    }
}
