//! api-service configuration: flags, each with an environment variable and
//! a documented default, validated at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use cudly_collector::config::{Command, CommonArgs, parse_ttl};

/// Answers RefreshRecommendations at once (the collection runs in
/// collector-service), streams freshness with WatchFreshness, and serves
/// recommendations with ListRecommendations. Native gRPC and gRPC-web on one
/// port, with health and server reflection.
#[derive(Debug, Parser)]
#[command(name = "api-service", version)]
pub struct Config {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Database and logging.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address the gRPC / gRPC-web server listens on (port 0 picks one).
    #[arg(long, env = "CUDLY_API_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// URL of collector-service.
    #[arg(long, env = "CUDLY_COLLECTOR_URL", default_value = "http://127.0.0.1:50052")]
    pub collector_url: String,

    /// How long a refresh waits for the collector's acknowledgement.
    #[arg(long, env = "CUDLY_DISPATCH_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub dispatch_timeout: Duration,

    /// Lease time-to-live given to a new run (the collector renews it).
    #[arg(long, env = "CUDLY_LEASE_TTL", default_value = "30s", value_parser = parse_ttl)]
    pub lease_ttl: Duration,

    /// Data older than this is refreshed in the background when listed.
    #[arg(long, env = "CUDLY_STALE_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub stale_after: Duration,

    /// No automatic (cold-start or stale) refresh within this long after a
    /// run ended, so a failing cloud is not retried on every read.
    #[arg(long, env = "CUDLY_AUTO_REFRESH_BACKOFF", default_value = "60s", value_parser = humantime::parse_duration)]
    pub auto_refresh_backoff: Duration,

    /// WatchFreshness re-sends the current snapshot this often when nothing
    /// changed, so proxies and browsers keep idle streams open.
    #[arg(long, env = "CUDLY_WATCH_HEARTBEAT", default_value = "15s", value_parser = parse_heartbeat)]
    pub watch_heartbeat: Duration,

    /// Browser origins allowed to call over gRPC-web, comma-separated; `*`
    /// allows any (callers authenticate with headers, not cookies).
    #[arg(long, env = "CUDLY_CORS_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "*")]
    pub cors_allowed_origins: Vec<String>,

    /// How long shutdown waits for in-flight calls to finish.
    #[arg(long, env = "CUDLY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

fn parse_heartbeat(s: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if every < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(every)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn help_and_defaults_parse() {
        Config::command().debug_assert();
        let config = Config::try_parse_from(["api-service"]).unwrap();
        assert_eq!(config.dispatch_timeout, Duration::from_secs(2));
        assert_eq!(config.watch_heartbeat, Duration::from_secs(15));
        assert_eq!(config.cors_allowed_origins, ["*"]);
    }

    #[test]
    fn a_bad_duration_names_the_flag() {
        let err = Config::try_parse_from(["api-service", "--stale-after", "soon"]).unwrap_err().to_string();
        assert!(err.contains("--stale-after"), "{err}");
        for (flag, value) in [("--lease-ttl", "0s"), ("--watch-heartbeat", "0s"), ("--db-max-connections", "1")] {
            let err = Config::try_parse_from(["api-service", flag, value]).unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }
}
