//! The configuration read from every source (`crate::sources`), with the Python config file
//! run here: `ferrule._config` runs it and returns its settings (typed, with their lines) and
//! its hooks, installed once the whole configuration is known to be good.
use std::path::Path;

use clap::{ArgAction, ArgMatches, Command, CommandFactory};
use pyo3::prelude::*;

use crate::cli::Cli;
use crate::config::Config;
use crate::sources::{self, Env, Origin, Setting, Value};
use crate::wsgi::hooks::{self, CfgValue};

pub use crate::sources::LoadError;

/// A setting as `ferrule._config.read` returns it: name, kind, values, line.
pub type RawSetting = (String, String, Vec<String>, Option<usize>);

/// Reads every source (`args`: the command line, program name first); installs the config
/// file's hooks.
pub fn load(py: Python<'_>, args: &[String]) -> Result<Config, LoadError> {
    let env: Env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut file_hooks = None;
    let mut read_python = |path: &Path| -> Result<Vec<Setting>, String> {
        let (settings, found) = hooks::read_config(py, path)?;
        // A --paste ini file has no hooks; the config file's (read first) stay.
        if path
            .extension()
            .is_none_or(|e| !e.eq_ignore_ascii_case("ini"))
        {
            file_hooks = Some(found);
        }
        Ok(settings.into_iter().map(|raw| typed(path, raw)).collect())
    };
    let resolved = sources::resolve(args, &env, &mut read_python)?;
    hooks::install(
        py,
        file_hooks,
        cfg_values(&Cli::command(), &resolved.matches),
    );
    let report = resolved.report;
    let mut cfg = Config::from_cli(resolved.cli).map_err(|e| {
        let msg = e.to_string();
        LoadError::Msg(with_origin(&msg, &report))
    })?;
    cfg.argv = args.to_vec();
    cfg.report = report;
    cfg.warnings = resolved.warnings;
    Ok(cfg)
}

/// A message about `--option` names the source that set the option, unless that is the
/// command line.
fn with_origin(msg: &str, report: &sources::Report) -> String {
    let option = msg
        .strip_prefix("--")
        .and_then(|m| m.split([' ', ':']).next())
        .map(|o| o.replace('-', "_"));
    match option.as_deref().and_then(|o| report.origin(o)) {
        Some(
            origin @ (Origin::File { .. } | Origin::Env(_) | Origin::CmdArgs(_) | Origin::Paas(_)),
        ) => {
            format!("{msg} (set in {origin})")
        }
        _ => msg.to_owned(),
    }
}

/// A Python setting as a [`Setting`]: kinds `bool`, `int`, `str`, `list`, `dict` (keys and
/// values alternating), `callable` (its qualified name).
fn typed(path: &Path, (name, kind, values, line): RawSetting) -> Setting {
    let one = || values.first().cloned().unwrap_or_default();
    let value = match kind.as_str() {
        "bool" => Value::Bool(one() == "true"),
        "int" => one().parse().map_or_else(|_| Value::Str(one()), Value::Int),
        "list" => Value::List(values),
        "dict" => Value::Dict(
            values
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
                .collect(),
        ),
        "callable" => Value::Callable(one()),
        _ => Value::Str(one()),
    };
    Setting {
        key: name,
        value,
        origin: Origin::File {
            path: path.to_path_buf(),
            line,
        },
    }
}

/// The options in effect, for the hooks' `cfg`.
fn cfg_values(cmd: &Command, matches: &ArgMatches) -> Vec<(String, CfgValue)> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let name = arg
            .get_long()
            .map_or_else(|| id.to_owned(), |l| l.replace('-', "_"));
        let value = if matches!(arg.get_action(), ArgAction::SetTrue) {
            CfgValue::Flag(matches.get_flag(id))
        } else {
            let raw: Option<Vec<String>> = matches.get_raw(id).map(|v| {
                v.map(|s| s.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            });
            match (raw, arg.get_action()) {
                (None, ArgAction::Append) => CfgValue::Many(Vec::new()),
                (None, _) => CfgValue::Unset,
                (Some(v), ArgAction::Append) => CfgValue::Many(v),
                (Some(mut v), _) => CfgValue::One(v.pop().unwrap_or_default()),
            }
        };
        out.push((name, value));
    }
    out
}
