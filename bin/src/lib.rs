//! Shared start-up code of imagegate's programs: configuration, logging and the database.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Sets up logging; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The database URL: the one given, or SQLite in the data directory.
pub fn database_url(data_dir: &Path, given: Option<&str>) -> anyhow::Result<String> {
    match given {
        Some(url) if !url.is_empty() => Ok(url.to_owned()),
        _ => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
            Ok(format!("sqlite://{}", data_dir.join("imagegate.db").display()))
        }
    }
}

/// Hides the password of a database URL, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn defaults_to_sqlite_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let url = database_url(&dir.path().join("d"), None).unwrap();
        assert!(url.starts_with("sqlite://") && url.ends_with("/d/imagegate.db"), "{url}");
        assert!(dir.path().join("d").is_dir());
        assert_eq!(database_url(dir.path(), Some("postgres://x")).unwrap(), "postgres://x");
    }
}
