//! Settings become command-line words: each checked on its own (so that an error names its key
//! and source), the highest source's winning for each option.
use std::collections::{BTreeMap, BTreeSet};

use clap::{Arg, ArgAction, Command};

use super::gunicorn::{self, Apply};
use super::{LoadError, Origin, Setting, Value};

/// Options whose one value is a comma-separated list: a list in a file is joined with commas.
const COMMA_LISTS: [&str; 4] = [
    "forwarded-allow-ips",
    "proxy-allow-from",
    "pythonpath",
    "ciphers",
];

/// What the sources add up to.
pub struct Merged {
    /// The winning settings as command-line words (`--long=value`, `--flag`, then the app).
    pub words: Vec<String>,
    /// The source of each option set (by clap id; `app` for the app).
    pub origins: BTreeMap<String, Origin>,
    pub warnings: Vec<String>,
}

/// A key as the options are named in files: `_` for `-`.
pub fn normalize(key: &str) -> String {
    key.trim_start_matches("--").replace('-', "_")
}

/// The first line of clap's message, without `error: `.
pub fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.trim_start_matches("error: ").trim_end().to_owned()
}

/// The Ferrule option a key names.
fn find_option<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    let key = normalize(key);
    cmd.get_arguments().find(|a| {
        !a.is_hide_set()
            && a.get_long()
                .is_some_and(|l| l != "help" && l != "version" && l.replace('-', "_") == key)
    })
}

