//! `imgctl`: imagegate from the command line, over the `api-client` crate.

/// `print!` and `println!` that end the program quietly when the reader has gone (`imgctl … | head`), where
/// the standard ones would panic.
macro_rules! print {
    ($($arg:tt)*) => { $crate::write_out(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

mod config;
mod follow;
mod output;

/// Writes to standard output; a closed pipe ends the program with success, as the reader wanted no more.
fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("imgctl: cannot write the output: {e}");
        std::process::exit(i32::from(exit::SERVER));
    }
}

use std::{
    io::{BufRead as _, IsTerminal as _},
    process::ExitCode,
    time::Duration,
};

use api_client::{
    ALL_NAMESPACES, Admission, Approval, ApprovalStatus, Client, DEFAULT_SERVER, Error, ImageQuery, ImageUpdate,
    ImportQuery, ImportRequest, NewApprovalRequest, NewImage, NewTag, ObjectMeta, Reference, RegistrySecretSpec,
    RepositorySpec, RequestQuery, ResourceQuery, SecretName, TagUpdate,
};
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use config::{Config, Context};
use output::cell;

/// What each kind of failure exits with; the README's table lists them.
mod exit {
    /// The answer is no: `check` refused the image, an awaited import failed, or a registry refused a
    /// secret's credentials.
    pub const REFUSED: u8 = 1;
    /// The command line, or the request it made, was invalid (the server answered 400 or 422).
    pub const USAGE: u8 = 2;
    /// Not signed in, the token no longer works, or the role does not allow it (401, 403).
    pub const AUTH: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    /// The change conflicts with what exists (409).
    pub const CONFLICT: u8 = 5;
    /// The server failed (5xx), could not be reached, or its answer was unreadable; or a local file could
    /// not be read or written.
    pub const SERVER: u8 = 6;
    /// Ctrl-C stopped following an import (which goes on), as shells count a SIGINT.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "imgctl",
    version,
    about = "imagegate from the command line: the catalog and its tags, approvals, admission checks, imports, registry secrets, repositories, users, robot accounts, node inventories and drift."
)]
struct Cli {
    /// The server, `http://host:port`; default: the context's server, else http://127.0.0.1:5375.
    #[arg(long, global = true, env = "IMGCTL_SERVER")]
    server: Option<String>,
    /// The context (a server and its token) to use instead of the current one.
    #[arg(long, global = true, env = "IMGCTL_CONTEXT")]
    context: Option<String>,
    /// How to print answers: tables for people, or the API's answer as JSON or YAML.
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    output: Format,
    /// Leave the header line out of tables.
    #[arg(long, global = true)]
    no_headers: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Signs in and keeps the token in a context.
    #[command(after_help = "Example:\n  imgctl login http://imagegate.internal:5375 --username dana")]
    Login {
        /// The server; default: `--server`, the context's server, else http://127.0.0.1:5375.
        #[arg(value_name = "SERVER")]
        login_server: Option<String>,
        /// The user to sign in as; default: the context's user.
        #[arg(short, long)]
        username: Option<String>,
        /// Read the password from the first line of standard input instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
        /// The context to keep the token in; default: the server's host and port.
        #[arg(long = "name", value_name = "CONTEXT")]
        name: Option<String>,
    },
    /// Revokes the context's token on the server and forgets it.
    #[command(after_help = "Example:\n  imgctl logout")]
    Logout,
    /// Changes your own password, then signs in again with it (your other tokens stop working).
    #[command(after_help = "Example:\n  printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | imgctl password --password-stdin")]
    Password {
        /// Read the current password, then the new one, from the first two lines of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists the contexts or chooses the current one.
    #[command(subcommand)]
    Context(ContextCommand),
    /// The catalog's images.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// The tags of the catalog's images.
    #[command(subcommand)]
    Tags(TagsCommand),
    /// Requests to approve images, and their decisions.
    #[command(subcommand)]
    Approvals(ApprovalCommand),
    /// Asks whether IMAGE may run: exit 0 when allowed, 1 when refused.
    #[command(after_help = "Example:\n  imgctl check redis:7-alpine || echo 'not approved'")]
    Check {
        /// An image reference, such as `redis:7-alpine` or `ghcr.io/acme/app:1.2`.
        image: String,
        /// When refused because the image is not approved, file an approval request for it.
        #[arg(long)]
        request_approval: bool,
    },
    /// Imports SOURCE into the internal registry.
    #[command(after_help = "Example:\n  imgctl import docker.io/library/alpine:3.20 --platform linux/amd64 --wait")]
    Import {
        /// The source image reference.
        source: String,
        /// Copy only this platform (`linux/arm64`); repeat for several; default: every platform.
        #[arg(long = "platform", value_name = "OS/ARCH")]
        platforms: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Follow the import until it ends (as `imports show --follow`); exit 1 when it fails.
        #[arg(long)]
        wait: bool,
    },
    /// Imports: list, show progress, cancel.
    #[command(subcommand)]
    Imports(ImportsCommand),
    /// Users and their roles (admins).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Robot accounts of the built-in registry, scoped to repositories (admins).
    #[command(subcommand)]
    Robots(RobotsCommand),
    /// Registry secrets: the credentials imports and repositories read registries with.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Repositories: a registry's tag, synced into the internal registry on a schedule.
    #[command(subcommand)]
    Repos(ReposCommand),
    /// A node's runtime images and the internal registry's, as seed 004's two lists.
    #[command(after_help = "Examples:\n  imgctl images\n  imgctl images --node worker-1")]
    Images {
        /// Another node's last report, instead of this server's node.
        #[arg(long)]
        node: Option<String>,
    },
    /// The internal registry's health and counts.
    #[command(after_help = "Example:\n  imgctl stats")]
    Stats,
    /// The fleet's nodes: their runtimes, image counts and last reports.
    #[command(after_help = "Example:\n  imgctl nodes")]
    Nodes,
    /// Images running on nodes that the catalog does not approve, and why.
    #[command(after_help = "Examples:\n  imgctl drift\n  imgctl drift --node worker-1 -o json")]
    Drift {
        /// Only this node's images.
        #[arg(long)]
        node: Option<String>,
    },
    /// Prints the completion script for SHELL.
    #[command(
        after_help = "Examples:\n  imgctl completion bash > /etc/bash_completion.d/imgctl\n  imgctl completion zsh > \"${fpath[1]}/_imgctl\"\n  imgctl completion fish > ~/.config/fish/completions/imgctl.fish"
    )]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints imgctl's man page (roff).
    #[command(after_help = "Example:\n  imgctl man > /usr/local/share/man/man1/imgctl.1")]
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RoleArg {
    User,
    Admin,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            RoleArg::User => "user",
            RoleArg::Admin => "admin",
        }
    }
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Lists the users.
    #[command(after_help = "Example:\n  imgctl users list")]
    List,
    /// Adds user NAME; the password is read from standard input or asked for.
    #[command(after_help = "Example:\n  echo \"$PASSWORD\" | imgctl users add ci-bot --password-stdin --role user")]
    Add {
        name: String,
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
        /// Read the password from the first line of standard input instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Gives user NAME another role; the last admin stays an admin.
    #[command(after_help = "Example:\n  imgctl users set-role dana admin")]
    SetRole {
        name: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Sets user NAME's password; the user's tokens stop working.
    #[command(after_help = "Example:\n  echo \"$NEW_PASSWORD\" | imgctl users passwd dana --password-stdin")]
    Passwd {
        name: String,
        /// Read the password from the first line of standard input instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Deletes user NAME and their tokens; the last admin cannot be deleted.
    #[command(after_help = "Example:\n  imgctl users delete dana")]
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum RobotsCommand {
    /// Lists the robot accounts.
    #[command(after_help = "Example:\n  imgctl robots list")]
    List,
    /// Creates robot NAME and prints its secret, which is shown only this once.
    #[command(
        after_help = "Examples:\n  imgctl robots create ci --repo 'team/*' --action pull --action push --expires-in 720h\n  imgctl robots create reader --repo shared/base\n  echo \"$SECRET\" | docker login registry.example.com -u 'robot$ci' --password-stdin"
    )]
    Create {
        name: String,
        /// A repository it may reach: an exact name, or a prefix and `/*`; repeat for more.
        #[arg(long = "repo", required = true)]
        repositories: Vec<String>,
        /// `pull`, `push` or `delete`; repeat for more.
        #[arg(long = "action", default_value = "pull")]
        actions: Vec<String>,
        /// Stops working after this Go duration (`720h`); never, without.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Deletes robot NAME; it stops working at once.
    #[command(after_help = "Example:\n  imgctl robots delete ci")]
    Delete { name: String },
}

/// The namespace of one resource.
#[derive(Debug, clap::Args)]
struct Namespace {
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

/// The namespace, or all of them, of a list.
#[derive(Debug, clap::Args)]
struct ListNamespace {
    #[arg(short, long, default_value = "default", conflicts_with = "all_namespaces")]
    namespace: String,
    /// List every namespace's.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
}

impl ListNamespace {
    fn path(&self) -> &str {
        if self.all_namespaces { ALL_NAMESPACES } else { &self.namespace }
    }
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Lists registry secrets (never their passwords).
    #[command(after_help = "Example:\n  imgctl secrets list -A")]
    List {
        #[command(flatten)]
        ns: ListNamespace,
        /// Secrets whose name, domain or username contains this.
        #[arg(long)]
        search: Option<String>,
        /// The page, counting from 1.
        #[arg(long)]
        page: Option<i64>,
        /// Secrets per page, 1 to 500.
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Stores the credentials for a registry as secret NAME (admins); the password is read from
    /// standard input or asked for, and never printed.
    #[command(
        after_help = "Example:\n  echo \"$HARBOR_PASSWORD\" | imgctl secrets add harbor --domain harbor.internal --username robot --password-stdin --provider harbor"
    )]
    Add {
        name: String,
        #[command(flatten)]
        ns: Namespace,
        /// The registry host, with its port if any.
        #[arg(long)]
        domain: String,
        #[arg(long)]
        username: String,
        /// Read the password from the first line of standard input instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
        /// `harbor`, `dockerhub`, `aliyun` or `other`.
        #[arg(long, default_value = "other")]
        provider: String,
        /// Talk to the registry over plain HTTP.
        #[arg(long)]
        insecure: bool,
    },
    /// Checks secret NAME's stored credentials against its registry (admins); exit 1 when they fail.
    #[command(after_help = "Example:\n  imgctl secrets verify harbor")]
    Verify {
        name: String,
        #[command(flatten)]
        ns: Namespace,
    },
    /// Deletes secret NAME (admins); a secret a repository uses cannot be deleted.
    #[command(after_help = "Example:\n  imgctl secrets delete harbor")]
    Delete {
        name: String,
        #[command(flatten)]
        ns: Namespace,
    },
}

#[derive(Debug, Subcommand)]
enum ReposCommand {
    /// Lists repositories and how their last sync went.
    #[command(after_help = "Example:\n  imgctl repos list -n team-a")]
    List {
        #[command(flatten)]
        ns: ListNamespace,
        /// Repositories whose name contains this.
        #[arg(long)]
        name: Option<String>,
        /// The page, counting from 1.
        #[arg(long)]
        page: Option<i64>,
        /// Repositories per page, 1 to 500.
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Creates repository NAME (admins): REPOSITORY:TAG of the secret's registry, synced now and every
    /// `--interval`.
    #[command(
        after_help = "Example:\n  imgctl repos add app --repository acme/app --tag 1.2 --secret harbor --interval 30m"
    )]
    Add {
        name: String,
        #[command(flatten)]
        ns: Namespace,
        /// The repository path on the secret's registry, such as `library/alpine`.
        #[arg(long)]
        repository: String,
        #[arg(long)]
        tag: String,
        /// The registry secret to read the registry with.
        #[arg(long, value_name = "NAME")]
        secret: String,
        /// The secret's namespace; default: the repository's.
        #[arg(long, value_name = "NAMESPACE")]
        secret_namespace: Option<String>,
        /// How often to sync, as `1h` or `30m`; default: the server's.
        #[arg(long, value_name = "DURATION")]
        interval: Option<String>,
        /// How long a sync may take, as `10m`; default: the server's.
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// How often a failed sync is retried, 0 to 20.
        #[arg(long)]
        retries: Option<i64>,
    },
    /// Queues a sync of repository NAME now (admins).
    #[command(after_help = "Example:\n  imgctl repos sync app")]
    Sync {
        name: String,
        #[command(flatten)]
        ns: Namespace,
    },
    /// Deletes repository NAME (admins).
    #[command(after_help = "Example:\n  imgctl repos delete app")]
    Delete {
        name: String,
        #[command(flatten)]
        ns: Namespace,
    },
}

#[derive(Debug, Subcommand)]
enum ContextCommand {
    /// Lists the contexts; `*` marks the current one.
    #[command(after_help = "Example:\n  imgctl context list")]
    List,
    /// Makes NAME the current context.
    #[command(after_help = "Example:\n  imgctl context use prod")]
    Use { name: String },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Lists the catalog's images.
    #[command(after_help = "Example:\n  imgctl catalog list --status approved --search redis")]
    List {
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        #[arg(long)]
        category: Option<String>,
        /// Images whose name or description contains this.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        offset: Option<i64>,
    },
    /// Shows one image and its tags.
    #[command(after_help = "Example:\n  imgctl catalog show 1")]
    Show { id: i64 },
    /// Adds IMAGE (a reference without a tag) to the catalog, approved unless `--status` says (admins).
    #[command(
        after_help = "Example:\n  imgctl catalog add ghcr.io/acme/app --category internal --description 'the app'"
    )]
    Add {
        image: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        category: Option<String>,
        /// Mark the image as an official one.
        #[arg(long)]
        official: bool,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
    },
    /// Changes image ID's description, category, status or official flag (admins).
    #[command(after_help = "Example:\n  imgctl catalog update 1 --category cache --status approved")]
    Update {
        id: i64,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Whether the image is an official one.
        #[arg(long, value_name = "BOOL")]
        official: Option<bool>,
    },
    /// Deletes image ID and its tags (admins).
    #[command(after_help = "Example:\n  imgctl catalog delete 7")]
    Delete { id: i64 },
}

