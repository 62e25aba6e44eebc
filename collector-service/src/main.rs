//! collector-service binary: parse config, init telemetry, migrate or serve.

use clap::Parser;
use cudly_collector::config::{Command, Config};
use cudly_collector::{accounts, db, serving, startup, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("collector-service", config.common.log_format)?;
    let pool = config.common.connect().await?;
    match config.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Migrate => {
            db::migrate(&pool).await?;
            tracing::info!("migrations applied");
        }
        Command::Serve => {
            let seeded = accounts::seed_simulated_accounts(&pool, &config.seed_accounts).await?;
            if seeded > 0 {
                tracing::info!(accounts = seeded, "simulated accounts seeded");
            }
            let backends = startup::backends_from_config(&config);
            let app = startup::build(startup::Settings::from_config(&config), pool, backends).await?;
            app.run(serving::shutdown_signal()).await?;
        }
    }
    Ok(())
}
