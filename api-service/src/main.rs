//! api-service binary: parse config, init telemetry, migrate or serve.

use clap::Parser;
use cudly_api::config::Config;
use cudly_api::startup;
use cudly_core::config::Command;
use cudly_core::server as serving;
use cudly_core::{db, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("api-service", config.common.log_format)?;
    match config.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Migrate => {
            db::migrate(&config.common.connect().await?).await?;
            tracing::info!("migrations applied");
        }
        Command::Serve => {
            let pool = config.common.connect_lazy()?;
            let app = startup::build(startup::Settings::from_config(&config)?, pool).await?;
            app.run(serving::shutdown_signal()).await?;
        }
    }
    Ok(())
}