#[derive(Debug, Subcommand)]
enum TagsCommand {
    /// Adds TAG to image IMAGE_ID (admins).
    #[command(after_help = "Example:\n  imgctl tags add 1 7.4-alpine --os linux --arch amd64 --recommended")]
    Add {
        image_id: i64,
        tag: String,
        #[command(flatten)]
        fields: TagFields,
        /// Recommend this tag; the image's other tags stop being recommended.
        #[arg(long)]
        recommended: bool,
        #[arg(long)]
        deprecated: bool,
    },
    /// Changes tag TAG (its name) of image IMAGE_ID (admins).
    #[command(after_help = "Example:\n  imgctl tags update 1 7-alpine --deprecated true")]
    Update {
        image_id: i64,
        tag: String,
        #[command(flatten)]
        fields: TagFields,
        #[arg(long, value_name = "BOOL")]
        recommended: Option<bool>,
        #[arg(long, value_name = "BOOL")]
        deprecated: Option<bool>,
    },
    /// Makes TAG the image's recommended tag (admins); the others stop being recommended.
    #[command(after_help = "Example:\n  imgctl tags recommend 1 7.4-alpine")]
    Recommend { image_id: i64, tag: String },
    /// Deletes tag TAG of image IMAGE_ID (admins).
    #[command(after_help = "Example:\n  imgctl tags delete 1 6-alpine")]
    Delete { image_id: i64, tag: String },
}

