//! Checks of the repository itself, run by `cargo test --workspace`:
//!
//! * `tests/msrv.rs`: no dependency needs a newer Rust than the declared `rust-version`;
//! * `tests/docs_words.rs`: the docs describe the project, not its history: no process
//!   words ([`process_words`]) and no placeholder URLs in `docs/`, any `README.md`,
//!   `CHANGELOG.md` or `CONTRIBUTING.md`;
//! * `tests/csharp_generated.rs`: the C# client's committed packets
//!   (`clients/csharp/Generated/`) are what packet-gen generates from `game-server/PDL.xml`.
//!
//! It also runs the examples of the published crates' READMEs as doctests.
//!
//! The library holds what those tests share: where the repository is, which files are
//! docs, and the scanner (a pure function, unit-tested below).

#![warn(missing_docs)]

/// The example in `server-core/README.md`, run as a doctest (crates.io shows that README).
#[cfg(doctest)]
#[doc = include_str!("../../server-core/README.md")]
pub struct ServerCoreReadme;

/// The examples in `packet-gen/README.md`, run as doctests (crates.io shows that README).
#[cfg(doctest)]
#[doc = include_str!("../../packet-gen/README.md")]
pub struct PacketGenReadme;

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the root `Cargo.toml`).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo-checks lives one level below the workspace root")
        .to_path_buf()
}

/// Every doc file of the repository under `root`: `docs/**/*.md`, and every `README.md`,
/// `CHANGELOG.md` and `CONTRIBUTING.md` at any depth. Build output (`target/`),
/// `node_modules/` and hidden directories are skipped. Sorted, so reports are stable.
///
/// # Errors
/// An I/O error while listing a directory.
pub fn doc_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    walk(root, root, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                walk(root, &path, found)?;
            }
        } else if is_doc(root, &path, &name) {
            found.push(path);
        }
    }
    Ok(())
}

fn is_doc(root: &Path, path: &Path, name: &str) -> bool {
    let in_docs = path.starts_with(root.join("docs")) && name.ends_with(".md");
    in_docs || matches!(name, "README.md" | "CHANGELOG.md" | "CONTRIBUTING.md")
}

/// Phrases that narrate how the project was made instead of describing it, and
/// placeholder hosts. Matched case-insensitively anywhere in a line.
pub const FORBIDDEN_PHRASES: &[&str] = &[
    "final commit",
    "final run",
    // Not "next session" or "last session": those are networking words here.
    "this session",
    "earlier session",
    "this round",
    "found by these tests",
    "this commit",
    "example.invalid",
    "example.com",
    "example.org",
    "example.net",
];

/// One forbidden word found in a doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line number.
    pub line: usize,
    /// What was found, as written in the doc.
    pub found: String,
}

/// Scans `text` for process words: the [`FORBIDDEN_PHRASES`], an issue number
/// (`issue 6`, `issues #12`) and a bare `#<digits>` reference (not `&#123;`, not `C#7`).
///
/// # Examples
/// ```
/// let found = repo_checks::process_words("fine\nas measured at the final commit\n");
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].line, 2);
/// assert!(repo_checks::process_words("a session's id; C# 7.3; issue a command").is_empty());
/// ```
#[must_use]
pub fn process_words(text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // ASCII lowering keeps byte offsets, so slices of `lower` index `line` too.
        let lower = line.to_ascii_lowercase();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut hit = |start: usize, end: usize| {
            // `issue #12` is one finding, not also `#12`.
            if spans.iter().any(|&(s, e)| (s..e).contains(&start)) {
                return;
            }
            spans.push((start, end));
            findings.push(Finding {
                line: i + 1,
                found: line[start..end].to_string(),
            });
        };
        for phrase in FORBIDDEN_PHRASES {
            for (start, _) in lower.match_indices(phrase) {
                hit(start, start + phrase.len());
            }
        }
        for (start, _) in lower.match_indices("issue") {
            if let Some(end) = issue_number_end(&lower, start + "issue".len()) {
                hit(start, end);
            }
        }
        for (start, _) in lower.match_indices('#') {
            if let Some(end) = hash_reference_end(&lower, start) {
                hit(start, end);
            }
        }
    }
    findings
}

/// After `issue`: an optional `s`, spaces or `#`, then digits. Returns the end of the digits.
fn issue_number_end(lower: &str, mut at: usize) -> Option<usize> {
    let bytes = lower.as_bytes();
    if bytes.get(at) == Some(&b's') {
        at += 1;
    }
    while matches!(bytes.get(at), Some(b' ' | b'#')) {
        at += 1;
    }
    digits_end(bytes, at)
}

/// `#` followed by digits, not preceded by a letter, digit or `&` (`C#7`, `&#123;`).
fn hash_reference_end(lower: &str, hash: usize) -> Option<usize> {
    let bytes = lower.as_bytes();
    let before = hash.checked_sub(1).map(|i| bytes[i]);
    if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'&') {
        return None;
    }
    digits_end(bytes, hash + 1)
}

fn digits_end(bytes: &[u8], start: usize) -> Option<usize> {
    let len = bytes[start.min(bytes.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    (len > 0).then_some(start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<String> {
        process_words(text).into_iter().map(|f| f.found).collect()
    }

    #[test]
    fn finds_process_words_and_placeholders() {
        assert_eq!(found("target (issue 6)"), ["issue 6"]);
        assert_eq!(found("see Issues #12 and #7."), ["Issues #12", "#7"]);
        assert_eq!(found("At the Final Commit"), ["Final Commit"]);
        assert_eq!(found("in an earlier session"), ["earlier session"]);
        assert_eq!(
            found("repository = https://example.invalid/x"),
            ["example.invalid"]
        );
        assert_eq!(found("(#42)"), ["#42"]);
    }

    #[test]
    fn leaves_ordinary_words_alone() {
        for ok in [
            "a session #N closed",
            "C# 7.3 and C#7",
            "&#123; is an entity",
            "issue a command; issues of ordering",
            "# Heading 1",
            "the session's own id",
            "session 2 of 3",
        ] {
            assert!(found(ok).is_empty(), "{ok}: {:?}", found(ok));
        }
    }

    #[test]
    fn line_numbers_are_one_based() {
        let f = process_words("a\nb\nfinal run\n");
        assert_eq!(
            f,
            [Finding {
                line: 3,
                found: "final run".into()
            }]
        );
    }

    #[test]
    fn doc_files_lists_docs_and_readmes_only() {
        let root = workspace_root();
        let files = doc_files(&root).unwrap();
        assert!(files.contains(&root.join("README.md")));
        assert!(files.contains(&root.join("docs/protocol.md")));
        assert!(files.iter().all(|f| !f.starts_with(root.join("target"))));
        assert!(!files.contains(&root.join("Cargo.toml")));
    }
}
