//! Robot accounts of the built-in registry: a name, the repositories it may reach (exact paths, or a
//! prefix and `/*`), the actions it may take there, and an optional expiry.
//!
//! A robot signs in to `/v2/` as `robot$<name>` with a secret the server generated and shows once; the
//! store keeps only the secret's SHA-256 (a generated secret has 256 random bits, so no slow hash is
//! needed). A robot is never an admin and never reaches the JSON API.

use async_trait::async_trait;
use serde::Serialize;

use crate::{Error, Result, Timestamp, time_fmt::serde_millis};

crate::id::id_type!(
    /// A robot account's id.
    RobotId
);

/// What a robot signs in as: this prefix and its name.
pub const USERNAME_PREFIX: &str = "robot$";

/// The most repository patterns one robot may have.
pub const MAX_PATTERNS: usize = 64;

/// What a robot may do in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RobotAction {
    Pull,
    Push,
    Delete,
}

impl RobotAction {
    /// The action's name, as the registry's token scopes spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RobotAction::Pull => "pull",
            RobotAction::Push => "push",
            RobotAction::Delete => "delete",
        }
    }

    /// Parses `pull`, `push` or `delete`.
    pub fn parse(field: &str, text: &str) -> Result<RobotAction> {
        match text {
            "pull" => Ok(RobotAction::Pull),
            "push" => Ok(RobotAction::Push),
            "delete" => Ok(RobotAction::Delete),
            other => Err(Error::invalid(field, format!("must be pull, push or delete, not {other:?}"))),
        }
    }
}

/// A repository a robot may reach: an exact path (`team/app`), or a prefix and `/*` for every repository
/// under it at any depth (`team/*`), or `*` for all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RepositoryPattern(String);

impl RepositoryPattern {
    /// Checks a pattern: `*`, a repository path, or a repository path followed by `/*`.
    pub fn parse(field: &str, text: &str) -> Result<RepositoryPattern> {
        let path = if text == "*" { None } else { Some(text.strip_suffix("/*").unwrap_or(text)) };
        if let Some(path) = path {
            crate::validate::repository_path(path).map_err(|why| {
                Error::invalid(field, format!("`{text}` must be a repository path, a path and `/*`, or `*`: {why}"))
            })?;
        }
        Ok(RepositoryPattern(text.to_owned()))
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `repository` is this pattern's repository or under its prefix.
    pub fn matches(&self, repository: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => repository.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty()),
            None => self.0 == repository,
        }
    }
}

/// Checks a robot's name: 1 to 64 lowercase letters, digits, `.`, `_` and `-`, starting with a letter or
/// digit.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "must be 1 to 64 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit",
        ))
    }
}

/// A robot to create: validated name, patterns and actions, and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRobot {
    name: String,
    repositories: Vec<RepositoryPattern>,
    actions: Vec<RobotAction>,
    expires_at: Option<Timestamp>,
    secret_hash: String,
}

impl NewRobot {
    /// A robot named `name` that may take `actions` in the repositories `repositories` match, until
    /// `expires_at` (never, with `None`), whose secret hashes to `secret_hash`.
    pub fn new(
        name: &str,
        repositories: Vec<RepositoryPattern>,
        mut actions: Vec<RobotAction>,
        expires_at: Option<Timestamp>,
        secret_hash: String,
    ) -> Result<NewRobot> {
        validate_name(name)?;
        if repositories.is_empty() || repositories.len() > MAX_PATTERNS {
            return Err(Error::invalid("repositories", format!("must have 1 to {MAX_PATTERNS} patterns")));
        }
        actions.sort();
        actions.dedup();
        if actions.is_empty() {
            return Err(Error::invalid("actions", "must name at least one of pull, push and delete"));
        }
        if expires_at.is_some_and(|at| at <= Timestamp::now_utc()) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        Ok(NewRobot { name: name.to_owned(), repositories, actions, expires_at, secret_hash })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn repositories(&self) -> &[RepositoryPattern] {
        &self.repositories
    }

    pub fn actions(&self) -> &[RobotAction] {
        &self.actions
    }

    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    pub fn secret_hash(&self) -> &str {
        &self.secret_hash
    }
}

/// A robot account, as an admin sees it: never its secret nor the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Robot {
    pub id: RobotId,
    pub name: String,
    pub repositories: Vec<RepositoryPattern>,
    pub actions: Vec<RobotAction>,
    /// The admin who created it.
    pub created_by: String,
    #[serde(with = "serde_millis")]
    pub created_at: Timestamp,
    /// When it stops working; never, when `None`.
    #[serde(with = "serde_millis::option")]
    pub expires_at: Option<Timestamp>,
}

