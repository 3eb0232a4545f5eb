//! Typed, validated configuration: `com.ini` (the modeler's model), `cod.ini` (the
//! deployer's deployment), `node.ini` (one member's node). Pure: parses text, never reads
//! files. Every error names file, line and key. `ini-templates/` documents every key.

pub mod cod;
pub mod com;
mod ini;
pub mod node;
pub mod values;

pub use cod::CodConfig;
pub use com::ComConfig;
pub use ini::Ini;
pub use node::NodeConfig;

use std::fmt;

/// A config problem, positioned. `line` 0 means the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &str, line: usize, key: Option<&str>, message: String) -> Self {
        Self {
            file: file.to_string(),
            line,
            key: key.map(str::to_string),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key {key:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}
