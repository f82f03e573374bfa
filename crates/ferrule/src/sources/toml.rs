//! TOML sources: a `-c FILE.toml` (settings at the top level) and `[tool.ferrule]` in
//! pyproject.toml. Keys are the long options with `_` or `-`, or gunicorn's setting names;
//! a table (`secure_scheme_headers = { ... }`) is a dict.
use std::path::Path;

use toml_edit::{Document, Item, TableLike};

use super::{Origin, Setting, Value};

/// The settings in `path`; an error names the file, the line and the key.
pub fn read(path: &Path) -> Result<Vec<Setting>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("config file {shown}: {e}"))?;
    let doc = Document::parse(text.as_str()).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(&text, s.start));
        format!("{shown}:{line}: not valid TOML: {}", e.message())
    })?;
    let is_pyproject = path.file_name().is_some_and(|n| n == "pyproject.toml");
    let table: &dyn TableLike = if is_pyproject {
        match doc.get("tool").and_then(|t| t.get("ferrule")) {
            Some(item) => item
                .as_table_like()
                .ok_or_else(|| format!("{shown}: [tool.ferrule] must be a table"))?,
            None => return Ok(Vec::new()),
        }
    } else {
        doc.as_table()
    };
    let mut out = Vec::new();
    for (key, item) in table.iter() {
        let span = table
            .key(key)
            .and_then(toml_edit::Key::span)
            .or_else(|| item.span());
        let line = span.map(|s| line_of(&text, s.start));
        let value = value_of(item).map_err(|msg| match line {
            Some(n) => format!("{shown}:{n}: {key}: {msg}"),
            None => format!("{shown}: {key}: {msg}"),
        })?;
        out.push(Setting {
            key: key.to_owned(),
            value,
            origin: Origin::File {
                path: path.to_path_buf(),
                line,
            },
        });
    }
    Ok(out)
}

/// The 1-based line holding byte `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at)
        .map_or(0, |before| before.bytes().filter(|&b| b == b'\n').count())
        + 1
}

fn value_of(item: &Item) -> Result<Value, String> {
    if let Some(table) = item.as_table_like() {
        return table
            .iter()
            .map(|(k, v)| match v.as_value().and_then(scalar) {
                Some(s) => Ok((k.to_owned(), s)),
                None => Err(format!("the table's {k} must be a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Dict);
    }
    let Some(value) = item.as_value() else {
        return Err(format!("cannot be {}", item.type_name()));
    };
    Ok(match value {
        toml_edit::Value::String(s) => Value::Str(s.value().clone()),
        toml_edit::Value::Integer(n) => Value::Int(*n.value()),
        toml_edit::Value::Boolean(b) => Value::Bool(*b.value()),
        toml_edit::Value::Float(f) => Value::Str(f.value().to_string()),
        toml_edit::Value::Array(a) => Value::List(
            a.iter()
                .map(|v| {
                    scalar(v).ok_or_else(|| "a list may hold strings and numbers only".to_owned())
                })
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("cannot be {}", other.type_name())),
    })
}

/// A string or number as text.
fn scalar(v: &toml_edit::Value) -> Option<String> {
    match v {
        toml_edit::Value::String(s) => Some(s.value().clone()),
        toml_edit::Value::Integer(n) => Some(n.value().to_string()),
        toml_edit::Value::Float(f) => Some(f.value().to_string()),
        _ => None,
    }
}
