//! `com.ini`: the modeler's model — assets, backing, settlement periods, distribution,
//! signers. See `ini-templates/com.ini` and `docs/com-model.md`.

use super::ConfigError;
use super::ini::{Ini, SectionReader};
use super::values;
use crate::ids::Fingerprint;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComConfig {
    pub name: String,
    pub version: semver::Version,
    pub description: Option<String>,
    /// Length of a settlement period, in seconds.
    pub settlement_period: u64,
    /// Start of period 0, in seconds since the Unix epoch.
    pub epoch: u64,
    pub assets: BTreeMap<String, Asset>,
    pub backing: BTreeMap<String, BackingItem>,
    pub distribution: Distribution,
    pub signers: Signers,
    pub membership: Membership,
}

/// Who receives distributions (`[membership]`): admitted member accounts, never whoever
/// holds a key (keys are free to make).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// How an account is admitted besides by a quorum of signers (which can always admit).
    pub admission: Admission,
    /// Keys whose accounts are members from their opening: the cod's first members.
    pub founders: BTreeSet<Fingerprint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Only a `members` record signed by a quorum of the signer set in force admits.
    Quorum,
    /// Also this many members, each vouching for the account in a transfer (`vouch`); the
    /// vouches count at the next distribution.
    Sponsors(u64),
}

/// Most sponsors com.ini may require.
pub const MAX_SPONSORS: u64 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Digits after the decimal point when amounts are shown; amounts are always integers.
    pub decimals: u8,
    pub description: Option<String>,
}

impl Asset {
    /// Shows an amount of smallest units with the asset's decimals (`1250` → `12.50`).
    pub fn format(&self, units: u64) -> String {
        let d = self.decimals as usize;
        if d == 0 {
            return units.to_string();
        }
        let s = format!("{units:0>width$}", width = d + 1);
        let (int, frac) = s.split_at(s.len() - d);
        format!("{int}.{frac}")
    }

    /// Reads an amount as people write it (`12.5`, `12.50`, `12`) into smallest units.
    pub fn parse(&self, text: &str) -> Result<u64, String> {
        let d = self.decimals as u32;
        let bad = || format!("{text:?} is not an amount with at most {d} decimals");
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        if int.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > d as usize
        {
            return Err(bad());
        }
        let scale = 10u64.pow(d);
        let int: u64 = int.parse().map_err(|_| bad())?;
        let frac: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<width$}", width = d as usize)
                .parse()
                .map_err(|_| bad())?
        };
        int.checked_mul(scale)
            .and_then(|v| v.checked_add(frac))
            .ok_or_else(|| format!("{text} is too large"))
    }
}

/// The three backing classes of the seed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BackingClass {
    /// Physical products: a stock; the latest attested inventory counts.
    Inventory,
    /// Human services: labor supply within the settlement period.
    Labor,
    /// Automated services: hardware/software capacity within the settlement period.
    Capacity,
}

