//! The reference pages in `docs/`, generated from the definitions themselves so they cannot
//! drift: every option from the command line's definition (`docs/options.md`), and every
//! gunicorn setting with what Ferrule does with it (`docs/gunicorn.md`). `make docs` writes
//! them with `ferrule --print-reference options|gunicorn`; a test fails when a file is stale.
use std::fmt::Write as _;

use clap::CommandFactory;

use super::gunicorn::{Kind, TABLE};
use crate::cli::Cli;
pub use crate::cli::ReferencePage as Page;

/// The page's Markdown.
#[must_use]
pub fn render(page: Page) -> String {
    match page {
        Page::Options => options(),
        Page::Gunicorn => gunicorn(),
    }
}

/// Every visible option: its flags, value, help and default.
fn options() -> String {
    let cmd = Cli::command();
    let mut out = String::from(
        "# Options\n\n\
         Generated from the command line's definition by `make docs` (`ferrule \
         --print-reference options`); `tests/test_docs.py` fails when this file is stale. Every \
         option can also be set in a config file (its long name, `-` or `_`), in \
         `[tool.ferrule]` of `pyproject.toml`, or as `FERRULE_<NAME>` in the environment (see \
         [configuration.md](configuration.md)).\n\n",
    );
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || arg.get_id() == "help" || arg.get_id() == "version" {
            continue;
        }
        let mut flags = Vec::new();
        if let Some(s) = arg.get_short() {
            flags.push(format!("-{s}"));
        }
        if let Some(l) = arg.get_long() {
            flags.push(format!("--{l}"));
        }
        let takes_value = arg.get_action().takes_values();
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(ToString::to_string);
        let mut title = if flags.is_empty() {
            value.clone().unwrap_or_else(|| arg.get_id().to_string())
        } else {
            flags.join(", ")
        };
        if takes_value && !flags.is_empty() {
            if let Some(v) = &value {
                let _ = write!(title, " {v}");
            }
        }
        let _ = writeln!(out, "## `{title}`\n");
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        // One paragraph: the help's lines joined (clap keeps the source's line breaks).
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(out, "{help}\n");
        let choices: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| format!("`{}`", p.get_name()))
            .collect();
        if takes_value && !choices.is_empty() {
            let _ = writeln!(out, "Values: {}.\n", choices.join(", "));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| format!("`{}`", d.to_string_lossy()))
            .collect();
        if takes_value && !defaults.is_empty() {
            let _ = writeln!(out, "Default: {}.\n", defaults.join(", "));
        }
        if arg.get_action().takes_values() && matches!(arg.get_action(), clap::ArgAction::Append) {
            out.push_str("Repeatable.\n\n");
        }
    }
    out
}

/// Every gunicorn setting and what Ferrule does with it.
fn gunicorn() -> String {
    let mut out = String::from(
        "# Migrating from gunicorn: every setting\n\n\
         Generated from Ferrule's table of gunicorn's settings by `make docs` (`ferrule \
         --print-reference gunicorn`); `tests/test_docs.py` fails when this file is stale. A \
         gunicorn config file (`gunicorn.conf.py`, `-c`), `GUNICORN_CMD_ARGS` and a gunicorn \
         command line work unchanged: a setting is either the Ferrule option named here, or \
         accepted with one warning where it has no meaning in Ferrule, or refused where ignoring \
         it would serve something else than asked. A misspelt name or a wrong type is an error \
         naming the key, the file and the line.\n\n\
         | gunicorn setting | in Ferrule |\n|---|---|\n",
    );
    for e in TABLE {
        let what = match e.kind {
            Kind::Same(long) => format!("`--{long}`"),
            Kind::Ignored(_, why) => format!("accepted with a warning: {why}"),
            Kind::Hook => "a server hook Ferrule does not call: accepted with a warning".to_owned(),
            Kind::WorkerClass => "`sync`, `gthread` and other WSGI workers: accepted with a \
                                  warning (Ferrule has one worker kind, `--threads` sets its \
                                  app threads); an ASGI worker is refused"
                .to_owned(),
            Kind::Daemon => "`False`: accepted with a warning; `True` is refused (Ferrule does \
                             not daemonize: run it under systemd or a container)"
                .to_owned(),
            Kind::SecureSchemeHeaders => "`X-Forwarded-Proto: https` (which Ferrule reads, with \
                                          `Forwarded`, from `--forwarded-allow-ips` peers) is \
                                          accepted; other headers are ignored with a warning"
                .to_owned(),
        };
        let _ = writeln!(out, "| `{}` | {what} |", e.name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_option_and_every_setting_is_on_its_page() {
        let page = render(Page::Options);
        assert!(page.contains("## `-b, --bind ADDRESS`"), "{page}");
        assert!(page.contains("## `--max-queue-wait SECONDS`"));
        assert!(page.contains("Values: `options`, `gunicorn`."));
        let page = render(Page::Gunicorn);
        assert_eq!(page.matches("\n| `").count(), TABLE.len());
    }
}
