//! Parsers for config values. Each returns `Err(what was expected)`, which the section
//! reader turns into a positioned [`super::ConfigError`].

use std::time::{Duration, SystemTime};

type R<T> = Result<T, String>;

/// A name used in file names and ids: `[a-z0-9][a-z0-9-]*`, at most 64 characters.
pub fn slug(v: &str) -> R<String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{v:?} is not a valid name: use 1-64 lowercase letters, digits and '-', not starting with '-'"
        ))
    }
}

/// An asset or backing item code: `[a-z][a-z0-9_]*`, at most 32 characters.
pub fn code(v: &str) -> R<String> {
    let ok = v.len() <= 32
        && v.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{v:?} is not a valid code: use 1-32 of a-z, 0-9, '_', starting with a letter"
        ))
    }
}

/// Free text, one line, not empty.
pub fn text(v: &str) -> R<String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else if v.len() > 1024 {
        Err("is longer than 1024 characters".into())
    } else {
        Ok(v.to_string())
    }
}

pub fn version(v: &str) -> R<semver::Version> {
    semver::Version::parse(v)
        .map_err(|e| format!("{v:?} is not a semantic version like 1.2.0 ({e})"))
}

/// A positive duration such as `30s`, `10m`, `1h 30m`, `7d`.
pub fn duration(v: &str) -> R<Duration> {
    let d = humantime::parse_duration(v)
        .map_err(|e| format!("{v:?} is not a duration like 30s, 10m, 7d ({e})"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    if d.subsec_nanos() != 0 {
        return Err("must be a whole number of seconds".into());
    }
    Ok(d)
}

/// An RFC 3339 UTC instant such as `2026-01-05T00:00:00Z`, as seconds since the Unix epoch.
pub fn instant(v: &str) -> R<u64> {
    let t = humantime::parse_rfc3339(v).map_err(|e| {
        format!("{v:?} is not an RFC 3339 UTC time like 2026-01-05T00:00:00Z ({e})")
    })?;
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "must not be before 1970".into())
}

pub fn boolean(v: &str) -> R<bool> {
    match v {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean: use true or false")),
    }
}

/// A [`duration`] of `lo` to `hi` seconds.
pub fn duration_in(lo: u64, hi: u64) -> impl Fn(&str) -> R<Duration> {
    move |v| {
        let d = duration(v)?;
        if d.as_secs() < lo || d.as_secs() > hi {
            Err(format!("{v} is out of range {lo}s..={hi}s"))
        } else {
            Ok(d)
        }
    }
}

pub fn u64_in(lo: u64, hi: u64) -> impl Fn(&str) -> R<u64> {
    move |v| {
        let n: u64 = v
            .parse()
            .map_err(|_| format!("{v:?} is not a whole number"))?;
        if n < lo || n > hi {
            Err(format!("{n} is out of range {lo}..={hi}"))
        } else {
            Ok(n)
        }
    }
}

/// A comma-separated list; empty items are refused, an empty value is an empty list.
pub fn list<T>(item: impl Fn(&str) -> R<T>) -> impl Fn(&str) -> R<Vec<T>> {
    move |v| {
        if v.trim().is_empty() {
            return Ok(Vec::new());
        }
        v.split(',')
            .map(str::trim)
            .enumerate()
            .map(|(i, s)| {
                if s.is_empty() {
                    Err(format!("item {} of the list is empty", i + 1))
                } else {
                    item(s).map_err(|e| format!("item {}: {e}", i + 1))
                }
            })
            .collect()
    }
}

/// `host:port`, host a name, IPv4 or `[IPv6]`. Resolution happens at run time, not here.
pub fn host_port(v: &str) -> R<String> {
    let bad = || format!("{v:?} is not host:port");
    let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    port.parse::<u16>()
        .map_err(|_| format!("{v:?}: port {port:?} is not 0-65535"))?;
    Ok(v.to_string())
}

/// A SOCKS5 proxy: `host:port`, or the same after `socks5://` or `socks5h://` (names are
/// always resolved by the proxy). Returns `host:port`.
pub fn socks5_proxy(v: &str) -> R<String> {
    let bare = v
        .strip_prefix("socks5h://")
        .or_else(|| v.strip_prefix("socks5://"))
        .unwrap_or(v);
    if bare.contains("://") || bare.contains('/') {
        return Err(format!("{v:?} is not a SOCKS5 proxy's host:port"));
    }
    host_port(bare)
}

/// A literal socket address to bind, such as `0.0.0.0:7410` or `127.0.0.1:0`.
pub fn ip_addr(v: &str) -> R<std::net::IpAddr> {
    v.parse()
        .map_err(|_| format!("{v:?} is not an IP address like 192.0.2.7 or 2001:db8::1"))
}

pub fn socket_addr(v: &str) -> R<std::net::SocketAddr> {
    v.parse()
        .map_err(|_| format!("{v:?} is not an IP:port address like 0.0.0.0:7410"))
}

/// An archive mirror: an `http://` or `https://` URL, or a directory path.
pub fn mirror(v: &str) -> R<String> {
    if let Some(git) = v.strip_prefix("git+") {
        let ok = ["/", "./", "file://", "git://", "http://"]
            .iter()
            .any(|p| git.starts_with(p));
        return if ok {
            Ok(v.trim_end_matches('/').to_string())
        } else {
            Err(format!(
                "{v:?}: a git mirror is git+ and a repository path (absolute, or starting with ./) or a file://, git:// or http:// URL"
            ))
        };
    }
    if v.starts_with("http://")
        || v.starts_with("https://")
        || v.starts_with('/')
        || v.starts_with('.')
    {
        Ok(v.trim_end_matches('/').to_string())
    } else {
        Err(format!(
            "{v:?} is neither an http(s):// URL, a directory path (absolute, or starting with ./), nor git+ a repository"
        ))
    }
}

/// A percentage `0%`..`100%` (the `%` is required so nobody confuses it with a fraction).
pub fn percent(v: &str) -> R<u8> {
    let n = v
        .strip_suffix('%')
        .ok_or_else(|| format!("{v:?} is not a percentage like 100%"))?;
    let n: u8 = n
        .trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a whole percentage"))?;
    if n > 100 {
        return Err(format!("{n}% is more than 100%"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_accept_and_refuse() {
        assert_eq!(slug("demo-1").unwrap(), "demo-1");
        for bad in ["", "Demo", "-x", "a b", &"a".repeat(65)] {
            assert!(slug(bad).is_err(), "{bad:?}");
        }
        assert!(code("cod_coin2").is_ok());
        assert!(code("2x").is_err());
        assert_eq!(duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(duration("0s").is_err());
        assert!(duration("soon").is_err());
        assert!(duration("1500ms").is_err());
        assert_eq!(instant("2026-01-05T00:00:00Z").unwrap(), 1_767_571_200);
        assert!(instant("yesterday").is_err());
        assert_eq!(list(host_port)("a:1, b:2").unwrap(), ["a:1", "b:2"]);
        assert_eq!(list(host_port)("").unwrap(), Vec::<String>::new());
        assert!(list(host_port)("a:1,,b:2").unwrap_err().contains("item 2"));
        assert!(host_port("nohost").is_err());
        assert!(host_port("h:99999").is_err());
        assert_eq!(percent("100%").unwrap(), 100);
        assert!(percent("101%").is_err());
        assert!(percent("50").is_err());
        assert!(u64_in(1, 5)("6").is_err());
        assert!(boolean("maybe").is_err());
        assert!(mirror("ftp://x").is_err());
        assert_eq!(mirror("http://h/a/").unwrap(), "http://h/a");
        for git in [
            "git+/srv/chain.git",
            "git+./chain.git",
            "git+git://127.0.0.1/c.git",
        ] {
            assert_eq!(mirror(git).unwrap(), git);
        }
        assert!(
            mirror("git+ssh://h/c.git").is_err(),
            "no ssh transport is built in"
        );
        assert!(mirror("git+chain.git").is_err());
    }
}
