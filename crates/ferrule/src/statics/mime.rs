//! What a file's name says: its `Content-Type` (a built-in table of the common web types) and
//! whether it carries a content hash (`name.0123abcd.css`, as Django's
//! `ManifestStaticFilesStorage` and bundlers write them), which makes it safe to cache forever.

/// The type of anything not in the table.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// Extensions (lower case) and their `Content-Type`; text types carry `charset=utf-8`.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("cjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("xml", "text/xml; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("ics", "text/calendar; charset=utf-8"),
    ("vtt", "text/vtt; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/vnd.microsoft.icon"),
    ("bmp", "image/bmp"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("eot", "application/vnd.ms-fontobject"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("br", "application/x-brotli"),
    ("zst", "application/zstd"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("ogv", "video/ogg"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("wav", "audio/wav"),
    ("m4a", "audio/mp4"),
    ("flac", "audio/flac"),
    ("rss", "application/rss+xml"),
    ("atom", "application/atom+xml"),
    ("xhtml", "application/xhtml+xml"),
];

/// The `Content-Type` of a file by its name's extension (case-insensitive).
pub fn content_type(name: &[u8]) -> &'static str {
    let Some(ext) = extension(name) else {
        return DEFAULT_TYPE;
    };
    TYPES
        .iter()
        .find(|(e, _)| e.as_bytes().eq_ignore_ascii_case(ext))
        .map_or(DEFAULT_TYPE, |(_, t)| t)
}

/// What follows the name's last dot, if the dot is not its first byte.
fn extension(name: &[u8]) -> Option<&[u8]> {
    let dot = name.iter().rposition(|&c| c == b'.')?;
    if dot == 0 {
        return None;
    }
    name.get(dot + 1..).filter(|e| !e.is_empty())
}

/// Whether the name has a dot-separated segment of 8 to 32 hex digits just before its
/// extension, after a non-empty stem: `base.5af66c1b1797.css`, `main.0123abcd.js`.
pub fn is_hashed(name: &[u8]) -> bool {
    let mut parts = name.rsplit(|&c| c == b'.');
    let (Some(ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !ext.is_empty()
        && (8..=32).contains(&hash.len())
        && hash.iter().all(u8::is_ascii_hexdigit)
        && !(stem.is_empty() && parts.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type(b"a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type(b"A.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type(b"x.min.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type(b"logo.png"), "image/png");
        assert_eq!(content_type(b"font.woff2"), "font/woff2");
        assert_eq!(content_type(b"index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"README"), DEFAULT_TYPE);
        assert_eq!(content_type(b".bashrc"), DEFAULT_TYPE);
        assert_eq!(content_type(b"a."), DEFAULT_TYPE);
        assert_eq!(content_type(b"a.unknownext"), DEFAULT_TYPE);
    }

    #[test]
    fn hashed_names() {
        assert!(is_hashed(b"base.5af66c1b1797.css"));
        assert!(is_hashed(b"main.0123abcd.js"));
        assert!(is_hashed(b"a.b.0123456789abcdef0123456789ABCDEF.js"));
        assert!(!is_hashed(b"main.0123abc.js"));
        assert!(!is_hashed(b"main.0123456789abcdef0123456789abcdef0.js"));
        assert!(!is_hashed(b"jquery.min.js"));
        assert!(!is_hashed(b"0123abcd.js"));
        assert!(!is_hashed(b".0123abcd.js"));
        assert!(!is_hashed(b"main.0123abcd."));
        assert!(!is_hashed(b"main.0123abcg.js"));
        assert!(!is_hashed(b"main.css"));
    }
}
