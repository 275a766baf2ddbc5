//! Who may do what: Basic credentials and API tokens checked by an [`Authenticator`], and the registry's own
//! short-lived Bearer tokens, issued by `GET /v2/token` and signed with HMAC-SHA256.
//!
//! Pulls need a signed-in user (or no one, with anonymous pulls on); pushes and deletes need an admin. A
//! robot account gets exactly the actions it was given in the repositories its patterns match, and no
//! `_catalog`.

use std::{net::IpAddr, sync::Arc};

use async_trait::async_trait;
use base64::Engine as _;
use hmac::Mac as _;
use serde::{Deserialize, Serialize};

/// How long an issued token works.
pub const TOKEN_TTL_SECS: i64 = 300;

/// A signed-in user or robot account, as the registry sees one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub admin: bool,
    /// A robot account: only what it was given, never an admin.
    pub robot: Option<Arc<image_core::robot::Robot>>,
}

impl Principal {
    /// A user, an admin or not.
    pub fn user(name: impl Into<String>, admin: bool) -> Principal {
        Principal { name: name.into(), admin, robot: None }
    }

    /// A robot account, signed in as `robot$<name>`.
    pub fn robot(robot: image_core::robot::Robot) -> Principal {
        Principal { name: robot.username(), admin: false, robot: Some(Arc::new(robot)) }
    }
}

/// Why credentials could not be checked now.
#[derive(Debug, Clone)]
pub enum AuthFailure {
    /// Too many attempts; try again after this many seconds.
    TooManyRequests {
        message: String,
        retry_after_secs: Option<u64>,
    },
    Unavailable(String),
}

/// Checks the server's credentials: a user's password, or an API token.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The user, when the password is theirs; `None` when it is not.
    async fn basic(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<Principal>, AuthFailure>;

    /// The user of an API token; `None` for an unknown or expired one.
    async fn api_token(&self, token: &str) -> Result<Option<Principal>, AuthFailure>;
}

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }

    fn robot_action(self) -> image_core::robot::RobotAction {
        match self {
            Action::Pull => image_core::robot::RobotAction::Pull,
            Action::Push => image_core::robot::RobotAction::Push,
            Action::Delete => image_core::robot::RobotAction::Delete,
        }
    }

    /// Whether `principal` (`None`: anonymous) may do this in `repository`.
    pub fn permitted(self, repository: &str, principal: Option<&Principal>, anonymous_pull: bool) -> bool {
        if let Some(robot) = principal.and_then(|p| p.robot.as_ref()) {
            return robot.allows(repository, self.robot_action()) || (self == Action::Pull && anonymous_pull);
        }
        match self {
            Action::Pull => principal.is_some() || anonymous_pull,
            Action::Push | Action::Delete => principal.is_some_and(|p| p.admin),
        }
    }
}

/// One entry of a token's access: a repository (or `registry:catalog`) and the actions granted on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// What a registry token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user; empty for anonymous.
    pub sub: String,
    pub access: Vec<Access>,
    /// Unix seconds.
    pub exp: i64,
    pub iat: i64,
    /// Issued to the server's own credential (its copier and registry adapter), which the gate lets
    /// through; no user's token has it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
}

impl Claims {
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == kind && a.name == name && a.actions.iter().any(|x| x == action || x == "*"))
    }
}

/// Signs and checks registry tokens, with a key derived from the server's secret key.
#[derive(Clone)]
pub struct TokenSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(<redacted>)")
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl TokenSigner {
    /// A signer whose key is HMAC-SHA256 of a fixed label under `secret` (the server's secret key), so
    /// that the token key is neither the secret itself nor usable for anything else.
    pub fn derive(secret: &[u8]) -> TokenSigner {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"imagegate registry token signing key v1");
        TokenSigner { key: mac.finalize().into_bytes().into() }
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload);
        mac
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signature = B64.encode(self.mac(payload.as_bytes()).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claims of a token this signer made and that has not expired at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let (payload, signature) = token.split_once('.')?;
        let signature = B64.decode(signature).ok()?;
        self.mac(payload.as_bytes()).verify_slice(&signature).ok()?;
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        (claims.exp > now).then_some(claims)
    }
}

