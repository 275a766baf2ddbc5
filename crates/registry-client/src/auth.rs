//! `WWW-Authenticate` challenges and the bearer-token cache.
//!
//! The token flow is Docker's (distribution's `docs/spec/auth/token.md`): a registry answers 401
//! with `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`; the client gets a token from
//! the realm with `service` and `scope` query parameters (and HTTP basic credentials when it
//! has some) and repeats the request with `Authorization: Bearer <token>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One challenge of a `WWW-Authenticate` header: the scheme in lowercase and its parameters
/// (names in lowercase, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value (RFC 9110 §11.6.1): one or more comma-separated challenges,
/// each a scheme followed by a token68 or by comma-separated `name=value` parameters, whose
/// values may be quoted strings holding commas, `=` and backslash escapes.
///
/// It is lenient, as clients must be with real servers: whitespace around `=`, unterminated
/// quotes and stray characters are tolerated, and a parameter never seen with a scheme is dropped.
pub(crate) fn parse_challenges(input: &str) -> Vec<Challenge> {
    let mut c = Cursor { s: input, i: 0 };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        c.skip(|b| matches!(b, b' ' | b'\t' | b','));
        let Some(first) = c.peek_char() else { break };
        let name = c.token();
        if name.is_empty() {
            c.i += first.len_utf8(); // A stray character: skip it.
            continue;
        }
        let after_name = c.i;
        c.skip(|b| matches!(b, b' ' | b'\t'));
        if c.peek() == Some(b'=') {
            c.i += 1;
            c.skip(|b| matches!(b, b' ' | b'\t'));
            let value = if c.peek() == Some(b'"') { c.quoted() } else { c.bare_value().to_owned() };
            if let Some(last) = out.last_mut() {
                last.params.push((name.to_ascii_lowercase(), value));
            }
            continue;
        }
        c.i = after_name;
        out.push(Challenge { scheme: name.to_ascii_lowercase(), params: Vec::new() });
        // A token68 (`Negotiate abc==`) follows the scheme after a space, not after a comma,
        // and ends the challenge.
        let save = c.i;
        c.skip(|b| matches!(b, b' ' | b'\t'));
        let token68 = c.token68();
        c.skip(|b| matches!(b, b' ' | b'\t'));
        if !token68.is_empty() && matches!(c.peek(), None | Some(b',')) {
            if let Some(last) = out.last_mut() {
                last.params.push(("token68".to_owned(), token68.to_owned()));
            }
        } else {
            c.i = save;
        }
    }
    out
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn peek_char(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    /// An RFC 9110 `token`.
    fn token(&mut self) -> &'a str {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        &self.s[start..self.i]
    }

    /// A `token68`: `[A-Za-z0-9-._~+/]+ =*`.
    fn token68(&mut self) -> &'a str {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if self.i > start {
            self.skip(|b| b == b'=');
        }
        &self.s[start..self.i]
    }

    /// An unquoted parameter value: up to a comma or whitespace. Wider than a token, so that
    /// `realm=https://auth.example/token` from a careless server still parses.
    fn bare_value(&mut self) -> &'a str {
        let start = self.i;
        self.skip(|b| !matches!(b, b',' | b' ' | b'\t'));
        &self.s[start..self.i]
    }

    /// A quoted string starting at `"`, unescaped; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.i += 1;
        let mut out = String::new();
        let mut chars = self.s[self.i..].char_indices();
        let mut end = self.s.len() - self.i;
        while let Some((offset, ch)) = chars.next() {
            match ch {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                }
                '"' => {
                    end = offset + 1;
                    break;
                }
                ch => out.push(ch),
            }
        }
        self.i += end;
        out
    }
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub value: String,
    pub refresh_at: Instant,
}

impl Token {
    /// A token valid for `expires_in` (Docker's default: 60 s), to be refreshed slightly before
    /// it expires, so that a request never leaves with a token that dies on the way.
    pub fn new(value: String, expires_in: Option<u64>, now: Instant) -> Token {
        let ttl = Duration::from_secs(expires_in.filter(|&s| s > 0).unwrap_or(60));
        let margin = (ttl / 10).min(Duration::from_secs(30));
        Token { value, refresh_at: now + ttl - margin }
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// One slot per (registry, account, scope set); each slot has its own async lock, so that
/// concurrent requests needing the same token wait for one fetch instead of each fetching.
pub(crate) type TokenSlot = Arc<tokio::sync::Mutex<Option<Token>>>;

#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<(String, String, String), TokenSlot>>,
}

impl TokenCache {
    /// The slot of one registry, account (a key that identifies the credentials without holding
    /// them; empty for anonymous access) and scope set: two accounts never share a token.
    pub fn slot(&self, registry: &str, account: &str, scope_key: &str) -> TokenSlot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry((registry.to_owned(), account.to_owned(), scope_key.to_owned())).or_default().clone()
    }
}

/// A token endpoint's answer: Docker's `token`, OAuth2's `access_token`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
}

/// The scopes a request needs, as the token server spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `GET /v2/`: any valid token will do.
    None,
    Pull(String),
    Push(String),
    /// Mount `from` into `into`: push on the target, pull on the source.
    Mount {
        into: String,
        from: String,
    },
    /// Deleting manifests: distribution asks for the `delete` action.
    Delete(String),
    Catalog,
}

