use std::path::Path;

use super::gunicorn::{Kind, TABLE};
use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn args(words: &[&str]) -> Vec<String> {
    std::iter::once("ferrule")
        .chain(words.iter().copied())
        .map(str::to_owned)
        .collect()
}

#[expect(clippy::unnecessary_wraps, reason = "the reader's signature")]
fn no_python(_: &Path) -> Result<Vec<Setting>, String> {
    Ok(Vec::new())
}

fn resolved(words: &[&str], vars: &[(&str, &str)]) -> Result<Resolved, String> {
    resolve(&args(words), &env(vars), &mut no_python).map_err(|e| match e {
        LoadError::Cli(e) => e.to_string(),
        LoadError::Msg(m) => m,
    })
}

#[test]
fn command_with_gunicorn_flags_is_consistent() {
    command().debug_assert();
}

#[test]
fn every_gunicorn_setting_that_maps_names_a_ferrule_option() {
    let cmd = Cli::command();
    for e in TABLE {
        if let Kind::Same(long) = e.kind {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(long)),
                "{} -> --{long}",
                e.name
            );
        }
    }
}

#[test]
fn precedence_env_then_cmd_args_then_command_line() {
    let r = resolved(&[], &[("WEB_CONCURRENCY", "3"), ("PORT", "9000")]).expect("ok");
    assert_eq!(r.cli.workers, 3);
    assert_eq!(r.cli.bind, ["0.0.0.0:9000"]);
    let vars = [
        ("WEB_CONCURRENCY", "3"),
        ("FERRULE_WORKERS", "4"),
        ("GUNICORN_CMD_ARGS", "--workers=5 --bind 127.0.0.1:1"),
    ];
    let r = resolved(&[], &vars).expect("ok");
    assert_eq!(r.cli.workers, 5);
    assert_eq!(r.cli.bind, ["127.0.0.1:1"]);
    let mut more = vars.to_vec();
    more.push(("FERRULE_CMD_ARGS", "-w 6"));
    assert_eq!(resolved(&[], &more).expect("ok").cli.workers, 6);
    assert_eq!(resolved(&["-w", "7"], &more).expect("ok").cli.workers, 7);
    assert_eq!(
        resolved(&["-w", "7"], &more)
            .expect("ok")
            .report
            .origin("workers"),
        Some(&Origin::CommandLine)
    );
}

#[test]
fn repeatable_options_from_the_environment_split_like_a_shell() {
    let r = resolved(&[], &[("FERRULE_BIND", "127.0.0.1:1 'unix:/tmp/a b'")]).expect("ok");
    assert_eq!(r.cli.bind, ["127.0.0.1:1", "unix:/tmp/a b"]);
    // A higher source replaces the list whole.
    let r = resolved(&["-b", "127.0.0.1:2"], &[("FERRULE_BIND", "127.0.0.1:1")]).expect("ok");
    assert_eq!(r.cli.bind, ["127.0.0.1:2"]);
}

#[test]
fn bad_values_name_their_source() {
    let e = resolved(&[], &[("FERRULE_WORKERS", "many")])
        .err()
        .expect("error");
    assert!(e.contains("environment FERRULE_WORKERS: workers:"), "{e}");
    let e = resolved(&[], &[("FERRULE_PRELOAD", "maybe")])
        .err()
        .expect("error");
    assert!(e.contains("FERRULE_PRELOAD"), "{e}");
    let e = resolved(&[], &[("PORT", "http")]).err().expect("error");
    assert!(e.contains("PORT"), "{e}");
    let e = resolved(&[], &[("GUNICORN_CMD_ARGS", "--workerz 2")])
        .err()
        .expect("error");
    assert!(e.starts_with("GUNICORN_CMD_ARGS:"), "{e}");
}