/// A `scope` a client asks a token for: `repository:<name>:<actions>` or `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses one scope; `None` for a malformed one. The name may contain `:` (a port never does here, but
    /// the actions are what follows the last one).
    pub fn parse(text: &str) -> Option<Scope> {
        let (kind, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Scope {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions.split(',').filter(|a| !a.is_empty()).map(str::to_owned).collect(),
        })
    }

    /// What of this scope `principal` gets.
    pub fn grant(&self, principal: Option<&Principal>, anonymous_pull: bool) -> Option<Access> {
        let actions: Vec<String> = match self.kind.as_str() {
            "repository" => {
                let mut granted: Vec<Action> = Vec::new();
                for action in &self.actions {
                    let wanted: &[Action] = match action.as_str() {
                        "*" => &[Action::Pull, Action::Push, Action::Delete],
                        other => match Action::parse(other) {
                            Some(Action::Pull) => &[Action::Pull],
                            Some(Action::Push) => &[Action::Push],
                            Some(Action::Delete) => &[Action::Delete],
                            None => &[],
                        },
                    };
                    granted.extend(wanted.iter().filter(|a| a.permitted(&self.name, principal, anonymous_pull)));
                }
                granted.sort();
                granted.dedup();
                granted.into_iter().map(|a| a.as_str().to_owned()).collect()
            }
            "registry" if self.name == "catalog" && principal.is_some_and(|p| p.robot.is_none()) => {
                vec!["*".to_owned()]
            }
            _ => Vec::new(),
        };
        (!actions.is_empty()).then(|| Access { kind: self.kind.clone(), name: self.name.clone(), actions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_key_and_before_they_expire() {
        let signer = TokenSigner::derive(b"secret one");
        let claims = Claims {
            sub: "alice".into(),
            access: vec![Access { kind: "repository".into(), name: "a/b".into(), actions: vec!["pull".into()] }],
            exp: 1_000,
            iat: 700,
            internal: false,
        };
        let token = signer.sign(&claims);
        assert!(signer.verify(&token, 999).unwrap().allows("repository", "a/b", "pull"));
        assert!(!signer.verify(&token, 999).unwrap().allows("repository", "a/b", "push"));
        assert!(signer.verify(&token, 1_000).is_none(), "expired");
        assert!(TokenSigner::derive(b"secret two").verify(&token, 999).is_none(), "another key");
        let (payload, signature) = token.split_once('.').unwrap();
        let forged = B64.encode(String::from_utf8(B64.decode(payload).unwrap()).unwrap().replace("pull", "push"));
        assert!(signer.verify(&format!("{forged}.{signature}"), 999).is_none(), "changed claims");
    }

    #[test]
    fn scopes_grant_what_the_role_allows() {
        let user = Principal::user("u", false);
        let admin = Principal::user("a", true);
        let scope = Scope::parse("repository:library/nginx:pull,push").unwrap();
        assert_eq!(scope.name, "library/nginx");
        assert_eq!(scope.grant(Some(&user), false).unwrap().actions, ["pull"]);
        assert_eq!(scope.grant(Some(&admin), false).unwrap().actions, ["pull", "push"]);
        assert!(scope.grant(None, false).is_none());
        assert_eq!(scope.grant(None, true).unwrap().actions, ["pull"]);
        assert!(Scope::parse("nonsense").is_none());
        assert!(Scope::parse("registry:catalog:*").unwrap().grant(None, true).is_none());
    }

    #[test]
    fn robots_get_their_actions_in_their_repositories_only() {
        let pattern = |p: &str| image_core::robot::RepositoryPattern::parse("repositories", p).unwrap();
        let robot = Principal::robot(image_core::robot::Robot {
            id: image_core::robot::RobotId::new(1),
            name: "ci".into(),
            repositories: vec![pattern("team/*")],
            actions: vec![image_core::robot::RobotAction::Pull, image_core::robot::RobotAction::Push],
            created_by: "admin".into(),
            created_at: time::OffsetDateTime::now_utc(),
            expires_at: None,
        });
        assert_eq!(robot.name, "robot$ci");
        let ours = Scope::parse("repository:team/app:pull,push,delete").unwrap();
        assert_eq!(ours.grant(Some(&robot), false).unwrap().actions, ["pull", "push"]);
        assert!(Scope::parse("repository:other/app:pull,push").unwrap().grant(Some(&robot), false).is_none());
        assert!(Scope::parse("registry:catalog:*").unwrap().grant(Some(&robot), false).is_none());
        assert!(Action::Push.permitted("team/a/b", Some(&robot), false));
        assert!(!Action::Push.permitted("other/app", Some(&robot), false));
        assert!(!Action::Delete.permitted("team/app", Some(&robot), false));
    }
}