impl BackingClass {
    fn parse(v: &str) -> Result<Self, String> {
        match v {
            "inventory" => Ok(Self::Inventory),
            "labor" => Ok(Self::Labor),
            "capacity" => Ok(Self::Capacity),
            _ => Err(format!(
                "{v:?} is not a backing class: use inventory, labor or capacity"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingItem {
    pub class: BackingClass,
    pub asset: String,
    /// What one unit of the item is (`loaf`, `hour`, `GB-month`), for people.
    pub unit: String,
    /// Smallest units of `asset` that one unit of the item backs.
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formula {
    /// Equal shares among the admitted members.
    Equal,
    /// Pro rata to each member's new net receipts from other members: what members paid it
    /// minus what it paid members, above its highest net so far.
    ProRataPaid,
    /// Pro rata to the value of the work issuance attested for each member since the last
    /// distribution.
    Work,
    /// Fixed weights per member key.
    Weights(BTreeMap<Fingerprint, u64>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub formula: Formula,
    /// Share of the network account's balance (each asset) paid out at each period's end.
    pub share_percent: u8,
    /// May a quorum start a special distribution before the period ends?
    pub special_by_quorum: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signers {
    /// Member keys whose signatures count toward the quorum.
    pub keys: BTreeSet<Fingerprint>,
    pub quorum: usize,
    /// Seconds a signature request stays open.
    pub request_ttl: u64,
    /// The deployer's fallback duty, if com imposes one.
    pub fallback: Fallback,
}

/// MISSION.md "cod deployment" 4: the deployer may be obliged to do what no member accepted,
/// at a priority below every other role — never as an exclusive power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    None,
    /// The deployer's key may stand in for one missing signer once a period's distribution
    /// is this many seconds overdue.
    Deployer {
        after: u64,
    },
}

fn fingerprint(v: &str) -> Result<Fingerprint, String> {
    v.parse()
        .map_err(|e: crate::ids::IdParseError| e.to_string())
}

fn weight(v: &str) -> Result<(Fingerprint, u64), String> {
    let (fp, w) = v
        .split_once('=')
        .ok_or_else(|| format!("{v:?} is not FINGERPRINT=WEIGHT"))?;
    let w = values::u64_in(1, 1_000_000)(w.trim())?;
    Ok((fingerprint(fp.trim())?, w))
}

impl ComConfig {
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let ini = Ini::parse(file, text)?;
        ini.reject_unknown_sections(
            &["com", "distribution", "signers", "membership"],
            &["asset", "backing"],
        )?;

        let mut s = ini.required("com")?;
        let name = s.required("name", values::text)?;
        let version = s.required("version", values::version)?;
        let description = s.optional("description", values::text)?;
        let settlement_period = s.required("settlement_period", values::duration)?.as_secs();
        let epoch = s.required("epoch", values::instant)?;
        s.finish()?;

        let mut assets = BTreeMap::new();
        for (code, mut s) in ini.prefixed("asset") {
            let code = values::code(code).map_err(|m| s.error(m))?;
            let decimals = s.or_default("decimals", 0, values::u64_in(0, 18))? as u8;
            let description = s.optional("description", values::text)?;
            s.finish()?;
            assets.insert(
                code,
                Asset {
                    decimals,
                    description,
                },
            );
        }
        if assets.is_empty() {
            return Err(ConfigError::new(
                file,
                0,
                None,
                "no asset defined: add at least one [asset.CODE] section".into(),
            ));
        }

        let mut backing = BTreeMap::new();
        for (code, mut s) in ini.prefixed("backing") {
            let code = values::code(code).map_err(|m| s.error(m))?;
            let class = s.required("class", BackingClass::parse)?;
            let asset = s.required("asset", values::code)?;
            if !assets.contains_key(&asset) {
                return Err(s.key_error(
                    "asset",
                    format!("no [asset.{asset}] section defines {asset:?}"),
                ));
            }
            let unit = s.required("unit", values::text)?;
            let value = s.required("value", values::u64_in(1, u64::MAX >> 8))?;
            s.finish()?;
            backing.insert(
                code,
                BackingItem {
                    class,
                    asset,
                    unit,
                    value,
                },
            );
        }

        let signers = read_signers(ini.required("signers")?)?;
        let distribution = read_distribution(ini.required("distribution")?)?;
        let membership = read_membership(ini.optional("membership"), &signers, &distribution)?;

        Ok(Self {
            name,
            version,
            description,
            settlement_period,
            epoch,
            assets,
            backing,
            distribution,
            signers,
            membership,
        })
    }

    /// The settlement period an instant (Unix seconds) falls in; instants before the epoch
    /// belong to period 0.
    pub fn period_of(&self, time: u64) -> u64 {
        time.saturating_sub(self.epoch) / self.settlement_period
    }

    /// `[start, end)` of a period, in Unix seconds.
    pub fn period_bounds(&self, period: u64) -> (u64, u64) {
        // Saturating: a period too far out ends at the end of time (and never arrives).
        let start = period
            .saturating_mul(self.settlement_period)
            .saturating_add(self.epoch);
        (start, start.saturating_add(self.settlement_period))
    }
}

fn read_signers(mut s: SectionReader<'_>) -> Result<Signers, ConfigError> {
    let list = s.required("keys", values::list(fingerprint))?;
    if list.is_empty() {
        return Err(s.key_error("keys", "at least one signer key fingerprint is required"));
    }
    let keys: BTreeSet<Fingerprint> = list.iter().copied().collect();
    if keys.len() != list.len() {
        return Err(s.key_error("keys", "a fingerprint is listed twice"));
    }
    // A record carries at most 64 signatures, and a `signers` record names at most 64 keys:
    // a larger set or quorum could never sign anything.
    let max = crate::ledger::record::MAX_SIGS;
    if keys.len() > max {
        return Err(s.key_error("keys", format!("at most {max} signers")));
    }
    let quorum = s.required("quorum", values::u64_in(1, max as u64))? as usize;
    if quorum > keys.len() {
        return Err(s.key_error(
            "quorum",
            format!("quorum {quorum} exceeds the {} listed signers", keys.len()),
        ));
    }
    let request_ttl = s
        .or_default(
            "request_ttl",
            std::time::Duration::from_secs(3600),
            values::duration,
        )?
        .as_secs();
    let fallback = match s
        .or_default("fallback", "none".to_string(), |v| Ok(v.to_string()))?
        .as_str()
    {
        "none" => {
            if s.raw("fallback_after").is_some() {
                return Err(
                    s.key_error("fallback_after", "only meaningful with fallback = deployer")
                );
            }
            Fallback::None
        }
        "deployer" => Fallback::Deployer {
            after: s.required("fallback_after", values::duration)?.as_secs(),
        },
        other => {
            return Err(s.key_error(
                "fallback",
                format!("{other:?} is not a fallback: use none or deployer"),
            ));
        }
    };
    s.finish()?;
    Ok(Signers {
        keys,
        quorum,
        request_ttl,
        fallback,
    })
}

fn read_distribution(mut s: SectionReader<'_>) -> Result<Distribution, ConfigError> {
    let formula_name = s.required("formula", |v| Ok(v.to_string()))?;
    let formula = match formula_name.as_str() {
        "equal" => Formula::Equal,
        "pro_rata_paid" => Formula::ProRataPaid,
        "work" => Formula::Work,
        "weights" => {
            let list = s.required("weights", values::list(weight))?;
            let map: BTreeMap<_, _> = list.iter().copied().collect();
            if map.is_empty() {
                return Err(s.key_error(
                    "weights",
                    "formula = weights needs at least one FINGERPRINT=WEIGHT",
                ));
            }
            if map.len() != list.len() {
                return Err(s.key_error("weights", "a fingerprint is listed twice"));
            }
            Formula::Weights(map)
        }
        other => {
            return Err(s.key_error(
                "formula",
                format!("{other:?} is not a formula: use equal, pro_rata_paid, work or weights"),
            ));
        }
    };
    if !matches!(formula, Formula::Weights(_)) && s.raw("weights").is_some() {
        return Err(s.key_error("weights", "only meaningful with formula = weights"));
    }
    let share_percent = s.or_default("share", 100, values::percent)?;
    let special_by_quorum = match s
        .or_default("special", "never".to_string(), |v| Ok(v.to_string()))?
        .as_str()
    {
        "never" => false,
        "quorum" => true,
        other => return Err(s.key_error("special", format!("{other:?}: use never or quorum"))),
    };
    s.finish()?;
    Ok(Distribution {
        formula,
        share_percent,
        special_by_quorum,
    })
}

/// `[membership]` (optional): who the first members are and how others are admitted.
/// Founders default to the signers' keys and the keys `weights` names.
fn read_membership(
    s: Option<SectionReader<'_>>,
    signers: &Signers,
    distribution: &Distribution,
) -> Result<Membership, ConfigError> {
    let mut founders: BTreeSet<Fingerprint> = signers.keys.clone();
    if let Formula::Weights(w) = &distribution.formula {
        founders.extend(w.keys().copied());
    }
    let Some(mut s) = s else {
        return Ok(Membership {
            admission: Admission::Quorum,
            founders,
        });
    };
    if let Some(list) = s.optional("founders", values::list(fingerprint))? {
        founders = list.iter().copied().collect();
        if founders.len() != list.len() {
            return Err(s.key_error("founders", "a fingerprint is listed twice"));
        }
    }
    let admission = match s
        .or_default("admission", "quorum".to_string(), |v| Ok(v.to_string()))?
        .as_str()
    {
        "quorum" => {
            if s.raw("sponsors").is_some() {
                return Err(s.key_error("sponsors", "only meaningful with admission = sponsors"));
            }
            Admission::Quorum
        }
        "sponsors" => Admission::Sponsors(s.required("sponsors", values::u64_in(1, MAX_SPONSORS))?),
        other => {
            return Err(s.key_error(
                "admission",
                format!("{other:?} is not an admission: use quorum or sponsors"),
            ));
        }
    };
    s.finish()?;
    Ok(Membership {
        admission,
        founders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const FP2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn good() -> String {
        format!(
            "[com]\nname = Bakery model\nversion = 1.0.0\nsettlement_period = 7d\nepoch = 2026-01-05T00:00:00Z\n\
             [asset.codcoin]\ndecimals = 2\n\
             [backing.bread]\nclass = inventory\nasset = codcoin\nunit = loaf\nvalue = 350\n\
             [backing.baking]\nclass = labor\nasset = codcoin\nunit = hour\nvalue = 2000\n\
             [distribution]\nformula = equal\nshare = 50%\n\
             [signers]\nkeys = {FP1}, {FP2}\nquorum = 2\nfallback = deployer\nfallback_after = 2d\n"
        )
    }

    #[test]
    fn parses_a_complete_model() {
        let c = ComConfig::parse("com.ini", &good()).unwrap();
        assert_eq!(c.version, semver::Version::new(1, 0, 0));
        assert_eq!(c.settlement_period, 7 * 86400);
        assert_eq!(c.assets["codcoin"].decimals, 2);
        assert_eq!(c.backing["baking"].class, BackingClass::Labor);
        assert_eq!(c.distribution.share_percent, 50);
        assert_eq!(c.signers.quorum, 2);
        assert_eq!(c.signers.fallback, Fallback::Deployer { after: 2 * 86400 });
        assert_eq!(c.period_of(c.epoch + 7 * 86400), 1);
        assert_eq!(
            c.period_bounds(1),
            (c.epoch + 7 * 86400, c.epoch + 14 * 86400)
        );
    }

    #[test]
    fn every_mistake_is_named_with_line_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "version = 1.0.0",
                "version = one",
                "com.ini:3: key \"version\": in [com]: \"one\" is not a semantic version",
            ),
            (
                "settlement_period = 7d",
                "settlement_period = weekly",
                "com.ini:4: key \"settlement_period\"",
            ),
            (
                "settlement_period = 7d\n",
                "",
                "com.ini:1: key \"settlement_period\": in [com]: missing required key",
            ),
            (
                "decimals = 2",
                "decimals = 2\ncolour = red",
                "com.ini:8: key \"colour\": unknown key in [asset.codcoin]",
            ),
            (
                "class = inventory",
                "class = stock",
                "com.ini:9: key \"class\": in [backing.bread]: \"stock\" is not a backing class",
            ),
            (
                "asset = codcoin\nunit = loaf",
                "asset = euro\nunit = loaf",
                "com.ini:10: key \"asset\": in [backing.bread]: no [asset.euro] section",
            ),
            (
                "quorum = 2",
                "quorum = 3",
                "key \"quorum\": in [signers]: quorum 3 exceeds the 2 listed signers",
            ),
            (
                "formula = equal",
                "formula = lottery",
                "key \"formula\": in [distribution]: \"lottery\" is not a formula",
            ),
            (
                "share = 50%",
                "share = 0.5",
                "key \"share\": in [distribution]: \"0.5\" is not a percentage",
            ),
            (
                "fallback_after = 2d\n",
                "",
                "key \"fallback_after\": in [signers]: missing required key",
            ),
            (
                "[distribution]",
                "[distrib]",
                "com.ini:18: unknown section [distrib]",
            ),
            (
                "[asset.codcoin]",
                "[asset.Cod]",
                "com.ini:6: [asset.Cod]: \"Cod\" is not a valid code",
            ),
        ];
        for (from, to, want) in cases {
            let text = good().replacen(from, to, 1);
            let err = ComConfig::parse("com.ini", &text).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "replacing {from:?}:\n got {err}\nwant {want}"
            );
        }
    }

    #[test]
    fn amounts_format_and_parse_with_decimals() {
        let a = Asset {
            decimals: 2,
            description: None,
        };
        assert_eq!(a.format(1250), "12.50");
        assert_eq!(a.format(5), "0.05");
        assert_eq!(a.parse("12.5"), Ok(1250));
        assert_eq!(a.parse("12"), Ok(1200));
        assert_eq!(a.parse("0.05"), Ok(5));
        for bad in [
            "",
            "1.234",
            "-1",
            "1e3",
            ".5",
            "1.2.3",
            "184467440737095516.16",
        ] {
            assert!(a.parse(bad).is_err(), "{bad:?}");
        }
        let whole = Asset {
            decimals: 0,
            description: None,
        };
        assert_eq!(whole.format(7), "7");
        assert_eq!(whole.parse("7"), Ok(7));
        assert!(whole.parse("7.0").is_err());
    }

    #[test]
    fn membership_founders_default_to_the_signers_and_sponsors_need_a_count() {
        let c = ComConfig::parse("com.ini", &good()).unwrap();
        assert_eq!(c.membership.admission, Admission::Quorum);
        assert_eq!(c.membership.founders, c.signers.keys);
        let fp3 = "3333333333333333333333333333333333333333333333333333333333333333";
        let text = format!(
            "{}[membership]\nfounders = {fp3}\nadmission = sponsors\nsponsors = 2\n",
            good()
        );
        let c = ComConfig::parse("com.ini", &text).unwrap();
        assert_eq!(c.membership.admission, Admission::Sponsors(2));
        assert_eq!(c.membership.founders, [fp3.parse().unwrap()].into());
        for (section, want) in [
            (
                "admission = sponsors\n",
                "key \"sponsors\": in [membership]: missing required key",
            ),
            ("admission = sponsors\nsponsors = 17\n", "key \"sponsors\""),
            (
                "sponsors = 2\n",
                "only meaningful with admission = sponsors",
            ),
            ("admission = lottery\n", "is not an admission"),
            (&format!("founders = {FP1}, {FP1}\n"), "listed twice"),
            (
                "members = 3\n",
                "key \"members\": unknown key in [membership]",
            ),
        ] {
            let text = format!("{}[membership]\n{section}", good());
            let err = ComConfig::parse("com.ini", &text).unwrap_err().to_string();
            assert!(err.contains(want), "{section:?}: {err}");
        }
        let work = good().replace("formula = equal", "formula = work");
        assert_eq!(
            ComConfig::parse("com.ini", &work)
                .unwrap()
                .distribution
                .formula,
            Formula::Work
        );
    }

    #[test]
    fn weights_formula() {
        let text = good().replace(
            "formula = equal",
            &format!("formula = weights\nweights = {FP1}=3, {FP2}=1"),
        );
        let c = ComConfig::parse("com.ini", &text).unwrap();
        let Formula::Weights(w) = &c.distribution.formula else {
            panic!()
        };
        assert_eq!(w.values().sum::<u64>(), 4);
        let text = good().replace("formula = equal", "formula = weights");
        let err = ComConfig::parse("com.ini", &text).unwrap_err().to_string();
        assert!(
            err.contains("key \"weights\": in [distribution]: missing required key"),
            "{err}"
        );
    }
}