/// A tag's content and platform.
#[derive(Debug, clap::Args)]
struct TagFields {
    /// The manifest digest, `sha256:…`.
    #[arg(long)]
    digest: Option<String>,
    /// The size in bytes.
    #[arg(long, value_name = "BYTES")]
    size: Option<i64>,
    #[arg(long)]
    os: Option<String>,
    #[arg(long = "arch")]
    architecture: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatusArg {
    Pending,
    Approved,
    Rejected,
}

impl From<StatusArg> for ApprovalStatus {
    fn from(s: StatusArg) -> ApprovalStatus {
        match s {
            StatusArg::Pending => ApprovalStatus::Pending,
            StatusArg::Approved => ApprovalStatus::Approved,
            StatusArg::Rejected => ApprovalStatus::Rejected,
        }
    }
}

#[derive(Debug, Subcommand)]
enum ApprovalCommand {
    /// Lists approval requests.
    #[command(after_help = "Example:\n  imgctl approvals list --status pending")]
    List {
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        offset: Option<i64>,
    },
    /// Asks an admin to approve IMAGE (a reference, with or without a tag).
    #[command(after_help = "Example:\n  imgctl approvals request traefik:v3.1 --notes 'edge proxy'")]
    Request {
        image: String,
        #[arg(long)]
        notes: Option<String>,
    },
    /// Approves request ID (admins).
    #[command(after_help = "Example:\n  imgctl approvals approve 3 --category networking")]
    Approve {
        id: i64,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Rejects request ID (admins), saying why.
    #[command(after_help = "Example:\n  imgctl approvals reject 3 --reason 'use the official image'")]
    Reject {
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        notes: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ImportsCommand {
    /// Lists imports, one line per platform, newest first.
    #[command(after_help = "Example:\n  imgctl imports list --ready")]
    List {
        /// Only finished imports.
        #[arg(long)]
        ready: bool,
        #[arg(long)]
        tag: Option<String>,
        /// The page, counting from 0.
        #[arg(long)]
        page: Option<i64>,
        /// Imports per page, 1 to 100.
        #[arg(long)]
        page_size: Option<i64>,
    },
    /// Shows an import's status and per-layer progress; `--follow` watches it to the end.
    #[command(after_help = "Examples:\n  imgctl imports show 7\n  imgctl imports show 7 --follow")]
    Show {
        id: i64,
        /// Follow the import until it ends: progress bars on a terminal, a line per change elsewhere, a
        /// document per change with `-o json|yaml`. Ctrl-C stops following, not the import.
        #[arg(long, short)]
        follow: bool,
    },
    /// Stops a queued or running import (admins).
    #[command(after_help = "Example:\n  imgctl imports cancel 7")]
    Cancel { id: i64 },
}

/// Why a command failed, and so what it exits with.
#[derive(Debug)]
enum Failure {
    Client(Error),
    Usage(String),
    Refused(String),
    /// Something the command names does not exist, found out without the server saying 404.
    NotFound(String),
    Local(String),
    /// Ctrl-C stopped the command.
    Interrupted(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Client(e)
    }
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) => exit::REFUSED,
            Failure::Interrupted(_) => exit::INTERRUPTED,
            Failure::NotFound(_) => exit::NOT_FOUND,
            Failure::Usage(_) | Failure::Client(Error::InvalidServer(_)) => exit::USAGE,
            Failure::Client(Error::Api(e)) => match e.status {
                401 | 403 => exit::AUTH,
                404 => exit::NOT_FOUND,
                409 => exit::CONFLICT,
                400..=499 => exit::USAGE,
                _ => exit::SERVER,
            },
            Failure::Client(_) | Failure::Local(_) => exit::SERVER,
        }
    }

