//! The command line merged with a Python config file (`-c FILE`, as gunicorn's): the file's
//! module-level names set options, the command line wins, and unknown names are an error.
//! The file runs in Python (`ferrule._config`); here its settings become command-line words
//! for the options the command line did not set, so clap checks them as it checks the rest.
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use pyo3::prelude::*;

use crate::cli::Cli;
use crate::config::Config;
use crate::wsgi::hooks::{self, CfgValue};

/// Why the configuration cannot be used.
pub enum LoadError {
    /// From the command line itself: clap prints it (and `--help`, `--version`).
    Cli(clap::Error),
    /// Anything else: the message to print.
    Msg(String),
}

/// The option an identifier in the config file names: the long option with `_` for `-`.
fn find_arg<'c>(cmd: &'c Command, name: &str) -> Option<&'c clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long()
            .is_some_and(|l| l.replace('-', "_") == name && l != "help" && l != "version")
    })
}

/// Parses `args` (program name first) and the config file they name; installs its hooks.
pub fn load(py: Python<'_>, args: &[String]) -> Result<Config, LoadError> {
    let cmd = Cli::command();
    let matches = cmd
        .clone()
        .try_get_matches_from(args)
        .map_err(LoadError::Cli)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(LoadError::Cli)?;
    let mut final_matches = matches;
    let mut file_hooks = None;
    if let Some(path) = cli.config.clone() {
        let (settings, file_hook_dict) = hooks::read_config(py, &path).map_err(LoadError::Msg)?;
        let shown = path.display();
        let mut words = vec![args.first().cloned().unwrap_or_default()];
        let mut app = None;
        let mut unknown = Vec::new();
        for (name, values) in settings {
            if name == "app" {
                if final_matches.value_source("app") != Some(ValueSource::CommandLine) {
                    app = values.into_iter().next();
                }
                continue;
            }
            let Some(arg) = find_arg(&cmd, &name).filter(|_| name != "config") else {
                unknown.push(name);
                continue;
            };
            if final_matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
                continue;
            }
            let long = format!("--{}", arg.get_long().unwrap_or_default());
            if matches!(arg.get_action(), ArgAction::SetTrue) {
                match values.as_slice() {
                    [v] if v == "true" => words.push(long),
                    [v] if v == "false" => {}
                    _ => {
                        return Err(LoadError::Msg(format!(
                            "config file {shown}: {name} must be True or False"
                        )))
                    }
                }
                continue;
            }
            if values.is_empty() {
                return Err(LoadError::Msg(format!(
                    "config file {shown}: {name} needs a value"
                )));
            }
            // `--opt=value`, so that a value starting with `-` is not read as an option.
            words.extend(values.into_iter().map(|v| format!("{long}={v}")));
        }
        if !unknown.is_empty() {
            return Err(LoadError::Msg(format!(
                "config file {shown}: unknown setting{} {}; settings are the long options \
                 with _ for - (as in max_requests = 1000) or hooks (on_starting, when_ready, \
                 post_fork, pre_request, post_request, child_exit, worker_exit, on_exit); \
                 start helper names with _",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", ")
            )));
        }
        words.extend(args.iter().skip(1).cloned());
        words.extend(app);
        final_matches = cmd.clone().try_get_matches_from(&words).map_err(|e| {
            LoadError::Msg(format!(
                "config file {shown}: {}",
                e.to_string().trim_start_matches("error: ").trim_end()
            ))
        })?;
        cli = Cli::from_arg_matches(&final_matches).map_err(LoadError::Cli)?;
        file_hooks = Some(file_hook_dict);
    }
    hooks::install(py, file_hooks, cfg_values(&cmd, &final_matches));
    let mut cfg = Config::from_cli(cli).map_err(|e| LoadError::Msg(e.to_string()))?;
    cfg.argv = args.to_vec();
    Ok(cfg)
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
