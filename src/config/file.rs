//! The TOML file named by `--config`. Its keys are the flags' names with `_` for `-`, and its
//! values are read as if they were given on the command line before the real one: each
//! setting is defined once, on [`Cli`](super::Cli), and a flag or an environment variable
//! wins over the file. `[[clients]]` is the one section without a flag.

use std::{ffi::OsString, path::Path};

use clap::parser::ValueSource;
use serde::Deserialize;

use crate::domain::secret::SecretString;

/// A client the operator registered (`[[clients]]`), as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientEntry {
    /// Its client id.
    pub id: String,
    /// The name the consent screen shows.
    pub name: String,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Its secret (then it authenticates with HTTP Basic or in the body).
    pub secret: Option<SecretString>,
    /// `none`, `client_secret_basic` (the default with a secret) or `client_secret_post`.
    pub auth_method: Option<String>,
}

/// What the file adds to the command line.
#[derive(Debug, Default)]
pub(super) struct FileLayer {
    /// Its settings as flags, those the command line and environment don't already give.
    pub args: Vec<OsString>,
    /// Its `[[clients]]`.
    pub clients: Vec<ClientEntry>,
    /// What is wrong with it.
    pub problems: Vec<String>,
}

/// Reads the file at `path`; `given` is what `command` parsed of the command line and
/// environment.
pub(super) fn read(path: &Path, command: &clap::Command, given: &clap::ArgMatches) -> FileLayer {
    let mut layer = FileLayer::default();
    let at = path.display();
    let table = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            text.parse::<toml::Table>()
                .map_err(|e| e.message().to_owned())
        }) {
        Ok(table) => table,
        Err(e) => {
            layer.problems.push(format!("config file {at}: {e}"));
            return layer;
        }
    };
    for (key, value) in table {
        if key == "clients" {
            match value.try_into::<Vec<ClientEntry>>() {
                Ok(clients) => layer.clients = clients,
                Err(e) => layer
                    .problems
                    .push(format!("config file {at}: [[clients]]: {}", e.message())),
            }
            continue;
        }
        // Test switches and the file's own name are flags only.
        let Some((arg, long)) = command
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_id() != "config")
            .find(|a| a.get_id() == key.as_str())
            .and_then(|a| a.get_long().map(|long| (a, long)))
        else {
            layer
                .problems
                .push(format!("config file {at}: unknown setting {key:?}"));
            continue;
        };
        if matches!(
            given.value_source(key.as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let text = match value {
            toml::Value::Boolean(on) if !arg.get_action().takes_values() => {
                if on {
                    layer.args.push(format!("--{long}").into());
                }
                continue;
            }
            toml::Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Option<Vec<_>>>()
                .map(|items| items.join(",")),
            other => scalar(&other),
        };
        match text {
            Some(text) => layer.args.push(format!("--{long}={text}").into()),
            None => layer.problems.push(format!(
                "config file {at}: {key} must be a string, number or list"
            )),
        }
    }
    layer
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(n) => Some(n.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}
