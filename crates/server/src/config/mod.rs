//! Configuration in Kestrel's schema, from a file (JSON or TOML) and the
//! environment, applied to a [`ServerBuilder`](crate::ServerBuilder).
//!
//! The file's `Kestrel` section (also read as `Kite`) holds `Endpoints`,
//! `EndpointDefaults`, `Certificates` and `Limits`; top-level `Urls` and
//! `AllowedHosts` sit beside it. Keys are case-insensitive, as in .NET
//! configuration. Environment variables under the prefix `KITE__` name a
//! key by its whole path with `__` between the parts and override the file:
//! `KITE__Kestrel__Limits__MaxConcurrentConnections=100`,
//! `KITE__AllowedHosts=example.com`.
//!
//! ```
//! use kite_server::config::Config;
//!
//! let config = Config::from_json_str(
//!     r#"{ "Kestrel": { "Endpoints": { "Http": { "Url": "http://127.0.0.1:0" } },
//!                       "Limits": { "MaxConcurrentConnections": 100 } } }"#,
//!     [("KITE__Kestrel__Limits__MaxConcurrentConnections", "50")],
//! )
//! .unwrap();
//! let builder = kite_server::Server::builder().configuration(&config).unwrap();
//! assert_eq!(builder.current_options().http.limits.max_concurrent_connections, Some(50));
//! ```

mod apply;
mod node;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use node::Node;

/// The environment variable prefix: `KITE__Section__Key=value`.
pub const ENV_PREFIX: &str = "KITE__";

/// Loaded configuration: the file's tree with the environment laid over it.
#[derive(Clone, Debug)]
pub struct Config {
    tree: Value,
    /// The file it came from, for messages and relative paths.
    file: Option<PathBuf>,
    /// The file's stamp from just before it was read.
    read_stamp: Option<FileStamp>,
}

/// A file's identity for change detection: modification time and size.
pub(crate) type FileStamp = (std::time::SystemTime, u64);

/// `path`'s [`FileStamp`], if it can be read.
pub(crate) fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Config {
    /// Reads `file` (JSON for `.json`, TOML for `.toml`), then lays the
    /// process's `KITE__` environment variables over it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file when it cannot be read or parsed.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(file, std::env::vars())
    }

    /// Reads `file` (if any), then lays `env` over it: only variables
    /// under [`ENV_PREFIX`] are read.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file when it cannot be read or parsed.
    pub fn from_sources<K, V>(file: Option<&Path>, env: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        // Stamped before the read: a change made while it is read is seen.
        let read_stamp = file.and_then(file_stamp);
        let tree = match file {
            Some(path) => parse_file(path)?,
            None => Value::Object(Map::new()),
        };
        let mut config = Self { tree, file: file.map(Path::to_path_buf), read_stamp };
        config.overlay_env(env);
        Ok(config)
    }

    /// Parses JSON text, then lays `env` over it (for tests and embedding).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the text is not JSON.
    pub fn from_json_str<K, V>(json: &str, env: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let tree = serde_json::from_str(json)
            .map_err(|e| ConfigError::new(None, "", format!("not valid JSON: {e}"), "fix the syntax"))?;
        let mut config = Self { tree, file: None, read_stamp: None };
        config.overlay_env(env);
        Ok(config)
    }

    fn overlay_env<K: AsRef<str>, V: AsRef<str>>(&mut self, env: impl IntoIterator<Item = (K, V)>) {
        for (key, value) in env {
            let Some(path) = key.as_ref().strip_prefix(ENV_PREFIX) else { continue };
            let parts: Vec<&str> = path.split("__").filter(|p| !p.is_empty()).collect();
            if !parts.is_empty() {
                set_path(&mut self.tree, &parts, Value::String(value.as_ref().to_string()));
            }
        }
    }

    /// The root of the tree.
    pub fn root(&self) -> Node<'_> {
        Node::root(&self.tree, self.file.as_deref())
    }

    /// The `Kestrel` section, or `Kite` when there is no `Kestrel`.
    pub fn kestrel(&self) -> Node<'_> {
        let root = self.root();
        let kestrel = root.get("Kestrel");
        if kestrel.exists() {
            kestrel
        } else {
            root.get("Kite")
        }
    }

    /// The file the configuration came from.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The file's stamp from just before it was read: a reload watcher
    /// starts from it, so a change made after the read is never missed.
    pub(crate) fn read_stamp(&self) -> Option<FileStamp> {
        self.read_stamp
    }

    /// Resolves a path from the configuration: relative paths are relative
    /// to the configuration file's directory.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        let path = PathBuf::from(path);
        match (&self.file, path.is_relative()) {
            (Some(file), true) => file.parent().map_or(path.clone(), |dir| dir.join(&path)),
            _ => path,
        }
    }
}