impl Robot {
    /// What it signs in to the registry as: `robot$<name>`.
    pub fn username(&self) -> String {
        format!("{USERNAME_PREFIX}{}", self.name)
    }

    /// Whether it may take `action` in `repository`.
    pub fn allows(&self, repository: &str, action: RobotAction) -> bool {
        self.actions.contains(&action) && self.repositories.iter().any(|p| p.matches(repository))
    }

    /// Whether it has stopped working at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Where robots are kept.
#[async_trait]
pub trait RobotStore: Send + Sync {
    /// Stores a robot and its `robot.created` event; `Conflict` when the name is taken.
    async fn create_robot(&self, robot: NewRobot, actor: &str) -> Result<Robot>;
    /// Every robot, expired ones included, by name.
    async fn list_robots(&self) -> Result<Vec<Robot>>;
    /// Deletes a robot with its `robot.deleted` event; `NotFound` when there is none of that name.
    async fn delete_robot(&self, name: &str, actor: &str) -> Result<Robot>;
    /// The robot of that name, with its secret's hash, expired or not.
    async fn find_robot(&self, name: &str) -> Result<Option<(Robot, String)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> RepositoryPattern {
        RepositoryPattern::parse("repositories[0]", text).unwrap()
    }

    #[test]
    fn patterns_match_exact_paths_and_prefixes() {
        assert!(pattern("team/app").matches("team/app"));
        assert!(!pattern("team/app").matches("team/app2"));
        assert!(!pattern("team/app").matches("team/app/sub"));
        assert!(pattern("team/*").matches("team/app"));
        assert!(pattern("team/*").matches("team/a/b"));
        assert!(!pattern("team/*").matches("team"));
        assert!(!pattern("team/*").matches("teams/app"));
        assert!(pattern("*").matches("anything/at/all"));
        for bad in ["", "Team/app", "team/", "team/*/x", "/*", "team/**", "a//b"] {
            assert!(RepositoryPattern::parse("repositories[0]", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_robot_allows_only_its_actions_in_its_repositories() {
        let robot = Robot {
            id: RobotId::new(1),
            name: "ci".into(),
            repositories: vec![pattern("team/*"), pattern("shared/base")],
            actions: vec![RobotAction::Pull, RobotAction::Push],
            created_by: "admin".into(),
            created_at: Timestamp::now_utc(),
            expires_at: None,
        };
        assert_eq!(robot.username(), "robot$ci");
        assert!(robot.allows("team/app", RobotAction::Push));
        assert!(robot.allows("shared/base", RobotAction::Pull));
        assert!(!robot.allows("shared/base", RobotAction::Delete));
        assert!(!robot.allows("other/app", RobotAction::Pull));
        assert!(!robot.is_expired(Timestamp::now_utc()));
    }

    #[test]
    fn new_robots_are_validated() {
        let new = |name: &str, patterns: Vec<RepositoryPattern>, actions: Vec<RobotAction>| {
            NewRobot::new(name, patterns, actions, None, "hash".into())
        };
        assert!(new("ci", vec![pattern("a")], vec![RobotAction::Push, RobotAction::Pull, RobotAction::Push]).is_ok());
        assert_eq!(
            new("ci", vec![pattern("a")], vec![RobotAction::Push, RobotAction::Pull, RobotAction::Push])
                .unwrap()
                .actions(),
            [RobotAction::Pull, RobotAction::Push]
        );
        assert!(new("CI", vec![pattern("a")], vec![RobotAction::Pull]).is_err());
        assert!(new("ci$x", vec![pattern("a")], vec![RobotAction::Pull]).is_err());
        assert!(new("ci", vec![], vec![RobotAction::Pull]).is_err());
        assert!(new("ci", vec![pattern("a")], vec![]).is_err());
        let past = Timestamp::now_utc() - time::Duration::seconds(1);
        assert!(NewRobot::new("ci", vec![pattern("a")], vec![RobotAction::Pull], Some(past), "h".into()).is_err());
    }
}
