//! collector-service binary: parse config, init telemetry, migrate or serve.

use clap::Parser;
use cudly_collector::config::{Backend, Config};
use cudly_collector::{accounts, app};
use cudly_core::config::Command;
use cudly_core::server;
use cudly_core::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("collector-service", config.common.log_format)?;
    match config.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Migrate => config.common.migrate().await?,
        Command::Serve => {
            if config.backend == Backend::Live && !config.seed_accounts.0.is_empty() {
                anyhow::bail!(
                    "CUDLY_SEED_ACCOUNTS seeds simulated accounts, which the live backend cannot collect; \
                     register real accounts with AccountsService instead"
                );
            }
            let pool = config.common.connect_lazy()?;
            if !config.seed_accounts.0.is_empty() {
                tokio::spawn(accounts::seed_when_reachable(pool.clone(), config.seed_accounts.clone()));
            }
            let backends = app::backends_from_config(&config).await?;
            let service = app::build(app::Settings::from_config(&config)?, pool, backends).await?;
            service.run(server::shutdown_signal()).await?;
        }
    }
    Ok(())
}
