//! cudlyctl: a command-line client of api-service, for operators, scripts
//! and the local demo.

mod accounts;
mod connect;
mod exit;
mod notifications;
mod output;
mod paging;
mod recommendations;

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand};
use secrecy::ExposeSecret as _;

use crate::output::Format;

/// Talks to api-service: refresh, watch freshness, list recommendations and
/// the run history, manage the accounts registry and notification channels.
#[derive(Debug, Parser)]
#[command(name = "cudlyctl", version, after_help = exit::HELP)]
struct Cli {
    #[command(flatten)]
    connection: connect::Connection,

    /// `table` for people; `json` for scripts: the canonical proto3 JSON of
    /// each response, one object per line.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true, help_heading = "Global options")]
    output: Format,

    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a collection (or join the one in flight).
    Refresh {
        /// Mark it as a scheduled refresh rather than a user's.
        #[arg(long)]
        schedule: bool,
        /// Then stream its progress until it ends.
        #[arg(long)]
        watch: bool,
    },
    /// Stream freshness changes until interrupted.
    Watch {
        /// Only changes after this version.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        since: i64,
    },
    /// Print the current freshness.
    Freshness,
    /// Check grpc.health.v1 (exit status 0 only when SERVING).
    Health,
    /// List recommendations, biggest savings first.
    List(recommendations::ListArgs),
    /// Print the run history, newest first.
    Collections(recommendations::CollectionsArgs),
    /// Manage the accounts registry (needs the `accounts:admin` permission).
    #[command(subcommand)]
    Accounts(accounts::AccountsCmd),
    /// Manage notification channels, send test notices, list deliveries
    /// (needs the `notifications:admin` permission).
    #[command(subcommand)]
    Notifications(notifications::NotificationsCmd),
    /// Print an HS256 token signed with the service's shared secret, for
    /// local runs and tests (production tokens come from your identity
    /// provider). Needs no running service.
    Token {
        /// File holding the HS256 secret (refused when api-service would
        /// refuse it).
        #[arg(long, env = "CUDLY_JWT_HS256_SECRET_FILE")]
        secret_file: PathBuf,
        /// `iss` claim.
        #[arg(long, env = "CUDLY_JWT_ISSUER")]
        issuer: String,
        /// `aud` claim.
        #[arg(long, env = "CUDLY_JWT_AUDIENCE")]
        audience: String,
        /// Permission to grant (repeatable): recommendations:view,
        /// accounts:admin, notifications:admin.
        #[arg(long = "permission", default_value = "recommendations:view")]
        permissions: Vec<String>,
        /// Claim the permissions go in.
        #[arg(long, env = "CUDLY_JWT_PERMISSIONS_CLAIM", default_value = "permissions")]
        permissions_claim: String,
        /// `sub` claim.
        #[arg(long, default_value = "cudlyctl")]
        subject: String,
        /// Lifetime of the token.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Print a shell completion script, e.g. `cudlyctl completions bash >
    /// /etc/bash_completion.d/cudlyctl`. Needs no running service.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Usage errors exit 2 (clap's own), before anything else happens.
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => exit::report(&err),
    }
}

/// Ends the process as clap does for a bad flag (exit status 2), for what
/// can be checked only after parsing.
fn usage_error(message: impl std::fmt::Display) -> ! {
    Cli::command().error(clap::error::ErrorKind::ValueValidation, message).exit()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = cli.output;
    match cli.command {
        Cmd::Token { secret_file, issuer, audience, permissions, permissions_claim, subject, ttl } => {
            let secret = cudly_api::auth::read_hs256_secret(&secret_file)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let claims = serde_json::json!({
                "iss": issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + ttl.as_secs(),
                permissions_claim.as_str(): permissions,
            });
            let key = jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes());
            let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)?;
            match out {
                Format::Table => output::line(&token)?,
                Format::Json => output::line(&serde_json::json!({ "token": token }).to_string())?,
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cudlyctl", &mut std::io::stdout());
        }
        Cmd::Health => {
            let channel = cli.connection.channel().await?;
            recommendations::health(channel, out).await?;
        }
        Cmd::Refresh { schedule, watch } => {
            let mut client = cli.connection.recommendations().await?;
            recommendations::refresh(&mut client, schedule, watch, out).await?;
        }
        Cmd::Watch { since } => {
            let mut client = cli.connection.recommendations().await?;
            recommendations::watch(&mut client, since, out).await?;
        }
        Cmd::Freshness => {
            let mut client = cli.connection.recommendations().await?;
            recommendations::freshness(&mut client, out).await?;
        }
        Cmd::List(args) => {
            let mut client = cli.connection.recommendations().await?;
            recommendations::list(&mut client, args, out).await?;
        }
        Cmd::Collections(args) => {
            let mut client = cli.connection.recommendations().await?;
            recommendations::collections(&mut client, args, out).await?;
        }
        Cmd::Accounts(cmd) => {
            cmd.check();
            let mut client = cli.connection.accounts().await?;
            accounts::run(&mut client, cmd, out).await?;
        }
        Cmd::Notifications(cmd) => {
            cmd.check();
            let mut client = cli.connection.notifications().await?;
            notifications::run(&mut client, cmd, out).await?;
        }
    }
    Ok(())
}