fn parse_file(path: &Path) -> Result<Value, ConfigError> {
    let file = Some(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file, "", format!("cannot be read: {e}"), "check the --config path"))?;
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    parse_text(file, &text, &extension)
}

/// Parses `text` in the format its file's `extension` names.
fn parse_text(file: Option<&Path>, text: &str, extension: &str) -> Result<Value, ConfigError> {
    match extension {
        #[cfg(feature = "toml")]
        "toml" => {
            let value: toml::Value = toml::from_str(text)
                .map_err(|e| ConfigError::new(file, "", format!("is not valid TOML: {e}"), "fix the syntax"))?;
            serde_json::to_value(value)
                .map_err(|e| ConfigError::new(file, "", format!("cannot be read: {e}"), "fix the syntax"))
        }
        #[cfg(not(feature = "toml"))]
        "toml" => Err(ConfigError::new(
            file,
            "",
            "is TOML, which this build does not read".to_string(),
            "use JSON, or build with the `toml` feature (kite's or kite-server's)",
        )),
        "json" => serde_json::from_str(text)
            .map_err(|e| ConfigError::new(file, "", format!("is not valid JSON: {e}"), "fix the syntax")),
        _ => Err(ConfigError::new(file, "", "has an unknown format", "name it .json or .toml")),
    }
}

/// Sets `value` at `parts`, matching existing keys without case, making
/// objects on the way.
fn set_path(tree: &mut Value, parts: &[&str], value: Value) {
    if !tree.is_object() {
        *tree = Value::Object(Map::new());
    }
    let Value::Object(map) = tree else { return };
    let key = map.keys().find(|k| k.eq_ignore_ascii_case(parts[0])).cloned().unwrap_or_else(|| parts[0].to_string());
    if parts.len() == 1 {
        map.insert(key, value);
        return;
    }
    let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    set_path(child, &parts[1..], value);
}

/// A configuration value that cannot be used: the file, the key (its whole
/// path, as `Kestrel:Limits:MaxConcurrentConnections`), what is wrong, and
/// how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or `environment` when the configuration had none.
    pub file: String,
    /// The key's whole path; empty for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl ConfigError {
    pub(crate) fn new(file: Option<&Path>, key: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            file: file.map_or_else(|| "configuration".to_string(), |f| f.display().to_string()),
            key: key.to_string(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{} {}; {}", self.file, self.message, self.fix)
        } else {
            write!(f, "{}: {}: {}; {}", self.file, self.key, self.message, self.fix)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The configuration reader on arbitrary text, for the fuzz target
/// (`fuzz/fuzz_targets/config.rs`): `text` read as JSON, or as TOML with
/// `toml`, then applied to a server builder. It may refuse with an error,
/// never panic.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz(text: &str, toml: bool) {
    let Ok(tree) = parse_text(None, text, if toml { "toml" } else { "json" }) else { return };
    let mut config = Config { tree, file: None, read_stamp: None };
    config.overlay_env([("KITE__Kestrel__Limits__MaxRequestBodySize", "1024")]);
    let _ = crate::Server::builder().configuration(&config);
}
