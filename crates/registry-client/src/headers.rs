//! Parsers for the response headers the protocol relies on: `Link` (pagination), `Retry-After`
//! and Docker Hub's `ratelimit-*`.

use std::time::{Duration, SystemTime};

/// What Docker Hub's `ratelimit-limit` and `ratelimit-remaining` headers said last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window (`ratelimit-limit`), when the registry says.
    pub limit: Option<u64>,
    /// Requests left in the current window (`ratelimit-remaining`).
    pub remaining: u64,
    /// The window (`w=21600` is six hours), when the registry says.
    pub window: Option<Duration>,
    /// When the response that carried it arrived.
    pub observed_at: SystemTime,
}

/// The target of the `rel="next"` link in `Link` header values, as written (often a relative
/// reference such as `</v2/_catalog?last=b&n=2>`).
pub(crate) fn next_link<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values
        .into_iter()
        .find_map(|value| parse_links(value).into_iter().find(|(_, rels)| rels.iter().any(|r| r == "next")))
        .map(|(target, _)| target)
}

/// `<target>; rel="a b"; x=y, <target2>; rel=next` → `[(target, [a, b]), (target2, [next])]`.
/// Targets may contain commas and semicolons; quoted parameter values may contain commas.
fn parse_links(value: &str) -> Vec<(String, Vec<String>)> {
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let Some(after_lt) = rest.strip_prefix('<') else { break };
        let Some((target, after)) = after_lt.split_once('>') else { break };
        rest = after;
        let mut rels = Vec::new();
        // Parameters up to the next comma that is not inside quotes.
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            let Some(after_semi) = rest.strip_prefix(';') else { break };
            rest = after_semi.trim_start_matches([' ', '\t']);
            let name_end = rest.find(['=', ';', ',']).unwrap_or(rest.len());
            let name = rest[..name_end].trim().to_ascii_lowercase();
            rest = &rest[name_end..];
            let mut param_value = String::new();
            if let Some(after_eq) = rest.strip_prefix('=') {
                rest = after_eq.trim_start_matches([' ', '\t']);
                if let Some(quoted) = rest.strip_prefix('"') {
                    let mut chars = quoted.char_indices();
                    let mut end = quoted.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, escaped)) = chars.next() {
                                    param_value.push(escaped);
                                }
                            }
                            '"' => {
                                end = i + 1;
                                break;
                            }
                            c => param_value.push(c),
                        }
                    }
                    rest = &quoted[end.min(quoted.len())..];
                } else {
                    let end = rest.find([';', ',']).unwrap_or(rest.len());
                    param_value = rest[..end].trim().to_owned();
                    rest = &rest[end..];
                }
            }
            if name == "rel" {
                rels.extend(param_value.split_ascii_whitespace().map(str::to_ascii_lowercase));
            }
        }
        links.push((target.trim().to_owned(), rels));
        // Skip anything unparseable up to the next link.
        match rest.find(',') {
            Some(i) => rest = &rest[i..],
            None => break,
        }
    }
    links
}

/// `Retry-After` as a delay from `now`: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`); a date in the past is no delay.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long numbers saturate rather than fail.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// One `ratelimit-*` value, `76;w=21600` (also `76`, or a list `76, 76;w=21600` whose first
/// entry counts): the number and the window.
pub(crate) fn parse_rate_limit_value(value: &str) -> Option<(u64, Option<Duration>)> {
    let first = value.split(',').next()?.trim();
    let mut parts = first.split(';');
    let count = parts.next()?.trim().parse().ok()?;
    let window = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("w"))
            .then(|| v.trim().trim_matches('"').parse().ok().map(Duration::from_secs))?
    });
    Some((count, window))
}

/// The rate limit a response announces, if it carries `ratelimit-remaining`.
pub(crate) fn rate_limit(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<RateLimit> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(parse_rate_limit_value);
    let (remaining, window) = get("ratelimit-remaining")?;
    let limit = get("ratelimit-limit");
    Some(RateLimit {
        limit: limit.map(|(n, _)| n),
        remaining,
        window: window.or_else(|| limit.and_then(|(_, w)| w)),
        observed_at: now,
    })
}

/// A `Content-Range` header: `bytes START-END/TOTAL`, where TOTAL may be `*`,
/// or `bytes */TOTAL` (in a 416), which has no range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First and last byte, inclusive.
    pub range: Option<(u64, u64)>,
    pub total: Option<u64>,
}

pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let range = match range.trim() {
        "*" => None,
        r => {
            let (start, end) = r.split_once('-')?;
            Some((start.trim().parse().ok()?, end.trim().parse().ok()?))
        }
    };
    Some(ContentRange { range, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let check = |values: &[&str], expect: Option<&str>| {
            assert_eq!(next_link(values.iter().copied()).as_deref(), expect, "{values:?}");
        };
        check(&[r#"</v2/_catalog?last=b&n=2>; rel="next""#], Some("/v2/_catalog?last=b&n=2"));
        check(&["</v2/r/tags/list?n=2&last=t2>; rel=next"], Some("/v2/r/tags/list?n=2&last=t2"));
        check(
            &[r#"<https://r.example/v2/_catalog?n=1&last=a>;rel="next""#],
            Some("https://r.example/v2/_catalog?n=1&last=a"),
        );
        check(&[r#"</p1>; rel="prev", </n1>; rel="next""#], Some("/n1"));
        check(&[r#"</a,b;c>; title="x, y; z"; rel="next""#], Some("/a,b;c"));
        check(&[r#"</x>; rel="prev next""#], Some("/x"));
        check(&[r#"</x>; REL="NEXT""#], Some("/x"));
        check(&[r#"</prev>; rel="prev""#, r#"</next>; rel="next""#], Some("/next"));
        check(&[r#"</x>; rel="prev""#], None);
        check(&[r#"</x>; rel="nextpage""#], None);
        check(&[""], None);
        check(&["garbage"], None);
        check(&["<unterminated; rel=next"], None);
        check(&[], None);
    }

    #[test]
    fn retry_after_values() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let check = |value: &str, expect: Option<u64>| {
            assert_eq!(parse_retry_after(value, now), expect.map(Duration::from_secs), "{value}");
        };
        check("1", Some(1));
        check(" 120 ", Some(120));
        check("0", Some(0));
        check("99999999999999999999999", Some(u64::MAX));
        check("Wed, 21 Oct 2015 07:28:30 GMT", Some(30));
        check("Wed, 21 Oct 2015 07:27:00 GMT", Some(0));
        check("Wednesday, 21-Oct-15 07:29:00 GMT", Some(60));
        check("Wed Oct 21 07:28:05 2015", Some(5));
        check("-1", None);
        check("1.5", None);
        check("soon", None);
        check("", None);
    }

    #[test]
    fn rate_limit_values() {
        let check = |value: &str, expect: Option<(u64, Option<u64>)>| {
            let actual = parse_rate_limit_value(value).map(|(n, w)| (n, w.map(|w| w.as_secs())));
            assert_eq!(actual, expect, "{value}");
        };
        check("100;w=21600", Some((100, Some(21600))));
        check("0;w=21600", Some((0, Some(21600))));
        check(" 76 ; w = 21600 ", Some((76, Some(21600))));
        check("76", Some((76, None)));
        check("76, 100;w=21600", Some((76, None)));
        check("76;x=1;w=60", Some((76, Some(60))));
        check("76;w=\"60\"", Some((76, Some(60))));
        check("76;w=abc", Some((76, None)));
        check("many", None);
        check("", None);
        check("-1;w=60", None);
    }

    #[test]
    fn rate_limit_from_headers() {
        let now = SystemTime::UNIX_EPOCH;
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(rate_limit(&headers, now), None);
        headers.insert("ratelimit-limit", "100;w=21600".parse().unwrap());
        assert_eq!(rate_limit(&headers, now), None);
        headers.insert("ratelimit-remaining", "7".parse().unwrap());
        assert_eq!(
            rate_limit(&headers, now),
            Some(RateLimit {
                limit: Some(100),
                remaining: 7,
                window: Some(Duration::from_secs(21600)),
                observed_at: now
            })
        );
    }

    #[test]
    fn content_ranges() {
        let range = |range, total| Some(ContentRange { range, total });
        assert_eq!(parse_content_range("bytes 10-19/20"), range(Some((10, 19)), Some(20)));
        assert_eq!(parse_content_range("bytes 10-19/*"), range(Some((10, 19)), None));
        assert_eq!(parse_content_range("bytes */20"), range(None, Some(20)));
        assert_eq!(parse_content_range("bytes=10-19/20"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
