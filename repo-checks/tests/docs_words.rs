//! The docs describe the project as it is: no issue numbers, no "final commit" or "this
//! session" narratives, no placeholder URLs, in `docs/` and every README, CHANGELOG and
//! CONTRIBUTING file of the repository.

#[test]
fn docs_have_no_process_words_or_placeholder_urls() {
    let root = repo_checks::workspace_root();
    let files = repo_checks::doc_files(&root).expect("list the doc files");
    assert!(files.len() >= 5, "too few doc files found: {files:?}");

    let mut report = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let shown = file.strip_prefix(&root).unwrap_or(file).display();
        for finding in repo_checks::process_words(&text) {
            report.push(format!("{shown}:{}: `{}`", finding.line, finding.found));
        }
    }
    assert!(
        report.is_empty(),
        "docs must describe the project, not its history, and name no placeholder URLs; \
         rewrite these ({} found):\n{}",
        report.len(),
        report.join("\n")
    );
}
