//! api-service binary: parse config, init telemetry, migrate or serve.

use clap::Parser;
use cudly_api::app;
use cudly_api::config::Config;
use cudly_core::config::Command;
use cudly_core::server;
use cudly_core::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("api-service", config.common.log_format)?;
    match config.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Migrate => config.common.migrate().await?,
        Command::Serve => {
            let pool = config.common.connect_lazy()?;
            let service = app::build(app::Settings::from_config(&config)?, pool).await?;
            service.run(server::shutdown_signal()).await?;
        }
    }
    Ok(())
}