impl Scope {
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            Scope::None => Vec::new(),
            Scope::Pull(repo) => vec![format!("repository:{repo}:pull")],
            Scope::Push(repo) => vec![format!("repository:{repo}:pull,push")],
            Scope::Mount { into, from } => {
                vec![format!("repository:{into}:pull,push"), format!("repository:{from}:pull")]
            }
            Scope::Delete(repo) => vec![format!("repository:{repo}:delete")],
            Scope::Catalog => vec!["registry:catalog:*".to_owned()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints challenges as `scheme{k=v|k=v}` joined by ` ; `.
    #[track_caller]
    fn check(input: &str, expect: &str) {
        let printed: Vec<String> = parse_challenges(input)
            .iter()
            .map(|c| {
                let params: Vec<String> = c.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{}{{{}}}", c.scheme, params.join("|"))
            })
            .collect();
        assert_eq!(printed.join(" ; "), expect, "input: {input:?}");
    }

    #[test]
    fn challenges() {
        check(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
            "bearer{realm=https://auth.docker.io/token|service=registry.docker.io|scope=repository:samalba/my-app:pull,push}",
        );
        // Spaces after commas, an error parameter, several scopes in one value.
        check(
            r#"Bearer realm="https://a.example/token", service="reg", scope="repository:a:pull repository:b:pull", error="insufficient_scope""#,
            "bearer{realm=https://a.example/token|service=reg|scope=repository:a:pull repository:b:pull|error=insufficient_scope}",
        );
        check(r#"Basic realm="Registry Realm""#, "basic{realm=Registry Realm}");
        check(r#"basic realm="imagegate-test""#, "basic{realm=imagegate-test}");
        check(r#"BEARER Realm="x",SERVICE="y""#, "bearer{realm=x|service=y}");
        // Two challenges in one header.
        check(
            r#"Basic realm="a, b", Bearer realm="https://t.example/token",service="s""#,
            "basic{realm=a, b} ; bearer{realm=https://t.example/token|service=s}",
        );
        check(r#"Bearer realm="x", Basic realm="y""#, "bearer{realm=x} ; basic{realm=y}");
        // Escapes inside quoted strings; `=` and `;` inside them.
        check(r#"Bearer realm="a\"b\\c",scope="x=y;z""#, r#"bearer{realm=a"b\c|scope=x=y;z}"#);
        // Unquoted values, also URL-shaped ones.
        check(
            "Bearer realm=https://auth.example/token,service=registry.example,scope=repository:x:pull",
            "bearer{realm=https://auth.example/token|service=registry.example|scope=repository:x:pull}",
        );
        // Whitespace around `=` and stray commas.
        check(r#"Bearer  realm = "x" ,, service= "y","#, "bearer{realm=x|service=y}");
        // Empty and unterminated values.
        check(r#"Bearer realm="",service=s"#, "bearer{realm=|service=s}");
        check(r#"Bearer realm="https://x/token"#, "bearer{realm=https://x/token}");
        // Non-ASCII inside a quoted value survives.
        check(r#"Basic realm="Régistre ✓""#, "basic{realm=Régistre ✓}");
        // A scheme alone, and token68 forms.
        check("Negotiate", "negotiate{}");
        check("Negotiate abc+/==, Basic realm=x", "negotiate{token68=abc+/==} ; basic{realm=x}");
        check("Basic dXNlcjpwYXNz", "basic{token68=dXNlcjpwYXNz}");
        // Garbage: nothing usable, no panic.
        check("", "");
        check("   ,  ", "");
        check(r#"realm="orphan""#, "");
        check("\"\"\"", "");
        check("Bearer ✓ realm=x", "bearer{realm=x}");
        check("=", "");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let pieces = ["Bearer", " ", ",", "=", "\"", "\\", "realm", "x", "é", "==", "\t"];
        let mut state: u32 = 0x1234_5678;
        for _ in 0..5_000 {
            let mut s = String::new();
            for _ in 0..(state % 9) {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                s.push_str(pieces[(state as usize) % pieces.len()]);
            }
            state = state.wrapping_add(0x9e37_79b9);
            let _ = parse_challenges(&s);
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(Scope::Pull("a/b".into()).to_strings(), ["repository:a/b:pull"]);
        assert_eq!(Scope::Push("a/b".into()).to_strings(), ["repository:a/b:pull,push"]);
        assert_eq!(
            Scope::Mount { into: "t/x".into(), from: "s/y".into() }.to_strings(),
            ["repository:t/x:pull,push", "repository:s/y:pull"]
        );
        assert_eq!(Scope::Catalog.to_strings(), ["registry:catalog:*"]);
        assert!(Scope::None.to_strings().is_empty());
    }

    #[test]
    fn token_lifetimes() {
        let now = Instant::now();
        let t = Token::new("t".into(), None, now);
        assert!(t.is_fresh(now + Duration::from_secs(53)));
        assert!(!t.is_fresh(now + Duration::from_secs(55)));
        let t = Token::new("t".into(), Some(3600), now);
        assert!(t.is_fresh(now + Duration::from_secs(3569)));
        assert!(!t.is_fresh(now + Duration::from_secs(3571)));
        let t = Token::new("t".into(), Some(0), now);
        assert!(t.is_fresh(now + Duration::from_secs(50)));
    }
}