    fn sentence(&self) -> String {
        match self {
            Failure::Client(Error::Api(e)) if e.status == 401 => {
                format!("{e}; sign in with `imgctl login`")
            }
            Failure::Client(e) => e.to_string(),
            Failure::Usage(m)
            | Failure::Refused(m)
            | Failure::NotFound(m)
            | Failure::Local(m)
            | Failure::Interrupted(m) => m.clone(),
        }
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("imgctl: cannot start: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("imgctl: {}", failure.sentence());
            ExitCode::from(failure.code())
        }
    }
}

/// The server a command talks to and the context it found the token in.
struct Target {
    client: Client,
    context: Option<String>,
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// `--server` (and the token of the context for that server, if any), else the context's server and
/// token, else the default server, anonymous. `IMGCTL_TOKEN` replaces the token.
fn target(cli: &Cli, config: &Config) -> Result<Target, Failure> {
    let chosen = config.context(cli.context.as_deref());
    if let Some(name) = &cli.context
        && chosen.is_none()
    {
        return Err(Failure::Usage(format!("no context named `{name}`; see `imgctl context list`")));
    }
    let (server, context) = match (&cli.server, chosen) {
        (Some(server), Some((name, c))) if same_server(server, &c.server) => (server.clone(), Some((name, c))),
        (Some(server), _) => {
            let found = config.contexts.iter().find(|(_, c)| same_server(server, &c.server));
            (server.clone(), found.map(|(n, c)| (n.as_str(), c)))
        }
        (None, Some((name, c))) => (c.server.clone(), Some((name, c))),
        (None, None) => (DEFAULT_SERVER.to_owned(), None),
    };
    let mut client = Client::new(&server)?;
    let token = std::env::var("IMGCTL_TOKEN").ok().filter(|t| !t.is_empty());
    client.set_token(token.or_else(|| context.and_then(|(_, c)| c.token.clone())));
    Ok(Target { client, context: context.map(|(n, _)| n.to_owned()) })
}

fn load_config() -> Result<(std::path::PathBuf, Config), Failure> {
    let path = config::path().map_err(Failure::Local)?;
    let config = Config::load(&path).map_err(Failure::Local)?;
    Ok((path, config))
}

async fn run(cli: Cli) -> Outcome {
    // Completions and the man page come from the command definitions alone: no config, no server.
    let page = match &cli.command {
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "imgctl", &mut script);
            Some(("completion script", script))
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| Failure::Local(format!("cannot render the man page: {e}")))?;
            Some(("man page", page))
        }
        _ => None,
    };
    if let Some((what, text)) = page {
        use std::io::Write as _;
        // A reader that stops early (`imgctl man | head`) is not a failure.
        return match std::io::stdout().lock().write_all(&text) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Failure::Local(format!("cannot write the {what}: {e}")))
            }
            _ => Ok(()),
        };
    }
    let (path, mut config) = load_config()?;
    match &cli.command {
        Command::Login { login_server, username, password_stdin, name } => {
            login(
                &cli,
                &path,
                &mut config,
                login_server.as_deref(),
                username.as_deref(),
                *password_stdin,
                name.as_deref(),
            )
            .await
        }
        Command::Logout => logout(&cli, &path, &mut config).await,
        Command::Password { password_stdin } => password(&cli, &path, &mut config, *password_stdin).await,
        Command::Context(command) => context(&cli, &path, &mut config, command),
        command => {
            let target = target(&cli, &config)?;
            let ctl = Ctl { client: target.client, format: cli.output, no_headers: cli.no_headers };
            ctl.run(command).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn login(
    cli: &Cli,
    path: &std::path::Path,
    config: &mut Config,
    server: Option<&str>,
    username: Option<&str>,
    password_stdin: bool,
    name: Option<&str>,
) -> Outcome {
    let current = config.context(cli.context.as_deref()).map(|(n, c)| (n.to_owned(), c.clone()));
    let server = server
        .map(str::to_owned)
        .or_else(|| cli.server.clone())
        .or_else(|| current.as_ref().map(|(_, c)| c.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let client = Client::new(&server)?;
    let same = current.as_ref().filter(|(_, c)| same_server(&c.server, &server));
    let Some(username) = username.map(str::to_owned).or_else(|| same.and_then(|(_, c)| c.username.clone())) else {
        return Err(Failure::Usage("which user? give --username".into()));
    };
    let password = read_password(&format!("Password for {username} at {server}: "), password_stdin)?;
    let token = client.sign_in(&username, &password).await?;
    let name = match name {
        Some(name) => name.to_owned(),
        None => match same {
            Some((name, _)) => name.clone(),
            None => {
                let url = client.server();
                let host = url.host_str().unwrap_or("server");
                url.port().map_or_else(|| host.to_owned(), |port| format!("{host}:{port}"))
            }
        },
    };
    let previous = config.contexts.insert(
        name.clone(),
        Context {
            server: server.trim_end_matches('/').to_owned(),
            username: Some(username.clone()),
            token: Some(token.token.clone()),
        },
    );
    config.current_context = Some(name.clone());
    config.save(path).map_err(Failure::Local)?;
    // The token this login replaces is of no more use: revoke it, quietly if it already ended.
    if let Some(old) = previous.and_then(|c| if same_server(&c.server, &server) { c.token } else { None })
        && old != token.token
    {
        let _ = client.clone().with_token(old).revoke_token().await;
    }
    let until = token.expires_at.as_deref().map(|at| format!("; the token works until {at}")).unwrap_or_default();
    println!("signed in to {server} as {username} (context {name}){until}");
    Ok(())
}

/// `imgctl password`: the signed-in user's own password. Changing it ends every token of the user, so
/// the context signs in again with the new one.
async fn password(cli: &Cli, path: &std::path::Path, config: &mut Config, from_stdin: bool) -> Outcome {
    let target = target(cli, config)?;
    let Some(name) = target.context else {
        return Err(Failure::Usage("not signed in to this server; sign in with `imgctl login` first".into()));
    };
    let context = config.contexts.get(&name).cloned().expect("the target's context exists");
    let Some(username) = context.username.clone() else {
        return Err(Failure::Usage(format!("context {name} names no user; sign in with `imgctl login` again")));
    };
    let current = read_password(&format!("Current password for {username}: "), from_stdin)?;
    let new = read_password(&format!("New password for {username}: "), from_stdin)?;
    if !from_stdin && read_password("The new password again: ", false)? != new {
        return Err(Failure::Usage("the two new passwords differ; nothing changed".into()));
    }
    target.client.change_password(&current, &new).await?;
    let token = Client::new(&context.server)?.sign_in(&username, &new).await?;
    config.contexts.insert(name.clone(), Context { token: Some(token.token.clone()), ..context });
    config.save(path).map_err(Failure::Local)?;
    println!("changed the password of {username}; signed in again with it (context {name})");
    Ok(())
}

/// A password from the first line of standard input, or asked for on the terminal without echo.
fn read_password(prompt: &str, from_stdin: bool) -> Result<String, Failure> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Local(format!("cannot read the password from standard input: {e}")))?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        return Ok(password.strip_suffix('\r').unwrap_or(password).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage("no terminal to ask for the password on; use --password-stdin".into()));
    }
    rpassword::prompt_password(prompt)
        .map_err(|e| Failure::Local(format!("cannot read the password from the terminal: {e}")))
}

async fn logout(cli: &Cli, path: &std::path::Path, config: &mut Config) -> Outcome {
    let target = target(cli, config)?;
    let Some(name) = target.context else {
        return Err(Failure::Usage("no context to sign out of; see `imgctl context list`".into()));
    };
    if target.client.token().is_none() {
        println!("not signed in (context {name})");
        return Ok(());
    }
    match target.client.revoke_token().await {
        Ok(()) => {}
        // A token that no longer works is as good as revoked.
        Err(Error::Api(e)) if e.status == 401 => {}
        Err(e) => return Err(e.into()),
    }
    if let Some(context) = config.contexts.get_mut(&name) {
        context.token = None;
    }
    config.save(path).map_err(Failure::Local)?;
    println!(
        "signed out of {} (context {name}); the token is revoked",
        target.client.server().as_str().trim_end_matches('/')
    );
    Ok(())
}

fn context(cli: &Cli, path: &std::path::Path, config: &mut Config, command: &ContextCommand) -> Outcome {
    match command {
        ContextCommand::List => {
            if cli.output != Format::Table {
                let contexts: Vec<_> = config
                    .contexts
                    .iter()
                    .map(|(name, c)| {
                        serde_json::json!({
                            "name": name,
                            "server": c.server,
                            "username": c.username,
                            "signedIn": c.token.is_some(),
                            "current": config.current_context.as_deref() == Some(name.as_str()),
                        })
                    })
                    .collect();
                output::document(&serde_json::json!({ "contexts": contexts }), cli.output == Format::Yaml);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = config
                .contexts
                .iter()
                .map(|(name, c)| {
                    let current = if config.current_context.as_deref() == Some(name.as_str()) { "*" } else { "" };
                    let signed_in = if c.token.is_some() { "yes" } else { "no" };
                    vec![current.into(), name.clone(), c.server.clone(), cell(c.username.as_deref()), signed_in.into()]
                })
                .collect();
            output::table(&["CURRENT", "NAME", "SERVER", "USER", "SIGNED-IN"], &rows, cli.no_headers);
        }
        ContextCommand::Use { name } => {
            if !config.contexts.contains_key(name) {
                return Err(Failure::Usage(format!("no context named `{name}`; see `imgctl context list`")));
            }
            config.current_context = Some(name.clone());
            config.save(path).map_err(Failure::Local)?;
            println!("now using context {name}");
        }
    }
    Ok(())
}

/// The commands that talk to a server.
struct Ctl {
    client: Client,
    format: Format,
    no_headers: bool,
}

impl Ctl {
    /// Whether answers are printed as the API's document (JSON or YAML) rather than for people.
    fn document(&self) -> bool {
        self.format != Format::Table
    }

    fn print(&self, value: &serde_json::Value) {
        output::document(value, self.format == Format::Yaml);
    }

    async fn run(&self, command: &Command) -> Outcome {
        match command {
            Command::Catalog(c) => self.catalog(c).await,
            Command::Tags(c) => self.tags(c).await,
            Command::Approvals(c) => self.approvals(c).await,
            Command::Check { image, request_approval } => self.check(image, *request_approval).await,
            Command::Import { source, platforms, description, wait } => {
                self.import(source, platforms, description.clone(), *wait).await
            }
            Command::Imports(c) => self.imports(c).await,
            Command::Users(c) => self.users(c).await,
            Command::Robots(c) => self.robots(c).await,
            Command::Secrets(c) => self.secrets(c).await,
            Command::Repos(c) => self.repos(c).await,
            Command::Images { node } => self.images(node.as_deref()).await,
            Command::Stats => self.stats().await,
            Command::Nodes => self.nodes().await,
            Command::Drift { node } => self.drift(node.as_deref()).await,
            Command::Login { .. }
            | Command::Logout
            | Command::Password { .. }
            | Command::Context(_)
            | Command::Completion { .. }
            | Command::Man => Ok(()),
        }
    }

    async fn catalog(&self, command: &CatalogCommand) -> Outcome {
        match command {
            CatalogCommand::List { status, category, search, limit, offset } => {
                let query = ImageQuery {
                    status: status.map(Into::into),
                    category: category.clone(),
                    search: search.clone(),
                    limit: *limit,
                    offset: *offset,
                };
                let list = self.client.list_images(&query).await?;
                if self.document() {
                    self.print(list.json());
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = list
                    .images
                    .iter()
                    .map(|i| {
                        vec![
                            i.id.to_string(),
                            i.full_name(),
                            i.approval_status.as_str().to_owned(),
                            cell(i.category.as_deref()),
                            i.tag_count.to_string(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "IMAGE", "STATUS", "CATEGORY", "TAGS"], &rows, self.no_headers);
            }
            CatalogCommand::Show { id } => {
                let image = self.client.get_image(*id).await?;
                if self.document() {
                    self.print(image.json());
                    return Ok(());
                }
                println!("ID:           {}", image.id);
                println!("IMAGE:        {}/{}/{}", image.registry, image.namespace, image.image_name);
                println!("STATUS:       {}", image.approval_status.as_str());
                println!("CATEGORY:     {}", cell(image.category.as_deref()));
                println!("DESCRIPTION:  {}", cell(image.description.as_deref()));
                println!();
                let rows: Vec<Vec<String>> = image
                    .tags
                    .iter()
                    .map(|t| {
                        let flags = [(t.is_recommended, "recommended"), (t.is_deprecated, "deprecated")]
                            .iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, name)| *name)
                            .collect::<Vec<_>>()
                            .join(",");
                        let platform = match (&t.os, &t.architecture) {
                            (Some(os), Some(arch)) => format!("{os}/{arch}"),
                            _ => "-".into(),
                        };
                        vec![t.tag.clone(), platform, cell(Some(&flags)), cell(t.digest.as_deref())]
                    })
                    .collect();
                output::table(&["TAG", "PLATFORM", "FLAGS", "DIGEST"], &rows, self.no_headers);
            }
            CatalogCommand::Add { image, description, category, official, status } => {
                let reference = Reference::parse(image)
                    .map_err(|e| Failure::Usage(format!("`{image}` is not an image reference: {e}")))?;
                let last = image.rsplit('/').next().unwrap_or(image);
                if last.contains(':') || image.contains('@') {
                    return Err(Failure::Usage(format!(
                        "`{image}` names a tag or digest; add the image without it, then its tags with `imgctl tags add`"
                    )));
                }
                let new = NewImage {
                    description: description.clone(),
                    category: category.clone(),
                    is_official: *official,
                    approval_status: status.map(Into::into),
                    ..NewImage::for_reference(&reference)
                };
                let added = self.client.create_image(&new).await?;
                self.done(added.json(), || {
                    format!("added image {} {} ({})", added.id, added.full_name(), added.approval_status.as_str())
                });
            }
            CatalogCommand::Update { id, description, category, status, official } => {
                let update = ImageUpdate {
                    description: description.clone(),
                    category: category.clone(),
                    approval_status: status.map(Into::into),
                    is_official: *official,
                };
                if update.is_empty() {
                    return Err(Failure::Usage(
                        "nothing to update: give --description, --category, --status or --official".into(),
                    ));
                }
                let updated = self.client.update_image(*id, &update).await?;
                self.done(updated.json(), || format!("updated image {} {}", updated.id, updated.full_name()));
            }
            CatalogCommand::Delete { id } => {
                let deleted = self.client.delete_image(*id).await?;
                self.done(deleted.json(), || {
                    format!("deleted image {} {}", deleted.image.id, deleted.image.full_name())
                });
            }
        }
        Ok(())
    }

    /// Prints a change's answer: the API's document, or `sentence`.
    fn done(&self, json: &serde_json::Value, sentence: impl FnOnce() -> String) {
        if self.document() {
            self.print(json);
        } else {
            println!("{}", sentence());
        }
    }

    /// The id of the tag named `tag` of image `image_id`.
    async fn tag_id(&self, image_id: i64, tag: &str) -> Result<i64, Failure> {
        let image = self.client.get_image(image_id).await?;
        image.tags.iter().find(|t| t.tag == tag).map(|t| t.id).ok_or_else(|| {
            Failure::NotFound(format!(
                "image {image_id} ({}/{}/{}) has no tag `{tag}`",
                image.registry, image.namespace, image.image_name
            ))
        })
    }

    async fn tags(&self, command: &TagsCommand) -> Outcome {
        let (image_id, tag, update) = match command {
            TagsCommand::Add { image_id, tag, fields, recommended, deprecated } => {
                let new = NewTag {
                    tag: tag.clone(),
                    digest: fields.digest.clone(),
                    size_bytes: fields.size,
                    architecture: fields.architecture.clone(),
                    os: fields.os.clone(),
                    is_recommended: *recommended,
                    is_deprecated: *deprecated,
                };
                let added = self.client.create_tag(*image_id, &new).await?;
                self.done(added.json(), || format!("added tag {} to image {image_id}", added.tag));
                return Ok(());
            }
            TagsCommand::Delete { image_id, tag } => {
                let tag_id = self.tag_id(*image_id, tag).await?;
                let deleted = self.client.delete_tag(*image_id, tag_id).await?;
                self.done(deleted.json(), || format!("deleted tag {} of image {image_id}", deleted.tag.tag));
                return Ok(());
            }
            TagsCommand::Update { image_id, tag, fields, recommended, deprecated } => {
                let update = TagUpdate {
                    digest: fields.digest.clone(),
                    size_bytes: fields.size,
                    architecture: fields.architecture.clone(),
                    os: fields.os.clone(),
                    is_recommended: *recommended,
                    is_deprecated: *deprecated,
                };
                (*image_id, tag, update)
            }
            TagsCommand::Recommend { image_id, tag } => {
                (*image_id, tag, TagUpdate { is_recommended: Some(true), ..TagUpdate::default() })
            }
        };
        if update.is_empty() {
            return Err(Failure::Usage(
                "nothing to update: give --digest, --size, --os, --arch, --recommended or --deprecated".into(),
            ));
        }
        let tag_id = self.tag_id(image_id, tag).await?;
        let updated = self.client.update_tag(image_id, tag_id, &update).await?;
        self.done(updated.json(), || format!("updated tag {} of image {image_id}", updated.tag));
        Ok(())
    }

    async fn approvals(&self, command: &ApprovalCommand) -> Outcome {
        match command {
            ApprovalCommand::List { status, limit, offset } => {
                let query = RequestQuery { status: status.map(Into::into), limit: *limit, offset: *offset };
                let list = self.client.list_approval_requests(&query).await?;
                if self.document() {
                    self.print(list.json());
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = list
                    .requests
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.reference(),
                            r.status.as_str().to_owned(),
                            r.requested_by.clone(),
                            r.requested_at.clone(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "IMAGE", "STATUS", "REQUESTED-BY", "REQUESTED-AT"], &rows, self.no_headers);
            }
            ApprovalCommand::Request { image, notes } => {
                let reference = Reference::parse(image)
                    .map_err(|e| Failure::Usage(format!("`{image}` is not an image reference: {e}")))?;
                let request = NewApprovalRequest::for_reference(&reference, notes.clone());
                let filed = self.client.request_approval(&request).await?;
                if self.document() {
                    self.print(filed.json());
                } else {
                    println!("filed approval request {} for {}", filed.id, filed.reference());
                }
            }
            ApprovalCommand::Approve { id, notes, category, description } => {
                let approval =
                    Approval { notes: notes.clone(), category: category.clone(), description: description.clone() };
                let decided = self.client.approve(*id, &approval).await?;
                if self.document() {
                    self.print(decided.json());
                } else {
                    println!("approved request {} for {}", decided.request.id, decided.request.reference());
                }
            }
            ApprovalCommand::Reject { id, reason, notes } => {
                let decided = self.client.reject(*id, reason, notes.as_deref()).await?;
                if self.document() {
                    self.print(decided.json());
                } else {
                    println!("rejected request {} for {}", decided.request.id, decided.request.reference());
                }
            }
        }
        Ok(())
    }

    async fn check(&self, image: &str, request_approval: bool) -> Outcome {
        let admission = self.client.check_admission(image, request_approval).await?;
        if self.document() {
            self.print(admission.json());
        }
        match &*admission {
            Admission::Allowed { image, tag, warnings } => {
                if !self.document() {
                    println!("allowed: {image}:{tag}");
                }
                for warning in warnings {
                    eprintln!("warning: {warning}");
                }
                Ok(())
            }
            Admission::Refused { message, .. } => Err(Failure::Refused(format!("refused: {image}: {message}"))),
        }
    }

    async fn import(&self, source: &str, platforms: &[String], description: Option<String>, wait: bool) -> Outcome {
        let request = ImportRequest {
            source: source.to_owned(),
            platforms: platforms.to_vec(),
            description,
            ..Default::default()
        };
        let answer = self.client.import(&request).await?;
        if !wait {
            if self.document() {
                self.print(answer.json());
            } else {
                println!("{} (import {})", answer.message, answer.id());
            }
            return Ok(());
        }
        if !self.document() {
            println!("{} (import {})", answer.message, answer.id());
        }
        self.follow(answer.id()).await
    }

    /// Follows an import to its end (see [`follow::View`]). Ctrl-C stops following and leaves the import
    /// running.
    async fn follow(&self, id: i64) -> Outcome {
        let documents = match self.format {
            Format::Table => None,
            Format::Json => Some(false),
            Format::Yaml => Some(true),
        };
        let terminal = std::io::stdout().is_terminal();
        let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let view = std::cell::RefCell::new(follow::View::new(id, documents, terminal, colour));
        let following =
            self.client.follow_import(id, Duration::from_millis(250), |p| view.borrow_mut().update(p, p.json()));
        let done = tokio::select! {
            done = following => done,
            _ = tokio::signal::ctrl_c() => {
                view.borrow_mut().finish();
                return Err(Failure::Interrupted(format!(
                    "stopped following import {id}, which goes on; `imgctl imports cancel {id}` stops it"
                )));
            }
        };
        view.borrow_mut().finish();
        let done = done?;
        if done.is_ready() {
            Ok(())
        } else {
            let why = done.message.as_deref().unwrap_or("no reason given");
            Err(Failure::Refused(format!("import {id} {}: {why}", done.state)))
        }
    }

    async fn imports(&self, command: &ImportsCommand) -> Outcome {
        match command {
            ImportsCommand::List { ready, tag, page, page_size } => {
                let query = ImportQuery {
                    page_num: *page,
                    page_size: *page_size,
                    tag: tag.clone(),
                    ready: ready.then_some(true),
                    user_name: None,
                };
                let list = self.client.list_imports(&query).await?;
                if self.document() {
                    self.print(list.json());
                    return Ok(());
                }
                let mut rows = Vec::new();
                for group in &list.images {
                    for a in &group.artifacts {
                        let platform = match (&a.os, &a.arch) {
                            (Some(os), Some(arch)) => format!("{os}/{arch}"),
                            _ => "-".into(),
                        };
                        rows.push(vec![
                            a.id.to_string(),
                            format!("{}/{}:{}", group.registry_host, group.repo, a.image_tag),
                            platform,
                            a.status.clone(),
                            output::size(a.size),
                            a.created_time.clone(),
                            a.user_name.clone(),
                        ]);
                    }
                }
                output::table(
                    &["ID", "IMAGE", "PLATFORM", "STATUS", "SIZE", "CREATED", "USER"],
                    &rows,
                    self.no_headers,
                );
            }
            ImportsCommand::Show { id, follow: true } => return self.follow(*id).await,
            ImportsCommand::Show { id, follow: false } => {
                let details = self.client.import_details(*id).await?;
                if self.document() {
                    self.print(details.json());
                    return Ok(());
                }
                let (completed, layers) = details.layers_completed();
                println!("IMPORT:    {id}");
                println!("STATUS:    {}", details.status);
                println!("ATTEMPTS:  {}", details.attempts);
                println!("LAYERS:    {completed}/{layers} completed");
                if let Some(message) = &details.message {
                    println!("MESSAGE:   {message}");
                }
                println!();
                let rows: Vec<Vec<String>> = details
                    .layers_detail
                    .iter()
                    .map(|(digest, l)| vec![digest.clone(), l.status.clone(), format!("{}%", l.progress)])
                    .collect();
                output::table(&["LAYER", "STATUS", "PROGRESS"], &rows, self.no_headers);
            }
            ImportsCommand::Cancel { id } => {
                let canceled = self.client.cancel_import(*id).await?;
                if self.document() {
                    self.print(canceled.json());
                } else {
                    println!("{} (import {}, now {})", canceled.message, canceled.id, canceled.status);
                }
            }
        }
        Ok(())
    }

    async fn secrets(&self, command: &SecretsCommand) -> Outcome {
        match command {
            SecretsCommand::List { ns, search, page, limit } => {
                let query = ResourceQuery { page: *page, limit: *limit, search: search.clone(), name: None };
                let list = self.client.list_registry_secrets(ns.path(), &query).await?;
                if self.document() {
                    self.print(list.json());
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = list
                    .items
                    .iter()
                    .map(|s| {
                        let verified = s.metadata.annotations.get("theriseunion.io/verify-status");
                        let mut row = vec![
                            s.metadata.name.clone(),
                            s.spec.domain.clone(),
                            s.spec.username.clone(),
                            cell(s.spec.provider.as_deref()),
                            cell(verified.map(String::as_str)),
                            cell(s.metadata.creation_timestamp.as_deref()),
                        ];
                        if ns.all_namespaces {
                            row.insert(0, s.metadata.namespace.clone());
                        }
                        row
                    })
                    .collect();
                let headers = ["NAMESPACE", "NAME", "DOMAIN", "USERNAME", "PROVIDER", "VERIFIED", "CREATED"];
                output::table(&headers[usize::from(!ns.all_namespaces)..], &rows, self.no_headers);
            }
            SecretsCommand::Add { name, ns, domain, username, password_stdin, provider, insecure } => {
                let password = read_password(&format!("Password for {username} at {domain}: "), *password_stdin)?;
                let metadata =
                    ObjectMeta { name: name.clone(), namespace: ns.namespace.clone(), ..ObjectMeta::default() };
                let spec = RegistrySecretSpec {
                    domain: domain.clone(),
                    username: username.clone(),
                    password: Some(password),
                    provider: Some(provider.clone()),
                    insecure: *insecure,
                    ca_bundle: None,
                };
                let added = self.client.create_registry_secret(&metadata, &spec).await?;
                self.done(added.json(), || {
                    format!(
                        "added registry secret {}/{} for {} as {}",
                        added.metadata.namespace, added.metadata.name, added.spec.domain, added.spec.username
                    )
                });
            }
            SecretsCommand::Verify { name, ns } => {
                let outcome = self.client.verify_registry_secret(&ns.namespace, name).await?;
                let which = format!("{}/{name}", ns.namespace);
                if self.document() {
                    self.print(outcome.json());
                }
                if !outcome.success {
                    return Err(Failure::Refused(format!(
                        "registry secret {which} does not work: {}",
                        outcome.message
                    )));
                }
                if !self.document() {
                    println!("registry secret {which} works: {}", outcome.message);
                }
            }
            SecretsCommand::Delete { name, ns } => {
                self.client.delete_registry_secret(&ns.namespace, name).await?;
                if !self.document() {
                    println!("deleted registry secret {}/{name}", ns.namespace);
                }
            }
        }
        Ok(())
    }

    async fn repos(&self, command: &ReposCommand) -> Outcome {
        match command {
            ReposCommand::List { ns, name, page, limit } => {
                let query = ResourceQuery { page: *page, limit: *limit, search: None, name: name.clone() };
                let list = self.client.list_repositories(ns.path(), &query).await?;
                if self.document() {
                    self.print(list.json());
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = list
                    .items
                    .iter()
                    .map(|r| {
                        let status = r.status.clone().unwrap_or_default();
                        let source = match &status.domain {
                            Some(domain) => format!("{domain}/{}:{}", r.spec.repository, r.spec.tag),
                            None => format!("{}:{}", r.spec.repository, r.spec.tag),
                        };
                        let secret = &r.spec.registry_ref;
                        let secret = if secret.namespace == r.metadata.namespace {
                            secret.name.clone()
                        } else {
                            format!("{}/{}", secret.namespace, secret.name)
                        };
                        let mut row = vec![
                            r.metadata.name.clone(),
                            source,
                            secret,
                            cell(r.spec.sync_interval.as_deref()),
                            cell(status.sync_status.as_deref()),
                            cell(status.last_synced.as_deref()),
                        ];
                        if ns.all_namespaces {
                            row.insert(0, r.metadata.namespace.clone());
                        }
                        row
                    })
                    .collect();
                let headers = ["NAMESPACE", "NAME", "SOURCE", "SECRET", "INTERVAL", "SYNC", "LAST-SYNCED"];
                output::table(&headers[usize::from(!ns.all_namespaces)..], &rows, self.no_headers);
            }
            ReposCommand::Add { name, ns, repository, tag, secret, secret_namespace, interval, timeout, retries } => {
                let metadata =
                    ObjectMeta { name: name.clone(), namespace: ns.namespace.clone(), ..ObjectMeta::default() };
                let spec = RepositorySpec {
                    repository: repository.clone(),
                    tag: tag.clone(),
                    registry_ref: SecretName {
                        name: secret.clone(),
                        namespace: secret_namespace.clone().unwrap_or_else(|| ns.namespace.clone()),
                    },
                    sync_interval: interval.clone(),
                    sync_timeout: timeout.clone(),
                    retry_count: *retries,
                };
                let added = self.client.create_repository(&metadata, &spec).await?;
                self.done(added.json(), || {
                    let every = added.spec.sync_interval.as_deref().map(|i| format!(", synced every {i}"));
                    format!(
                        "added repository {}/{} for {}:{}{}",
                        added.metadata.namespace,
                        added.metadata.name,
                        added.spec.repository,
                        added.spec.tag,
                        every.unwrap_or_default()
                    )
                });
            }
            ReposCommand::Sync { name, ns } => {
                let outcome = self.client.sync_repository(&ns.namespace, name).await?;
                if self.document() {
                    self.print(outcome.json());
                }
                let which = format!("{}/{name}", ns.namespace);
                if !outcome.success {
                    return Err(Failure::Refused(format!("repository {which} was not synced: {}", outcome.message)));
                }
                if !self.document() {
                    println!("repository {which}: {}", outcome.message);
                }
            }
            ReposCommand::Delete { name, ns } => {
                self.client.delete_repository(&ns.namespace, name).await?;
                if !self.document() {
                    println!("deleted repository {}/{name}", ns.namespace);
                }
            }
        }
        Ok(())
    }

    async fn images(&self, node: Option<&str>) -> Outcome {
        let images = self.client.node_images(node).await?;
        if self.document() {
            self.print(images.json());
            return Ok(());
        }
        let rows: Vec<Vec<String>> = images
            .containerd_images
            .iter()
            .map(|i| vec![i.repository.clone(), i.tag.clone(), i.image_id.clone(), i.size.clone()])
            .collect();
        output::table(&["IMAGE", "TAG", "IMAGE ID", "SIZE"], &rows, self.no_headers);
        println!();
        let rows: Vec<Vec<String>> = images
            .harbor_images
            .iter()
            .map(|i| {
                vec![
                    cell(Some(&i.project)),
                    i.repository.clone(),
                    i.tag.clone(),
                    i.digest.clone(),
                    i.size.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        output::table(&["PROJECT", "REPOSITORY", "TAG", "DIGEST", "SIZE"], &rows, self.no_headers);
        for e in &images.errors {
            eprintln!("warning: {}: {}", e.source, e.reason);
        }
        Ok(())
    }

    async fn stats(&self) -> Outcome {
        let stats = self.client.registry_stats().await?;
        if self.document() {
            self.print(stats.json());
            return Ok(());
        }
        println!("STATUS:          {}", stats.status);
        if let Some(reason) = &stats.reason {
            println!("REASON:          {reason}");
        }
        println!("PROJECTS:        {} private, {} public", stats.private_project_count, stats.public_project_count);
        println!("REPOSITORIES:    {} private, {} public", stats.private_repo_count, stats.public_repo_count);
        println!("STORAGE:         {}", output::size(stats.total_storage));
        if !stats.components.is_empty() {
            println!();
            let rows: Vec<Vec<String>> =
                stats.components.iter().map(|c| vec![c.name.clone(), c.status.clone()]).collect();
            output::table(&["COMPONENT", "STATUS"], &rows, self.no_headers);
        }
        Ok(())
    }

    async fn nodes(&self) -> Outcome {
        let list = self.client.list_nodes().await?;
        if self.document() {
            self.print(list.json());
            return Ok(());
        }
        let rows: Vec<Vec<String>> = list
            .nodes
            .iter()
            .map(|n| {
                let runtime = match (&n.runtime_name, &n.runtime_version) {
                    (Some(name), Some(version)) => format!("{name} {version}"),
                    (Some(name), None) => name.clone(),
                    _ => "-".into(),
                };
                let state = if n.stale {
                    "stale"
                } else if n.last_error.is_some() {
                    "failing"
                } else {
                    "ready"
                };
                vec![
                    n.name.clone(),
                    state.into(),
                    runtime,
                    n.image_count.to_string(),
                    n.last_report_at.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        output::table(&["NAME", "STATE", "RUNTIME", "IMAGES", "LAST-REPORT"], &rows, self.no_headers);
        Ok(())
    }

    async fn drift(&self, node: Option<&str>) -> Outcome {
        let drift = self.client.drift(node).await?;
        if self.document() {
            self.print(drift.json());
            return Ok(());
        }
        let rows: Vec<Vec<String>> = drift
            .drift
            .iter()
            .map(|d| vec![d.image.clone(), d.image_id.clone(), d.reason.clone(), d.nodes.join(",")])
            .collect();
        output::table(&["IMAGE", "IMAGE ID", "REASON", "NODES"], &rows, self.no_headers);
        Ok(())
    }

    async fn robots(&self, command: &RobotsCommand) -> Outcome {
        match command {
            RobotsCommand::List => {
                let list = self.client.list_robots().await?;
                if self.document() {
                    self.print(list.json());
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = list
                    .robots
                    .iter()
                    .map(|r| {
                        let expires = match (&r.expires_at, r.expired) {
                            (Some(at), true) => format!("{at} (expired)"),
                            (Some(at), false) => at.clone(),
                            (None, _) => "never".to_owned(),
                        };
                        vec![r.username.clone(), r.repositories.join(","), r.actions.join(","), expires]
                    })
                    .collect();
                output::table(&["USERNAME", "REPOSITORIES", "ACTIONS", "EXPIRES"], &rows, self.no_headers);
            }
            RobotsCommand::Create { name, repositories, actions, expires_in } => {
                let robot = self.client.create_robot(name, repositories, actions, expires_in.as_deref()).await?;
                self.done(robot.json(), || {
                    format!(
                        "created robot {} ({} in {}); its secret, shown only now:\n{}",
                        robot.username,
                        robot.actions.join(","),
                        robot.repositories.join(","),
                        robot.secret.as_deref().unwrap_or_default()
                    )
                });
            }
            RobotsCommand::Delete { name } => {
                self.client.delete_robot(name).await?;
                if !self.document() {
                    println!("deleted robot {name}");
                }
            }
        }
        Ok(())
    }

    async fn users(&self, command: &UsersCommand) -> Outcome {
        match command {
            UsersCommand::List => {
                let list = self.client.list_users().await?;
                if self.document() {
                    self.print(list.json());
                    return Ok(());
                }
                let rows: Vec<Vec<String>> =
                    list.users.iter().map(|u| vec![u.username.clone(), u.role.clone(), u.created_at.clone()]).collect();
                output::table(&["NAME", "ROLE", "CREATED"], &rows, self.no_headers);
            }
            UsersCommand::Add { name, role, password_stdin } => {
                let password = read_password(&format!("Password for the new user {name}: "), *password_stdin)?;
                let user = self.client.create_user(name, &password, role.as_str()).await?;
                self.done(user.json(), || format!("added user {} ({})", user.username, user.role));
            }
            UsersCommand::SetRole { name, role } => {
                let user = self.client.update_user(name, Some(role.as_str()), None).await?;
                self.done(user.json(), || format!("user {} is now {}", user.username, user.role));
            }
            UsersCommand::Passwd { name, password_stdin } => {
                let password = read_password(&format!("New password for {name}: "), *password_stdin)?;
                let user = self.client.update_user(name, None, Some(&password)).await?;
                self.done(user.json(), || {
                    format!("changed the password of {}; their tokens no longer work", user.username)
                });
            }
            UsersCommand::Delete { name } => {
                self.client.delete_user(name).await?;
                if !self.document() {
                    println!("deleted user {name}");
                }
            }
        }
        Ok(())
    }
}