#[test]
fn gunicorn_flags_parse_and_warn_once() {
    let r = resolved(
        &[
            "-k",
            "gthread",
            "--worker-connections",
            "10",
            "-n",
            "x",
            "--preload",
        ],
        &[("GUNICORN_CMD_ARGS", "-k sync")],
    )
    .expect("ok");
    assert!(r.cli.preload);
    assert_eq!(r.cli.worker_connections, 10);
    assert_eq!(r.cli.name.as_deref(), Some("x"));
    // worker_class (once, though given twice); worker_connections and proc_name are options.
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("worker_class"), "{:?}", r.warnings);
    let e = resolved(&["-k", "uvicorn.workers.UvicornWorker"], &[])
        .err()
        .expect("error");
    assert!(e.contains("Ferrule serves WSGI"), "{e}");
    let e = resolved(&["--daemon"], &[]).err().expect("error");
    assert!(e.contains("does not daemonize"), "{e}");
}

#[test]
fn unknown_settings_are_named_with_a_suggestion() {
    let mut read = |_: &Path| {
        Ok(vec![Setting {
            key: "workerz".to_owned(),
            value: Value::Int(2),
            origin: Origin::File {
                path: "g.conf.py".into(),
                line: Some(3),
            },
        }])
    };
    let Err(LoadError::Msg(m)) = resolve(&args(&["-c", "g.conf.py"]), &Env::new(), &mut read)
    else {
        panic!("expected an error");
    };
    assert_eq!(
        m,
        "g.conf.py:3: unknown setting workerz (did you mean workers?)"
    );
}

#[test]
fn gunicorn_values_convert() {
    let file = |key: &str, value: Value| Setting {
        key: key.to_owned(),
        value,
        origin: Origin::File {
            path: "g.conf.py".into(),
            line: Some(1),
        },
    };
    let settings = vec![
        file("umask", Value::Int(0o27)),
        file("keepalive", Value::Int(5)),
        file("reload_extra_files", Value::List(Vec::new())),
        file(
            "forwarded_allow_ips",
            Value::List(vec!["10.0.0.1".into(), "10.0.0.2".into()]),
        ),
        file("raw_env", Value::List(vec!["A=1".into()])),
        file(
            "secure_scheme_headers",
            Value::Dict(vec![("X-FORWARDED-PROTO".into(), "https".into())]),
        ),
    ];
    let mut read = move |_: &Path| Ok(settings.clone());
    let r = resolve(&args(&["-c", "g.conf.py"]), &Env::new(), &mut read)
        .ok()
        .expect("ok");
    assert_eq!(r.cli.umask.as_deref(), Some("27"));
    assert_eq!(r.cli.keep_alive, 5);
    assert!(r.cli.reload_extra_file.is_empty());
    assert_eq!(r.cli.forwarded_allow_ips, "10.0.0.1,10.0.0.2");
    assert_eq!(r.cli.env, ["A=1"]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn a_paste_files_server_section_is_below_every_other_source() {
    let dir = std::env::temp_dir().join(format!("ferrule-paste-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ini = dir.join("app.ini");
    std::fs::write(&ini, "[server:main]\nuse = egg:ferrule\n").expect("ini");
    let mut read = |p: &Path| {
        assert!(p.ends_with("app.ini"), "{}", p.display());
        Ok(vec![
            Setting {
                key: "workers".into(),
                value: Value::Str("3".into()),
                origin: Origin::File {
                    path: p.to_path_buf(),
                    line: None,
                },
            },
            Setting {
                key: "threads".into(),
                value: Value::Str("4".into()),
                origin: Origin::File {
                    path: p.to_path_buf(),
                    line: None,
                },
            },
        ])
    };
    let uri = format!("{}#main", ini.display());
    let r = resolve(
        &args(&["--paste", &uri, "--threads", "2"]),
        &env(&[("WEB_CONCURRENCY", "5")]),
        &mut read,
    )
    .ok()
    .expect("ok");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(r.cli.paste.as_deref(), Some(uri.as_str()));
    assert_eq!(r.cli.workers, 3, "the ini beats WEB_CONCURRENCY");
    assert_eq!(r.cli.threads, 2, "the command line beats the ini");
}
