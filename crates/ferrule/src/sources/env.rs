//! The environment: `FERRULE_<OPTION>` variables, the `*_CMD_ARGS` command lines, and PORT
//! and WEB_CONCURRENCY as gunicorn reads them.
use clap::{ArgAction, Command};

use super::{Env, LoadError, Origin, Setting, Value};

/// Command lines read from the environment, lowest first.
pub const CMD_ARGS_VARS: [&str; 2] = ["GUNICORN_CMD_ARGS", "FERRULE_CMD_ARGS"];

/// The variable for option `long`: `FERRULE_` and the name in upper case with `_` for `-`.
pub fn var_name(long: &str) -> String {
    format!("FERRULE_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// The `FERRULE_<OPTION>` variables set. A repeatable option's variable holds its values
/// separated as in a shell (`FERRULE_BIND="0.0.0.0:80 unix:/run/app.sock"`); FERRULE_APP
/// names the app.
pub fn option_vars(cmd: &Command, env: &Env) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(app) = env.get("FERRULE_APP").filter(|a| !a.is_empty()) {
        out.push(Setting {
            key: "app".to_owned(),
            value: Value::Str(app.clone()),
            origin: Origin::Env("FERRULE_APP".to_owned()),
        });
    }
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(long) = arg.get_long().filter(|l| *l != "help" && *l != "version") else {
            continue;
        };
        let var = var_name(long);
        let Some(raw) = env.get(&var) else { continue };
        let value = if matches!(arg.get_action(), ArgAction::Append) {
            match shlex::split(raw) {
                Some(words) => Value::List(words),
                None => Value::Str(raw.clone()),
            }
        } else {
            Value::Str(raw.clone())
        };
        out.push(Setting {
            key: long.to_owned(),
            value,
            origin: Origin::Env(var),
        });
    }
    out
}

/// PORT (bind 0.0.0.0:$PORT) and WEB_CONCURRENCY (workers): the lowest source, so that any
/// other that sets --bind or --workers wins. Empty variables count as unset.
pub fn paas(env: &Env) -> Result<Vec<Setting>, LoadError> {
    let mut out = Vec::new();
    if let Some(port) = env.get("PORT").map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if port.parse::<u16>().is_err() {
            return Err(LoadError::Msg(format!(
                "environment PORT={port:?}: not a port number (0-65535)"
            )));
        }
        out.push(Setting {
            key: "bind".to_owned(),
            value: Value::List(vec![format!("0.0.0.0:{port}")]),
            origin: Origin::Paas("PORT"),
        });
    }
    if let Some(n) = env
        .get("WEB_CONCURRENCY")
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
    {
        if !n.parse::<u32>().is_ok_and(|n| n >= 1) {
            return Err(LoadError::Msg(format!(
                "environment WEB_CONCURRENCY={n:?}: not a number of workers (1 or more)"
            )));
        }
        out.push(Setting {
            key: "workers".to_owned(),
            value: Value::Str(n.to_owned()),
            origin: Origin::Paas("WEB_CONCURRENCY"),
        });
    }
    Ok(out)
}
