//! Where the options come from, and which source wins. Lowest to highest:
//!
//! 1. PORT (`--bind 0.0.0.0:$PORT`) and WEB_CONCURRENCY (`--workers`), as gunicorn reads them;
//! 2. `[server:main]` of the `--paste` ini file, when it says `use = egg:ferrule`;
//! 3. `[tool.ferrule]` in ./pyproject.toml;
//! 4. the config file: `-c FILE` (TOML or Python), else ./ferrule.conf.py or ./gunicorn.conf.py;
//! 5. `FERRULE_<OPTION>` variables (`FERRULE_WORKERS=4`);
//! 6. GUNICORN_CMD_ARGS, then FERRULE_CMD_ARGS, read as command lines;
//! 7. the command line.
//!
//! Each source gives settings (a key as written, a value, where it came from). A key is a long
//! option with `_` or `-`, or a gunicorn setting name ([`gunicorn`]). Every setting is checked
//! on its own, so that an error names its key and source; the winner of each option then
//! becomes a word of one command line that clap parses into the [`Cli`]. A repeatable option
//! is replaced whole by a higher source, never appended to.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;

mod env;
pub mod gunicorn;
mod print;
pub mod reference;
mod toml;
mod words;

pub use print::Report;

/// Why the configuration cannot be used.
pub enum LoadError {
    /// From the command line itself: clap prints it (and `--help`, `--version`).
    Cli(clap::Error),
    /// Anything else: the message to print (one line per problem).
    Msg(String),
}

/// A value as a source gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<String>),
    Dict(Vec<(String, String)>),
    /// A Python function or class (its qualified name): a hook, or gunicorn's `worker_class`.
    Callable(String),
}

impl Value {
    /// The value's type, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Str(_) => "a string",
            Self::List(_) => "a list",
            Self::Dict(_) => "a table (dict)",
            Self::Callable(_) => "a function",
        }
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// The config file found in the current directory.
    Found,
    /// A variable clap reads as a default (FORWARDED_ALLOW_IPS).
    DefaultEnv(String),
    /// PORT or WEB_CONCURRENCY.
    Paas(&'static str),
    /// A file (pyproject.toml, a TOML or Python config file) and the line.
    File {
        path: PathBuf,
        line: Option<usize>,
    },
    /// A FERRULE_<OPTION> variable.
    Env(String),
    /// GUNICORN_CMD_ARGS or FERRULE_CMD_ARGS.
    CmdArgs(&'static str),
    CommandLine,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Found => f.write_str("found in the current directory"),
            Self::DefaultEnv(var) | Self::Env(var) => write!(f, "environment {var}"),
            Self::Paas(var) => write!(f, "environment {var}"),
            Self::File {
                path,
                line: Some(n),
            } => write!(f, "{}:{n}", path.display()),
            Self::File { path, line: None } => write!(f, "{}", path.display()),
            Self::CmdArgs(var) => write!(f, "{var}"),
            Self::CommandLine => f.write_str("command line"),
        }
    }
}

/// One setting from one source.
#[derive(Debug, Clone)]
pub struct Setting {
    /// As written: `max_requests`, `max-requests`, `keepalive`, `--workers`.
    pub key: String,
    pub value: Value,
    pub origin: Origin,
}

/// The environment, read once (tests give their own).
pub type Env = BTreeMap<String, String>;

/// What the sources made: the options, and what to tell about them.
pub struct Resolved {
    pub cli: Cli,
    /// The final command line's matches (for the hooks' `cfg`).
    pub matches: ArgMatches,
    /// Each option's value and source, for `--print-config`.
    pub report: Report,
    /// Settings accepted without effect (gunicorn's), one line each, to log once the log is open.
    pub warnings: Vec<String>,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
}

/// The command Ferrule parses: [`Cli`] and, hidden, gunicorn's options that have no meaning
/// here ([`gunicorn::hidden_args`]).
#[must_use]
pub fn command() -> Command {
    Cli::command().args(gunicorn::hidden_args())
}

