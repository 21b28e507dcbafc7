//! A cursor over the configuration tree that looks keys up without case
//! and remembers its path, so every error names the key.

use std::path::Path;

use serde_json::Value;

use super::ConfigError;

/// One key of the configuration, present or not.
#[derive(Clone, Debug)]
pub struct Node<'a> {
    value: Option<&'a Value>,
    file: Option<&'a Path>,
    /// The key's whole path, .NET style.
    path: String,
}

impl<'a> Node<'a> {
    pub(crate) fn root(value: &'a Value, file: Option<&'a Path>) -> Self {
        Self { value: Some(value), file, path: String::new() }
    }

    /// The child `key`, matched without case.
    pub fn get(&self, key: &str) -> Node<'a> {
        let found = match self.value {
            Some(Value::Object(map)) => map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)),
            _ => None,
        };
        let (name, value) = match found {
            Some((name, value)) => (name.as_str(), Some(value)),
            None => (key, None),
        };
        Node { value, file: self.file, path: self.child_path(name) }
    }

    /// Whether the key is present (and not `null`).
    pub fn exists(&self) -> bool {
        self.value.is_some_and(|v| !v.is_null())
    }

    /// The raw value.
    pub fn value(&self) -> Option<&'a Value> {
        self.value
    }

    /// The children of an object, in file order, with their keys as
    /// written.
    pub fn entries(&self) -> Vec<(&'a str, Node<'a>)> {
        match self.value {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.as_str(), Node { value: Some(v), file: self.file, path: self.child_path(k) }))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn child_path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}:{name}", self.path)
        }
    }

    /// The key's whole path, .NET style: `Kestrel:Limits:MaxRequestBodySize`.
    pub fn key(&self) -> String {
        self.path.clone()
    }

    /// An error about this key.
    pub fn error(&self, message: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, &self.key(), message, fix)
    }

    /// A string value; numbers and booleans are taken as their text.
    pub fn string(&self) -> Result<Option<String>, ConfigError> {
        match self.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.error("must be a single value", "give a string")),
        }
    }

    /// A whole number (a JSON number or its text, as the environment gives).
    pub fn u64(&self) -> Result<Option<u64>, ConfigError> {
        match self.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_u64().map(Some).ok_or_else(|| self.error(format!("is {n}"), "give a whole number, 0 or more"))
            }
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| {
                    self.error(format!("is \"{s}\", not a whole number"), "give a whole number, 0 or more")
                })
            }
            Some(other) => Err(self.error(format!("is {other}"), "give a whole number")),
        }
    }

    /// A whole number that fits `T` (a count, a size, a window).
    pub fn number<T: TryFrom<u64>>(&self) -> Result<Option<T>, ConfigError> {
        self.u64()?
            .map(|n| T::try_from(n).map_err(|_| self.error(format!("is {n}, too large"), "give a smaller number")))
            .transpose()
    }

    /// A `true`/`false` value, or its text.
    pub fn bool(&self) -> Result<Option<bool>, ConfigError> {
        match self.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(self.error(format!("is {other}"), "give true or false")),
        }
    }

    /// A list: a JSON array, an object with keys `0`, `1`, … (as the
    /// environment makes them), or a string of comma- or
    /// semicolon-separated items.
    pub fn list(&self) -> Result<Option<Vec<String>>, ConfigError> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let items: Vec<String> = match self.value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(items)) => items.iter().filter_map(text).collect(),
            Some(Value::Object(map)) => {
                let mut indexed: Vec<(usize, String)> =
                    map.iter().filter_map(|(k, v)| Some((k.parse().ok()?, text(v)?))).collect();
                indexed.sort();
                indexed.into_iter().map(|(_, v)| v).collect()
            }
            Some(Value::String(s)) => {
                s.split([',', ';']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
            }
            Some(other) => return Err(self.error(format!("is {other}"), "give a list")),
        };
        Ok(Some(items))
    }
}
