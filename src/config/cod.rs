//! `cod.ini`: the deployer's deployment — the cod's name and version, who deployed it, and
//! whether the deployer accepts the fallback duty com may impose.

use super::ConfigError;
use super::com::{ComConfig, Fallback};
use super::ini::Ini;
use super::values;

/// How every package file name ends.
pub const PACKAGE_SUFFIX: &str = ".cod.tar";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodConfig {
    /// Names the package file (`NAME-VERSION.cod.tar`).
    pub name: String,
    pub version: semver::Version,
    pub description: Option<String>,
    /// The deployer may stay anonymous: both fields are optional.
    pub deployer_name: Option<String>,
    pub deployer_contact: Option<String>,
    pub accepts_fallback: bool,
    /// The ledger this deployment continues (an earlier version's cod id); `None`: it starts
    /// its own, identified by its own cod id.
    pub ledger: Option<crate::ids::CodId>,
    /// Archive mirrors every node of the cod writes to and restores from (`[archive]
    /// mirrors`): http(s) URLs or absolute directory paths — a package has no place of its
    /// own to be relative to.
    pub mirrors: Vec<String>,
}

impl CodConfig {
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let ini = Ini::parse(file, text)?;
        ini.reject_unknown_sections(&["cod", "deployer", "archive"], &[])?;
        let mut s = ini.required("cod")?;
        let name = s.required("name", values::slug)?;
        let version = s.required("version", values::version)?;
        let description = s.optional("description", values::text)?;
        let ledger = s.optional("ledger", |v| {
            v.parse::<crate::ids::CodId>().map_err(|e| e.to_string())
        })?;
        s.finish()?;
        let (mut deployer_name, mut deployer_contact, mut accepts_fallback) = (None, None, false);
        if let Some(mut s) = ini.optional("deployer") {
            deployer_name = s.optional("name", values::text)?;
            deployer_contact = s.optional("contact", values::text)?;
            accepts_fallback = match s
                .or_default("fallback", "decline".to_string(), |v| Ok(v.to_string()))?
                .as_str()
            {
                "accept" => true,
                "decline" => false,
                other => {
                    return Err(
                        s.key_error("fallback", format!("{other:?}: use accept or decline"))
                    );
                }
            };
            s.finish()?;
        }
        let mut mirrors = Vec::new();
        if let Some(mut s) = ini.optional("archive") {
            mirrors = s.or_default("mirrors", Vec::new(), values::list(package_mirror))?;
            s.finish()?;
        }
        Ok(Self {
            name,
            version,
            description,
            deployer_name,
            deployer_contact,
            accepts_fallback,
            ledger,
            mirrors,
        })
    }

    /// Cross-checks with the model this cod deploys: a fallback duty com imposes must be
    /// accepted by the deployer before the package can be made.
    pub fn check_against(&self, com: &ComConfig, file: &str) -> Result<(), ConfigError> {
        if matches!(com.signers.fallback, Fallback::Deployer { .. }) && !self.accepts_fallback {
            return Err(ConfigError::new(
                file,
                0,
                Some("fallback"),
                "com.ini gives the deployer a fallback duty ([signers] fallback = deployer); accept it with `fallback = accept` in [deployer]".into(),
            ));
        }
        Ok(())
    }

    /// The package's file name, which is also the torrent's `name` (and so part of the cod id).
    pub fn package_file_name(&self) -> String {
        format!("{}-{}{PACKAGE_SUFFIX}", self.name, self.version)
    }
}

/// A mirror a package names: as node.ini's, but never a relative path.
fn package_mirror(v: &str) -> Result<String, String> {
    if v.starts_with('.') || v.starts_with("git+.") {
        return Err(format!(
            "{v:?}: a package's mirrors are http(s):// URLs or absolute paths"
        ));
    }
    values::mirror(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let c = CodConfig::parse(
            "cod.ini",
            "[cod]\nname = bakery\nversion = 1.2.0\n[deployer]\ncontact = x@y\nfallback = accept\n",
        )
        .unwrap();
        assert_eq!(c.package_file_name(), "bakery-1.2.0.cod.tar");
        assert!(c.accepts_fallback);
        assert_eq!(c.deployer_name, None);
        assert!(c.mirrors.is_empty());
        let m = CodConfig::parse(
            "cod.ini",
            "[cod]\nname = b\nversion = 1.0.0\n[archive]\nmirrors = https://example.org/chain/, /srv/chain\n",
        )
        .unwrap();
        assert_eq!(m.mirrors, ["https://example.org/chain", "/srv/chain"]);
        let cases = [
            (
                "[cod]\nname = Bakery\nversion = 1.0.0\n",
                "cod.ini:2: key \"name\": in [cod]: \"Bakery\" is not a valid name: use 1-64 lowercase letters, digits and '-', not starting with '-'",
            ),
            (
                "[cod]\nname = b\n",
                "cod.ini:1: key \"version\": in [cod]: missing required key",
            ),
            (
                "[cod]\nname = b\nversion = 1.0.0\n[deployer]\nfallback = maybe\n",
                "cod.ini:5: key \"fallback\": in [deployer]: \"maybe\": use accept or decline",
            ),
            (
                "[cod]\nname = b\nversion = 1.0.0\n[extra]\n",
                "cod.ini:4: unknown section [extra]; expected [cod], [deployer], [archive]",
            ),
            (
                "[cod]\nname = b\nversion = 1.0.0\n[archive]\nmirrors = ./chain\n",
                "cod.ini:5: key \"mirrors\": in [archive]: item 1: \"./chain\": a package's mirrors are http(s):// URLs or absolute paths",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                CodConfig::parse("cod.ini", text).unwrap_err().to_string(),
                want
            );
        }
    }
}
