//! A small INI reader that remembers line numbers, so every complaint names file, line and
//! key. (The INI crates on crates.io drop positions, which is exactly what an operator
//! fixing a config needs.)
//!
//! Syntax: `[section]` headers, `key = value` lines, full-line comments starting with `;` or
//! `#`, and trailing comments introduced by whitespace followed by `;` or `#`. Keys are
//! case-sensitive; a key or section given twice is an error.

use super::ConfigError;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub struct Ini {
    pub file: String,
    pub sections: Vec<Section>,
}

/// Refuse absurd inputs early: configs are small, hand-written files.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

impl Ini {
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let err = |line: usize, msg: String| ConfigError::new(file, line, None, msg);
        if text.len() > MAX_CONFIG_BYTES {
            return Err(err(
                0,
                format!("file is larger than {MAX_CONFIG_BYTES} bytes"),
            ));
        }
        let mut sections: Vec<Section> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = strip_comment(raw).trim();
            if content.is_empty() {
                continue;
            }
            if let Some(rest) = content.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(err(
                        line,
                        format!("section header {content:?} lacks its closing ']'"),
                    ));
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(err(line, "empty section name".into()));
                }
                if let Some(prev) = sections.iter().find(|s| s.name == name) {
                    return Err(err(
                        line,
                        format!(
                            "section [{name}] appears twice (first at line {})",
                            prev.line
                        ),
                    ));
                }
                sections.push(Section {
                    name: name.to_string(),
                    line,
                    entries: Vec::new(),
                });
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                return Err(err(
                    line,
                    format!("expected `key = value` or `[section]`, got {content:?}"),
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(err(line, "a line starts with '=' and has no key".into()));
            }
            let Some(section) = sections.last_mut() else {
                return Err(ConfigError::new(
                    file,
                    line,
                    Some(key),
                    "key outside any [section]".into(),
                ));
            };
            if let Some(prev) = section.entries.iter().find(|e| e.key == key) {
                return Err(ConfigError::new(
                    file,
                    line,
                    Some(key),
                    format!(
                        "given twice in [{}] (first at line {})",
                        section.name, prev.line
                    ),
                ));
            }
            section.entries.push(Entry {
                key: key.to_string(),
                value: value.to_string(),
                line,
            });
        }
        Ok(Self {
            file: file.to_string(),
            sections,
        })
    }

    /// Reader for a section that must exist.
    pub fn required(&self, name: &str) -> Result<SectionReader<'_>, ConfigError> {
        self.optional(name).ok_or_else(|| {
            ConfigError::new(&self.file, 0, None, format!("missing section [{name}]"))
        })
    }

    /// Reader for a section that may be absent (then every key takes its default).
    pub fn optional(&self, name: &str) -> Option<SectionReader<'_>> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| SectionReader::new(&self.file, s))
    }

    /// Sections named `prefix.NAME`, as (NAME, reader), in file order.
    pub fn prefixed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, SectionReader<'a>)> + 'a {
        self.sections.iter().filter_map(move |s| {
            let rest = s.name.strip_prefix(prefix)?.strip_prefix('.')?;
            Some((rest, SectionReader::new(&self.file, s)))
        })
    }

    /// Errors on any section not in `known` (names) and not starting with one of `prefixes`.
    pub fn reject_unknown_sections(
        &self,
        known: &[&str],
        prefixes: &[&str],
    ) -> Result<(), ConfigError> {
        for s in &self.sections {
            let ok = known.contains(&s.name.as_str())
                || prefixes.iter().any(|p| {
                    s.name
                        .strip_prefix(p)
                        .is_some_and(|r| r.starts_with('.') && r.len() > 1)
                });
            if !ok {
                let mut expected: Vec<String> = known.iter().map(|k| format!("[{k}]")).collect();
                expected.extend(prefixes.iter().map(|p| format!("[{p}.NAME]")));
                return Err(ConfigError::new(
                    &self.file,
                    s.line,
                    None,
                    format!(
                        "unknown section [{}]; expected {}",
                        s.name,
                        expected.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn strip_comment(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with(';') || t.starts_with('#') {
        return "";
    }
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b';' || bytes[i] == b'#') && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

/// Reads typed keys from one section, then [`SectionReader::finish`] rejects keys nobody read.
#[derive(Debug)]
pub struct SectionReader<'a> {
    file: &'a str,
    section: &'a Section,
    used: BTreeSet<&'a str>,
}

impl<'a> SectionReader<'a> {
    fn new(file: &'a str, section: &'a Section) -> Self {
        Self {
            file,
            section,
            used: BTreeSet::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.section.name
    }

    /// An error about the section as a whole (reported at its header line).
    pub fn error(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(
            self.file,
            self.section.line,
            None,
            format!("[{}]: {}", self.section.name, msg.into()),
        )
    }

    /// An error about a key that was given (at its line) or is missing (at the header).
    pub fn key_error(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        let line = self.entry(key).map_or(self.section.line, |e| e.line);
        ConfigError::new(
            self.file,
            line,
            Some(key),
            format!("in [{}]: {}", self.section.name, msg.into()),
        )
    }

    fn entry(&self, key: &str) -> Option<&'a Entry> {
        self.section.entries.iter().find(|e| e.key == key)
    }

    /// The raw value, if given.
    pub fn raw(&mut self, key: &'a str) -> Option<&'a str> {
        self.used.insert(key);
        self.entry(key).map(|e| e.value.as_str())
    }

    /// A key that may be absent, parsed by `parse` (whose `Err` text says what was expected).
    pub fn optional<T>(
        &mut self,
        key: &'a str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).map_err(|m| self.key_error(key, m)),
        }
    }

    pub fn or_default<T>(
        &mut self,
        key: &'a str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        Ok(self.optional(key, parse)?.unwrap_or(default))
    }

    pub fn required<T>(
        &mut self,
        key: &'a str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.optional(key, parse)? {
            Some(v) => Ok(v),
            None => Err(self.key_error(key, "missing required key")),
        }
    }

    /// Rejects any key this reader was not asked for, naming the keys it knows.
    pub fn finish(self) -> Result<(), ConfigError> {
        if let Some(e) = self
            .section
            .entries
            .iter()
            .find(|e| !self.used.contains(e.key.as_str()))
        {
            let known: Vec<&str> = self.used.iter().copied().collect();
            return Err(ConfigError::new(
                self.file,
                e.line,
                Some(&e.key),
                format!(
                    "unknown key in [{}]; known keys: {}",
                    self.section.name,
                    known.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_keys_comments() {
        let ini = Ini::parse(
            "t.ini",
            "; header\n[a]\nx = 1 ; trailing\ny=two words # also trailing\nurl = http://h/p#frag\n\n[b.c]\nz =\n",
        )
        .unwrap();
        assert_eq!(ini.sections.len(), 2);
        let a = &ini.sections[0];
        assert_eq!((a.name.as_str(), a.line), ("a", 2));
        let kv: Vec<_> = a
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            kv,
            [
                ("x", "1", 3),
                ("y", "two words", 4),
                ("url", "http://h/p#frag", 5)
            ]
        );
        assert_eq!(ini.sections[1].entries[0].value, "");
        assert_eq!(
            ini.prefixed("b")
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>(),
            ["c"]
        );
    }

    #[test]
    fn syntax_errors_name_line_and_key() {
        let cases = [
            ("x = 1\n", "t.ini:1: key \"x\": key outside any [section]"),
            (
                "[a]\nnonsense\n",
                "t.ini:2: expected `key = value` or `[section]`, got \"nonsense\"",
            ),
            (
                "[a\n",
                "t.ini:1: section header \"[a\" lacks its closing ']'",
            ),
            (
                "[a]\nx=1\nx=2\n",
                "t.ini:3: key \"x\": given twice in [a] (first at line 2)",
            ),
            (
                "[a]\n[a]\n",
                "t.ini:2: section [a] appears twice (first at line 1)",
            ),
            (
                "[a]\n= 3\n",
                "t.ini:2: a line starts with '=' and has no key",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                Ini::parse("t.ini", text).unwrap_err().to_string(),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn reader_reports_missing_bad_and_unknown_keys() {
        let ini = Ini::parse("t.ini", "[a]\nn = x\nextra = 1\n").unwrap();
        let mut r = ini.required("a").unwrap();
        let e = r
            .required("n", |v| {
                v.parse::<u32>().map_err(|_| "must be a number".into())
            })
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ini:2: key \"n\": in [a]: must be a number"
        );
        let e = r.required("m", |v| Ok(v.to_string())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ini:1: key \"m\": in [a]: missing required key"
        );
        let e = r.finish().unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ini:3: key \"extra\": unknown key in [a]; known keys: m, n"
        );
        assert_eq!(
            ini.required("zzz").unwrap_err().to_string(),
            "t.ini: missing section [zzz]"
        );
    }
}