/// Reads every source. `args` is the command line (program name first); `read_python` runs a
/// Python config file and returns its settings (its hooks are the caller's business), or, for
/// a path ending `.ini` (`--paste`), returns the PasteDeploy file's `[server:main]` settings.
pub fn resolve(
    args: &[String],
    env: &Env,
    read_python: &mut dyn FnMut(&Path) -> Result<Vec<Setting>, String>,
) -> Result<Resolved, LoadError> {
    let cmd = command();
    let cli_layer = from_matches(
        &cmd,
        &cmd.clone()
            .try_get_matches_from(args)
            .map_err(LoadError::Cli)?,
        &Origin::CommandLine,
    );
    let mut high = Vec::new();
    high.push(env::option_vars(&cmd, env));
    for var in env::CMD_ARGS_VARS {
        let Some(line) = env.get(var).filter(|l| !l.trim().is_empty()) else {
            high.push(Vec::new());
            continue;
        };
        let words = shlex::split(line)
            .ok_or_else(|| LoadError::Msg(format!("{var}: unbalanced quotes in {line:?}")))?;
        let argv = std::iter::once("ferrule".to_owned()).chain(words);
        let matches = cmd
            .clone()
            .try_get_matches_from(argv)
            .map_err(|e| LoadError::Msg(format!("{var}: {}", words::first_line(&e))))?;
        high.push(from_matches(&cmd, &matches, &Origin::CmdArgs(var)));
    }
    high.push(cli_layer);
    // The config file: named by the highest source that names one, else found in ./.
    let named = high
        .iter()
        .flatten()
        .rfind(|s| words::normalize(&s.key) == "config")
        .map(|s| match &s.value {
            Value::Str(p) => Ok(PathBuf::from(p)),
            other => Err(LoadError::Msg(format!(
                "{}: config must be a path, not {}",
                s.origin,
                other.kind()
            ))),
        })
        .transpose()?;
    let config_file = named.clone().or_else(|| {
        // Absolute, as gunicorn's: the file's `__file__` stays right after --chdir.
        let cwd = std::env::current_dir().unwrap_or_default();
        ["ferrule.conf.py", "gunicorn.conf.py"]
            .into_iter()
            .map(|name| cwd.join(name))
            .find(|p| p.is_file())
    });
    let mut layers = vec![env::paas(env)?];
    if let Some(path) = config_file.as_ref().filter(|_| named.is_none()) {
        layers.push(vec![Setting {
            key: "config".to_owned(),
            value: Value::Str(path.display().to_string()),
            origin: Origin::Found,
        }]);
    }
    let pyproject = Path::new("pyproject.toml");
    let file_is_pyproject = config_file
        .as_deref()
        .is_some_and(|f| same_file(f, pyproject));
    if pyproject.is_file() && !file_is_pyproject {
        layers.push(toml::read(pyproject).map_err(LoadError::Msg)?);
    }
    if let Some(path) = &config_file {
        let settings = if is_toml(path) {
            toml::read(path)
        } else {
            read_python(path)
        };
        layers.push(settings.map_err(LoadError::Msg)?);
    }
    // The --paste file's server section: named by the highest source that names one.
    let paste = layers
        .iter()
        .chain(&high)
        .flatten()
        .rfind(|s| words::normalize(&s.key) == "paste")
        .and_then(|s| match &s.value {
            Value::Str(uri) => Some(uri.clone()),
            _ => None,
        });
    if let Some(uri) = paste {
        let path = uri.split('#').next().unwrap_or_default();
        let path = path.strip_prefix("config:").unwrap_or(path);
        let path = Path::new(path);
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ini"))
            && path.is_file()
        {
            let server = read_python(path).map_err(LoadError::Msg)?;
            layers.insert(1, server);
        }
    }
    layers.extend(high);
    let merged = words::merge(&cmd, &layers)?;
    let argv: Vec<String> = std::iter::once("ferrule".to_owned())
        .chain(merged.words.iter().cloned())
        .collect();
    let final_cmd = Cli::command();
    let matches = final_cmd
        .clone()
        .try_get_matches_from(&argv)
        .map_err(|e| LoadError::Msg(words::first_line(&e)))?;
    let cli = Cli::from_arg_matches(&matches).map_err(LoadError::Cli)?;
    let report = Report::new(&final_cmd, &matches, &merged.origins);
    Ok(Resolved {
        cli,
        matches,
        report,
        warnings: merged.warnings,
        config_file,
    })
}

fn is_toml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The settings a parsed command line gave: each option given on it, gunicorn's hidden ones
/// included, under its long name.
fn from_matches(cmd: &Command, matches: &ArgMatches, origin: &Origin) -> Vec<Setting> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        // gunicorn's options that Ferrule lacks are keyed by their setting's name.
        let key = if id == "app" || arg.is_hide_set() {
            id.to_owned()
        } else {
            arg.get_long().unwrap_or(id).to_owned()
        };
        let value = if matches!(arg.get_action(), ArgAction::SetTrue) {
            Value::Bool(matches.get_flag(id))
        } else {
            let values: Vec<String> = matches
                .get_raw(id)
                .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            match (arg.get_action(), <[String; 1]>::try_from(values)) {
                // gunicorn's flags (hidden) take one value; given again, the last counts.
                (_, Err(mut many)) if arg.is_hide_set() => {
                    Value::Str(many.pop().unwrap_or_default())
                }
                (ArgAction::Append, Ok([one])) if !arg.is_hide_set() => Value::List(vec![one]),
                (_, Ok([one])) => Value::Str(one),
                (_, Err(many)) => Value::List(many),
            }
        };
        out.push(Setting {
            key,
            value,
            origin: origin.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests;
