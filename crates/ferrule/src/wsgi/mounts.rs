//! `--mount PREFIX=APP`: several apps in one worker, each at a URL prefix. The bridge picks
//! the app once per request from the decoded path (after `--root-path`), so the transports
//! know nothing of it; without `--mount` none of this runs.
use ferrule_proto::cgi::strip_root_path;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// One app at its prefix.
pub struct Mounted {
    /// The prefix, without a trailing `/`: empty for the app at `/`.
    prefix: Box<[u8]>,
    /// The app's WSGI callable.
    pub callable: Py<PyAny>,
    /// SCRIPT_NAME of its requests: `--root-path` and the prefix.
    pub script_name: Py<PyString>,
}

/// The mounted apps of a worker, the longest prefix first.
pub struct Mounts {
    entries: Vec<Mounted>,
}

impl Mounts {
    /// `apps`: each prefix (without a trailing `/`) and its callable, in any order.
    pub fn new(py: Python<'_>, root_path: &str, apps: Vec<(String, Py<PyAny>)>) -> Self {
        let mut entries: Vec<Mounted> = apps
            .into_iter()
            .map(|(prefix, callable)| {
                let script: Vec<u8> = [root_path.as_bytes(), prefix.as_bytes()].concat();
                Mounted {
                    script_name: PyString::new(py, &latin1(&script)).unbind(),
                    prefix: prefix.into_bytes().into_boxed_slice(),
                    callable,
                }
            })
            .collect();
        entries.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Self { entries }
    }

    /// The app serving `path` (decoded, under `--root-path`) and its PATH_INFO: the longest
    /// prefix matching on a segment boundary (`/api` takes `/api` and `/api/x`, not `/apix`).
    /// `OPTIONS *` goes to the app at `/`. None: no app serves it (a 404).
    pub fn route<'p>(&self, path: &'p [u8]) -> Option<(&Mounted, &'p [u8])> {
        if path == b"*" {
            return self
                .entries
                .iter()
                .find(|m| m.prefix.is_empty())
                .map(|m| (m, path));
        }
        self.entries
            .iter()
            .find_map(|m| strip_root_path(&m.prefix, path).map(|rest| (m, rest)))
    }
}

/// The bytes as a WSGI native string (latin-1), as the environ holds paths.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The app for a request's path when there are mounts; `path` itself and None without.
/// None overall: no mount serves the path.
#[inline]
pub(super) fn route<'a, 'p>(
    mounts: Option<&'a Mounts>,
    path: &'p [u8],
) -> Option<(&'p [u8], Option<&'a Mounted>)> {
    match mounts {
        None => Some((path, None)),
        Some(m) => m.route(path).map(|(mounted, rest)| (rest, Some(mounted))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(py: Python<'_>, root: &str) -> Mounts {
        let apps = ["", "/api/v2", "/api"]
            .into_iter()
            .map(|p| (p.to_owned(), PyString::new(py, p).into_any().unbind()))
            .collect();
        Mounts::new(py, root, apps)
    }

    fn routed(m: &Mounts, path: &str) -> Option<(String, String)> {
        Python::attach(|py| {
            m.route(path.as_bytes()).map(|(mt, rest)| {
                (
                    mt.script_name.bind(py).to_string(),
                    String::from_utf8_lossy(rest).into_owned(),
                )
            })
        })
    }

    #[test]
    fn the_longest_prefix_on_a_segment_boundary_wins() {
        Python::initialize();
        let m = Python::attach(|py| mounts(py, ""));
        let cases = [
            ("/api", "/api", ""),
            ("/api/", "/api", "/"),
            ("/api/x", "/api", "/x"),
            ("/apix", "", "/apix"),
            ("/api/v2", "/api/v2", ""),
            ("/api/v2/y", "/api/v2", "/y"),
            ("/api/v2x", "/api", "/v2x"),
            ("/", "", "/"),
            ("*", "", "*"),
        ];
        for (path, script, info) in cases {
            assert_eq!(
                routed(&m, path),
                Some((script.to_owned(), info.to_owned())),
                "{path}"
            );
        }
    }

    #[test]
    fn script_name_starts_with_the_root_path() {
        Python::initialize();
        let m = Python::attach(|py| mounts(py, "/site"));
        assert_eq!(
            routed(&m, "/api/x"),
            Some(("/site/api".to_owned(), "/x".to_owned()))
        );
        assert_eq!(
            routed(&m, "/x"),
            Some(("/site".to_owned(), "/x".to_owned()))
        );
    }

    #[test]
    fn without_a_mount_at_the_root_other_paths_match_nothing() {
        Python::initialize();
        let m = Python::attach(|py| {
            let apps = vec![("/api".to_owned(), py.None())];
            Mounts::new(py, "", apps)
        });
        assert!(m.route(b"/other").is_none());
        assert!(m.route(b"*").is_none());
        assert!(m.route(b"/api").is_some());
    }
}
