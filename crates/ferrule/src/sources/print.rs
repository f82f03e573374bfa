//! `--print-config`: every option's value and where it came from, written as a TOML config
//! file would set it (so the output can be kept as one).
use std::any::TypeId;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

use super::Origin;

/// Options never printed: the actions themselves.
const SKIP: [&str; 5] = [
    "help",
    "version",
    "print_config",
    "check_config",
    "print_reference",
];
/// Options printed masked.
const SECRET: [&str; 1] = ["keyfile_password"];

/// One option: its name as a file sets it, its value as TOML (None: not set), its source.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub value: Option<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub lines: Vec<Line>,
}

impl Report {
    /// The options in `matches` (the final command line), with the sources in `origins`.
    pub fn new(cmd: &Command, matches: &ArgMatches, origins: &BTreeMap<String, Origin>) -> Self {
        let mut lines = Vec::new();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if SKIP.contains(&id) {
                continue;
            }
            let name = arg
                .get_long()
                .map_or_else(|| id.to_owned(), |l| l.replace('-', "_"));
            let origin = origins.get(id).cloned().unwrap_or_else(|| {
                match (matches.value_source(id), arg.get_env()) {
                    (Some(ValueSource::EnvVariable), Some(var)) => {
                        Origin::DefaultEnv(var.to_string_lossy().into_owned())
                    }
                    _ => Origin::Default,
                }
            });
            let raw: Vec<String> = matches
                .get_raw(id)
                .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let numeric = [
                TypeId::of::<u8>(),
                TypeId::of::<u32>(),
                TypeId::of::<u64>(),
                TypeId::of::<usize>(),
            ]
            .into_iter()
            .any(|t| arg.get_value_parser().type_id() == t);
            let value = match arg.get_action() {
                ArgAction::SetTrue => Some(matches.get_flag(id).to_string()),
                ArgAction::Append => Some(format!(
                    "[{}]",
                    raw.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
                )),
                _ if SECRET.contains(&id) && !raw.is_empty() => Some(quote("***")),
                _ => raw
                    .last()
                    .map(|v| if numeric { v.clone() } else { quote(v) }),
            };
            lines.push(Line {
                name,
                value,
                origin,
            });
        }
        Self { lines }
    }

    /// The report as text: `name = value  # source`, unset options as comments.
    #[must_use]
    pub fn render(&self) -> String {
        let width = self
            .lines
            .iter()
            .map(|l| l.name.len() + 3 + l.value.as_deref().map_or(0, str::len))
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for l in &self.lines {
            let set = match &l.value {
                Some(v) => format!("{} = {v}", l.name),
                None => format!("# {} (not set)", l.name),
            };
            let _ = writeln!(out, "{set:width$}  # {}", l.origin);
        }
        out
    }

    /// The source of option `name` (as a file names it), if set by one.
    #[must_use]
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.lines
            .iter()
            .find(|l| l.name == name)
            .map(|l| &l.origin)
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
