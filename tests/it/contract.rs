//! Generated artifacts are committed and must not drift.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn the_committed_openapi_document_matches_the_served_one() {
    use clap::Parser as _;
    let path = root().join("openapi/mailconnect.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let config =
        mailconnect::config::Config::resolve(mailconnect::config::Cli::parse_from(["mailconnect"]))
            .unwrap();
    let current = mailconnect::app::openapi_document(&config).await.unwrap();
    assert!(
        committed == current,
        "openapi/mailconnect.json is out of date: run `cargo run -q -- openapi > openapi/mailconnect.json` and review the diff"
    );
}

#[test]
fn every_tool_schema_is_valid_draft_2020_12_and_listed() {
    let catalog: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("schemas/tools.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = catalog["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for entry in std::fs::read_dir(root().join("schemas/tools")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let tool = file.split('.').next().unwrap();
        assert!(
            names.contains(&tool),
            "{file} belongs to no tool in schemas/tools.json"
        );
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{file}"
        );
        assert!(
            jsonschema::meta::is_valid(&schema),
            "{file} is not a valid JSON Schema"
        );
    }
}
