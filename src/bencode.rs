//! Bencode (BEP 3) as it arrives from strangers: a bounded scanner and a checked decoder.
//! Pure: bytes in, values out.
//!
//! `serde_bencode` recurses once per nesting level with no limit, so 20 KB of `l` can
//! overflow a thread's stack; it also accepts trailing bytes. Everything cod decodes from a
//! peer or a file therefore goes through [`from_bytes`], which first scans the value with
//! [`value_len`] (nesting at most [`MAX_DEPTH`], lengths checked) and requires it to span the
//! input exactly.

use serde::de::DeserializeOwned;

/// Deepest nesting of lists and dictionaries accepted. cod's own messages nest at most 3.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BencodeError {
    #[error(
        "not one well-formed bencoded value (truncated, nested deeper than {MAX_DEPTH}, or followed by other bytes)"
    )]
    Malformed,
    #[error("bencoded value of the wrong shape: {0}")]
    Shape(String),
}

/// Length of the bencoded value at the start of `b`, or `None` if it is not one (truncated,
/// malformed, or nested deeper than [`MAX_DEPTH`]). Bytes after the value are not looked at:
/// BEP 9 data messages append raw bytes to their dictionary.
pub fn value_len(b: &[u8]) -> Option<usize> {
    // An explicit stack of open containers, so no input can make this recurse.
    let mut depth = 0usize;
    let mut at = 0usize;
    loop {
        match *b.get(at)? {
            b'i' => {
                let digits = &b[at + 1..];
                let end = digits.iter().position(|c| *c == b'e')?;
                let n = &digits[..end];
                let sign = usize::from(n.first() == Some(&b'-'));
                let valid = n.len() > sign
                    && n[sign..].iter().all(u8::is_ascii_digit)
                    && !(n[sign] == b'0' && n.len() > sign + 1)
                    && n != b"-0";
                if !valid {
                    return None;
                }
                at = at.checked_add(end + 2)?;
            }
            b'l' | b'd' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                at += 1;
                continue;
            }
            b'e' if depth > 0 => {
                depth -= 1;
                at += 1;
            }
            b'0'..=b'9' => {
                let colon = at + b[at..].iter().position(|c| *c == b':')?;
                let digits = &b[at..colon];
                if !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0')
                {
                    return None;
                }
                let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
                let end = colon.checked_add(1)?.checked_add(n)?;
                if end > b.len() {
                    return None;
                }
                at = end;
            }
            _ => return None,
        }
        if depth == 0 {
            return Some(at);
        }
    }
}

/// Decodes `bytes`, which must be exactly one well-formed value no deeper than [`MAX_DEPTH`].
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BencodeError> {
    if value_len(bytes) != Some(bytes.len()) {
        return Err(BencodeError::Malformed);
    }
    serde_bencode::from_bytes(bytes).map_err(|e| BencodeError::Shape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn lengths_of_values() {
        assert_eq!(value_len(b"d1:ai1e1:bl3:xyzee..."), Some(18));
        assert_eq!(value_len(b"i-12e"), Some(5));
        assert_eq!(value_len(b"0:"), Some(2));
        assert_eq!(value_len(b"le"), Some(2));
        for bad in [
            &b"d1:a"[..],
            b"5:ab",
            b"i12",
            b"ie",
            b"i-e",
            b"i-0e",
            b"i01e",
            b"i1x2e",
            b"01:a",
            b"e",
            b"x",
            b"",
            b"l",
            b"18446744073709551615:a",
            b"99999999999999999999999:a",
        ] {
            assert_eq!(value_len(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        // The payload that overflowed the stack in serde_bencode: 10,000 open lists.
        let mut deep = b"d1:x".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 10_000));
        deep.extend(std::iter::repeat_n(b'e', 10_000));
        deep.push(b'e');
        assert_eq!(value_len(&deep), None);
        assert_eq!(
            from_bytes::<BTreeMap<String, i64>>(&deep),
            Err(BencodeError::Malformed)
        );
        // At the limit it still scans.
        let mut ok = "l".repeat(MAX_DEPTH).into_bytes();
        ok.extend("e".repeat(MAX_DEPTH).into_bytes());
        assert_eq!(value_len(&ok), Some(ok.len()));
        let mut over = "l".repeat(MAX_DEPTH + 1).into_bytes();
        over.extend("e".repeat(MAX_DEPTH + 1).into_bytes());
        assert_eq!(value_len(&over), None);
    }

    #[test]
    fn decoding_needs_exactly_one_value() {
        let m: BTreeMap<String, i64> = from_bytes(b"d1:ai1ee").unwrap();
        assert_eq!(m["a"], 1);
        assert_eq!(
            from_bytes::<BTreeMap<String, i64>>(b"d1:ai1eeXX"),
            Err(BencodeError::Malformed)
        );
        assert!(matches!(
            from_bytes::<BTreeMap<String, i64>>(b"d1:a1:xe"),
            Err(BencodeError::Shape(_))
        ));
    }
}
