//! The READMEs say what the code does: every subcommand of `extdata --help` has a
//! section in the CLI's README, and the feature tables of the CLI's and the facade's
//! READMEs list exactly the features of their `Cargo.toml`, with the right defaults.

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;

/// The subcommands `extdata --help` lists (without clap's own `help`).
fn subcommands() -> Vec<String> {
    let output = Command::cargo_bin("extdata")
        .expect("the extdata binary")
        .arg("--help")
        .output()
        .expect("extdata --help runs");
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let commands: Vec<String> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(commands.len() >= 9, "too few subcommands parsed: {help}");
    commands
}

#[test]
fn readme_has_a_section_for_every_subcommand() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("the CLI's README");
    for command in subcommands() {
        assert!(
            readme.contains(&format!("\n## `{command}")),
            "README.md has no `## `{command}…` section"
        );
    }
}

/// `feature → on by default` from a crate's `[features]` table.
fn cargo_features(manifest: &Path) -> BTreeMap<String, bool> {
    let text = std::fs::read_to_string(manifest).expect("Cargo.toml");
    let document: toml::Table = text.parse().expect("Cargo.toml parses");
    let features = document["features"].as_table().expect("[features]");
    let defaults: Vec<&str> = features["default"]
        .as_array()
        .expect("default = [...]")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    features
        .keys()
        .filter(|name| *name != "default")
        .map(|name| (name.clone(), defaults.contains(&name.as_str())))
        .collect()
}

/// `feature → on by default` from the README's `| feature | default | … |` table.
fn readme_features(readme: &Path) -> BTreeMap<String, bool> {
    let text = std::fs::read_to_string(readme).expect("README.md");
    text.lines()
        .map(str::trim)
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells.first()?.strip_prefix('`')?.strip_suffix('`')?;
            let default = match *cells.get(1)? {
                "yes" => true,
                "no" => false,
                _ => return None,
            };
            Some((name.to_owned(), default))
        })
        .collect()
}

#[test]
fn feature_tables_match_cargo_toml() {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR"));
    let facade = cli.join("../extdata");
    for dir in [cli, facade.as_path()] {
        let documented = readme_features(&dir.join("README.md"));
        let declared = cargo_features(&dir.join("Cargo.toml"));
        assert_eq!(
            documented,
            declared,
            "{}: the README's feature table and Cargo.toml disagree",
            dir.display()
        );
    }
}
