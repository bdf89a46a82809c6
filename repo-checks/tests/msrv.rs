//! The declared `rust-version` is at least what every dependency declares.
//!
//! Only one toolchain is installed where this project is built and tested, so an old
//! compiler cannot be tried; this reads the dependency tree's own `rust-version` fields
//! from `cargo metadata` instead (every package of the lockfile, every platform, normal,
//! build and dev dependencies). Our own code's use of newer standard-library APIs is
//! checked separately by clippy's `incompatible_msrv` lint, which reads the same field.

use cargo_metadata::semver::Version;
use cargo_metadata::MetadataCommand;

#[test]
fn no_dependency_needs_a_newer_rust_than_declared() {
    let root = repo_checks::workspace_root();
    let metadata = MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .exec()
        .expect("cargo metadata");

    let members: Vec<_> = metadata.workspace_packages();
    let declared = members
        .iter()
        .map(|p| {
            p.rust_version
                .clone()
                .unwrap_or_else(|| panic!("{} declares no rust-version", p.name))
        })
        .min()
        .expect("the workspace has members");

    let mut needs: Vec<(Version, String)> = metadata
        .packages
        .iter()
        .filter(|p| !metadata.workspace_members.contains(&p.id))
        .filter_map(|p| {
            let v = p.rust_version.clone()?;
            Some((v, format!("{} {}", p.name, p.version)))
        })
        .collect();
    needs.sort();
    let highest = needs.last().map(|(v, _)| v.clone());
    let binding: Vec<&str> = needs
        .iter()
        .filter(|(v, _)| Some(v) == highest.as_ref())
        .map(|(_, p)| p.as_str())
        .collect();
    eprintln!(
        "declared rust-version {declared}; highest in the dependency tree: {} ({})",
        highest.map_or_else(|| "none".to_string(), |v| v.to_string()),
        binding.join(", ")
    );

    let too_new: Vec<String> = needs
        .iter()
        .filter(|(v, _)| *v > declared)
        .map(|(v, p)| format!("  {p} needs Rust {v}"))
        .collect();
    assert!(
        too_new.is_empty(),
        "the workspace declares rust-version {declared}, but:\n{}\nRaise rust-version in the \
         root Cargo.toml (and CONTRIBUTING.md), or lock an older release: \
         `cargo update -p NAME` picks one that fits, since the workspace uses resolver 3.",
        too_new.join("\n")
    );
}

#[test]
fn every_member_inherits_the_workspace_rust_version() {
    let root = repo_checks::workspace_root();
    let metadata = MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .expect("cargo metadata");
    let versions: Vec<(String, Option<Version>)> = metadata
        .workspace_packages()
        .iter()
        .map(|p| (p.name.to_string(), p.rust_version.clone()))
        .collect();
    let first = &versions[0].1;
    assert!(
        versions.iter().all(|(_, v)| v == first && v.is_some()),
        "members disagree on rust-version: {versions:?}"
    );
}
