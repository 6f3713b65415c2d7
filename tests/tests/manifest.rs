//! `spin.toml` must be a manifest real Spin accepts: valid against Spin's own JSON Schema,
//! plus the rules Spin checks beyond the schema.

use orchestrator_e2e::{repo_root, toml_file_as_json};

fn spin_schema() -> jsonschema::Validator {
    let path = repo_root().join("../shared/spin/manifest-v2.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read Spin's schema at {}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("Spin's schema compiles")
}

#[test]
fn spin_toml_passes_spins_own_schema() {
    let manifest = toml_file_as_json(&repo_root().join("spin.toml"));
    let validator = spin_schema();
    let errors: Vec<String> = validator
        .iter_errors(&manifest)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "spin.toml is not a valid Spin manifest: {errors:#?}"
    );
}

#[test]
fn the_schema_check_rejects_a_broken_manifest() {
    // Proves the validation above can fail: a route must be a string, a manifest needs
    // an [application].
    let broken =
        serde_json::json!({ "spin_manifest_version": 2, "trigger": { "http": [{ "route": 5 }] } });
    assert!(!spin_schema().is_valid(&broken));
}

#[test]
fn spin_toml_follows_spins_naming_rules_and_wires_every_component() {
    let manifest = toml_file_as_json(&repo_root().join("spin.toml"));
    let lower_snake = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    for name in manifest["variables"].as_object().unwrap().keys() {
        assert!(lower_snake(name), "variable {name} is not lower snake case");
    }
    let components = manifest["component"].as_object().unwrap();
    for (id, component) in components {
        assert!(
            id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "component id {id}"
        );
        // The dashboard serves files embedded in it: no database, no variables.
        let expected_databases = if id == "ui" {
            serde_json::Value::Null
        } else {
            serde_json::json!(["default"])
        };
        assert_eq!(component["sqlite_databases"], expected_databases, "{id}");
        assert!(component["build"]["command"]
            .as_str()
            .unwrap()
            .contains("wasm32-wasip2"));
        let no_variables = serde_json::Map::new();
        let variables = component["variables"].as_object().unwrap_or(&no_variables);
        for (var, value) in variables {
            assert!(lower_snake(var));
            assert!(
                manifest["variables"].get(var).is_some(),
                "{id}.{var} has no app variable"
            );
            assert_eq!(value.as_str().unwrap(), format!("{{{{ {var} }}}}"));
        }
    }
    let routes: Vec<(&str, &str)> = manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["route"].as_str().unwrap(),
                t["component"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("/api/agents/...", "agents"),
            ("/api/runtime/...", "runtime"),
            ("/api/approvals/...", "runtime"),
            ("/api/runner/...", "runtime"),
            ("/api/events/...", "events"),
            ("/api/ingest/...", "ingest"),
            ("/v1/...", "ingest"),
            ("/", "ui"),
            ("/ui/...", "ui"),
            ("/...", "meta"),
        ]
    );
    for (_, component) in routes {
        assert!(components.contains_key(component));
    }
}

#[test]
fn runtime_config_maps_the_default_database_to_a_file() {
    let config = toml_file_as_json(&repo_root().join("runtime-config.toml"));
    assert_eq!(config["sqlite_database"]["default"]["type"], "spin");
    assert_eq!(
        config["sqlite_database"]["default"]["path"],
        "data/orchestrator.db"
    );
}
