//! `imagegate-server user …`: users managed straight in the database, for the first steps and for
//! recovery, whether a server is running on it or not.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use image_core::{
    auth::{NewUser, Role, UserUpdate, validate_password, validate_username},
    format_rfc3339_millis,
    store::UserStore,
};

/// The actor the audit trail names for changes made here: no user can have this name.
pub const CLI_ACTOR: &str = "system:cli";

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a user. `--role admin` is also the way back in when no admin knows their password.
    Add {
        /// The user name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
        name: String,
        /// What the user may do: `admin` also changes the catalog, approves requests and manages users.
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
        /// Read the password from the first line of standard input instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sets a user's password; every token of that user stops working.
    Passwd {
        /// The user whose password to set.
        name: String,
        /// Read the password from the first line of standard input instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists the users: name, role, and when each was created.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    User,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::User => Role::User,
        }
    }
}

/// Runs one command against `store`, writing what it did to standard output.
pub async fn run(store: &dyn UserStore, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, role, password_stdin } => {
            validate_username(&name)?;
            let password = read_password(&name, password_stdin)?;
            let password_hash = api_http::auth::hash_password(password).await?;
            let user =
                store.create_user(NewUser { username: name, password_hash, role: role.into() }, CLI_ACTOR).await?;
            println!("added user {} ({})", user.username, user.role);
        }
        UserCommand::Passwd { name, password_stdin } => {
            validate_username(&name)?;
            if store.find_credentials(&name).await?.is_none() {
                bail!("user {name} not found");
            }
            let password = read_password(&name, password_stdin)?;
            let password_hash = Some(api_http::auth::hash_password(password).await?);
            store.update_user(&name, UserUpdate { password_hash, role: None }, CLI_ACTOR).await?;
            println!("set the password of {name}; their tokens no longer work");
        }
        UserCommand::List => {
            let users = store.list_users().await?;
            let width = users.iter().map(|u| u.username.len()).max().unwrap_or(0).max("USERNAME".len());
            println!("{:<width$}  {:<5}  CREATED", "USERNAME", "ROLE");
            for user in users {
                println!(
                    "{:<width$}  {:<5}  {}",
                    user.username,
                    user.role.as_str(),
                    format_rfc3339_millis(user.created_at)
                );
            }
        }
    }
    Ok(())
}

/// The new password: from standard input's first line with `--password-stdin` or when standard input is
/// no terminal, otherwise asked twice on the terminal without echo.
fn read_password(name: &str, from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        password.strip_suffix('\r').unwrap_or(password).to_owned()
    } else {
        let first = rpassword::prompt_password(format!("New password for {name}: "))
            .context("cannot read the password from the terminal")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password from the terminal")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    };
    validate_password("password", &password)?;
    Ok(password)
}