/// `true`/`false` as written in an environment variable or a file.
pub fn boolish(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// The words that set `arg` to `value`, checked by clap.
fn option_words(cmd: &Command, arg: &Arg, value: &Value) -> Result<Vec<String>, String> {
    let long = arg.get_long().unwrap_or_default();
    let flag = format!("--{long}");
    let words = match (arg.get_action(), value) {
        (ArgAction::SetTrue, Value::Bool(b)) => flag_words(&flag, *b),
        (ArgAction::SetTrue, Value::Int(n @ (0 | 1))) => flag_words(&flag, *n == 1),
        (ArgAction::SetTrue, Value::Str(s)) => match boolish(s) {
            Some(b) => flag_words(&flag, b),
            None => return Err(format!("{s:?} is not true or false")),
        },
        (ArgAction::SetTrue, v) => return Err(format!("must be true or false, not {}", v.kind())),
        (ArgAction::Append, Value::Str(s)) => vec![format!("{flag}={s}")],
        (ArgAction::Append, Value::Int(n)) => vec![format!("{flag}={n}")],
        (ArgAction::Append, Value::List(v)) => v.iter().map(|s| format!("{flag}={s}")).collect(),
        (ArgAction::Append, v) => {
            return Err(format!(
                "takes a string or a list of strings, not {}",
                v.kind()
            ))
        }
        // A file's `umask = 0o022` is a number; --umask reads octal digits.
        (_, Value::Int(n)) if long == "umask" => vec![format!("{flag}={n:o}")],
        (_, Value::Str(s)) => vec![format!("{flag}={s}")],
        (_, Value::Int(n)) => vec![format!("{flag}={n}")],
        (_, Value::List(v)) if COMMA_LISTS.contains(&long) => {
            vec![format!("{flag}={}", v.join(","))]
        }
        (_, Value::List(v)) if v.len() == 1 => vec![format!("{flag}={}", v[0])],
        (_, v) => return Err(format!("takes one value, not {}", v.kind())),
    };
    // `--opt=value`, so that a value starting with `-` is not read as an option.
    cmd.clone()
        .try_get_matches_from(std::iter::once("ferrule".to_owned()).chain(words.iter().cloned()))
        .map_err(|e| first_line(&e))?;
    Ok(words)
}

fn flag_words(flag: &str, on: bool) -> Vec<String> {
    if on {
        vec![flag.to_owned()]
    } else {
        Vec::new()
    }
}

/// Merges the layers (lowest first): each setting checked, the last one for an option wins.
/// Every problem is reported, one line each.
pub fn merge(cmd: &Command, layers: &[Vec<Setting>]) -> Result<Merged, LoadError> {
    let mut winners: BTreeMap<String, (Vec<String>, Origin)> = BTreeMap::new();
    let mut app: Option<(String, Origin)> = None;
    let mut errors = Vec::new();
    let mut warned = BTreeSet::new();
    let mut warnings = Vec::new();
    for s in layers.iter().flatten() {
        let key = normalize(&s.key);
        let in_file = matches!(s.origin, Origin::File { .. });
        if key == "app" || key == "wsgi_app" {
            match &s.value {
                Value::Str(a) => app = Some((a.clone(), s.origin.clone())),
                v => errors.push(format!(
                    "{}: {}: give the app as a string, not {}",
                    s.origin,
                    s.key,
                    v.kind()
                )),
            }
            continue;
        }
        if key == "config" && in_file {
            errors.push(format!(
                "{}: config: name the config file with -c or FERRULE_CONFIG, not inside one",
                s.origin
            ));
            continue;
        }
        let (arg, value) = if let Some(arg) = find_option(cmd, &key) {
            (arg, s.value.clone())
        } else if let Some(entry) = gunicorn::lookup(&key) {
            match gunicorn::apply(entry, &s.value) {
                Ok(Apply::Option(long, value)) => match find_option(cmd, long) {
                    Some(arg) => (arg, value),
                    None => continue,
                },
                Ok(Apply::Warn(msg)) => {
                    if warned.insert(entry.name) {
                        warnings.push(format!("{}: {msg}", s.origin));
                    }
                    continue;
                }
                Ok(Apply::Quiet) => continue,
                Err(msg) => {
                    errors.push(format!("{}: {}: {msg}", s.origin, s.key));
                    continue;
                }
            }
        } else {
            let near = suggest(cmd, &key);
            // A Python file may hold helper names (`cores = 4`, `def bind_for(port)`), as
            // gunicorn's do: they are errors only when they look like a misspelt setting.
            let python_file = matches!(&s.origin, Origin::File { path, .. }
                if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")));
            match near {
                Some(k) => errors.push(format!(
                    "{}: unknown setting {} (did you mean {k}?)",
                    s.origin, s.key
                )),
                None if python_file => warnings.push(format!(
                    "{}: {} is not a setting; ignored (start helper names with _)",
                    s.origin, s.key
                )),
                None => errors.push(format!("{}: unknown setting {}", s.origin, s.key)),
            }
            continue;
        };
        match option_words(cmd, arg, &value) {
            Ok(words) => {
                winners.insert(arg.get_id().to_string(), (words, s.origin.clone()));
            }
            Err(msg) => errors.push(format!("{}: {}: {msg}", s.origin, s.key)),
        }
    }
    if !errors.is_empty() {
        return Err(LoadError::Msg(errors.join("\n")));
    }
    let mut words = Vec::new();
    let mut origins = BTreeMap::new();
    for (id, (w, origin)) in winners {
        words.extend(w);
        origins.insert(id, origin);
    }
    if let Some((a, origin)) = app {
        words.push("--".to_owned());
        words.push(a);
        origins.insert("app".to_owned(), origin);
    }
    Ok(Merged {
        words,
        origins,
        warnings,
    })
}

/// The known name nearest a misspelt one, if near enough.
fn suggest(cmd: &Command, key: &str) -> Option<String> {
    let ours = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(Arg::get_long)
        .map(|l| l.replace('-', "_"));
    let theirs = gunicorn::TABLE.iter().map(|e| e.name.to_owned());
    let hooks = gunicorn::FERRULE_HOOKS.iter().map(|h| (*h).to_owned());
    ours.chain(theirs)
        .chain(hooks)
        .map(|name| (distance(key, &name), name))
        .filter(|(d, name)| *d <= (name.len() / 4).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
