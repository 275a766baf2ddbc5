//! The grammar of names shared by references, the catalog and every API profile.
//!
//! The rules follow the OCI distribution specification: a repository path is components of
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`; a tag is `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.

/// The longest repository path (without the registry) this service accepts; Docker's own limit.
pub const MAX_REPOSITORY_LEN: usize = 255;

/// Checks one path component of a repository name, such as `library` or `redis`.
pub fn path_component(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(format!("`{s}` must start and end with a lowercase letter or digit"));
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if alnum(c) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or one or more `-`, always followed by an alphanumeric.
        let start = i;
        match c {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => {
                return Err(format!(
                    "`{s}` may contain only lowercase letters, digits and the separators `.`, `_`, `__`, `-`"
                ));
            }
        }
        if !b.get(i).copied().is_some_and(alnum) {
            return Err(format!("`{s}` has a misplaced separator at position {start}"));
        }
    }
    Ok(())
}

/// Checks a repository path (`library/redis`, `grafana/grafana`, `a/b/c`).
pub fn repository_path(s: &str) -> Result<(), String> {
    if s.len() > MAX_REPOSITORY_LEN {
        return Err(format!("is {} characters long; at most {MAX_REPOSITORY_LEN} are allowed", s.len()));
    }
    s.split('/').try_for_each(path_component)
}

/// Checks a tag (`7-alpine`, `latest`, `2.0.0-cuda11.7`).
pub fn tag(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 128 {
        return Err(format!("is {} characters long; at most 128 are allowed", s.len()));
    }
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if !word(b[0]) {
        return Err(format!("`{s}` must start with a letter, digit or `_`"));
    }
    if !b.iter().all(|&c| word(c) || c == b'.' || c == b'-') {
        return Err(format!("`{s}` may contain only letters, digits, `_`, `.` and `-`"));
    }
    Ok(())
}

/// Checks a registry host with an optional port (`docker.io`, `localhost:5000`, `10.0.0.1:443`, `[::1]:5000`).
pub fn registry_host(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 + 6 {
        return Err("is too long for a host name".into());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(|| format!("`{s}` has an unclosed `[`"))?;
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return Err(format!("`{s}` is not a valid IPv6 literal"));
        }
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or_else(|| format!("`{s}` has text after `]`"))?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty()
            || port.len() > 5
            || !port.bytes().all(|c| c.is_ascii_digit())
            || port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535))
    {
        return Err(format!("`{s}` has an invalid port"));
    }
    if let Some(host) = host {
        for label in host.split('.') {
            let b = label.as_bytes();
            if b.is_empty() || b.len() > 63 {
                return Err(format!("`{s}` has an empty or overlong label"));
            }
            if !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') || b[0] == b'-' || b[b.len() - 1] == b'-' {
                return Err(format!("`{s}` is not a valid host name"));
            }
        }
    }
    Ok(())
}

/// Checks a short free-form token such as a category, an architecture or a scan status:
/// 1 to `max` characters of lowercase letters, digits, `-`, `_` and `.`.
pub fn token(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > max {
        return Err(format!("is {} characters long; at most {max} are allowed", s.len()));
    }
    if !s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.')) {
        return Err(format!("`{s}` may contain only lowercase letters, digits, `-`, `_` and `.`"));
    }
    Ok(())
}

/// Checks free text such as a description: at most `max` characters, no control characters but newlines and tabs.
pub fn text(s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > max {
        return Err(format!("is {n} characters long; at most {max} are allowed"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        for ok in ["redis", "a", "a.b", "a_b", "a__b", "a-b", "a---b", "0abc", "abc9"] {
            assert_eq!(path_component(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Redis", "-a", "a-", "a..b", "a___b", "a_-b", ".a", "a.", "a b", "ä"] {
            assert!(path_component(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["latest", "7-alpine", "_x", "A.B-c_d", &"a".repeat(128)] {
            assert_eq!(tag(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".a", "-a", "a:b", "a/b", &"a".repeat(129)] {
            assert!(tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_hosts() {
        for ok in ["docker.io", "localhost", "localhost:5000", "10.0.0.1:443", "[::1]:5000", "[::1]", "a-b.example.com"]
        {
            assert_eq!(registry_host(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a..b", "-a.com", "a.com:", "a.com:0", "a.com:70000", "a.com:x", "[::1", "a_b.com", "a/b"] {
            assert!(registry_host(bad).is_err(), "{bad}");
        }
    }
}
