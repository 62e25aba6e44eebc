//! Settings for in-process services, from the same flag defaults the
//! binaries use (stated once, in each service's clap `Config`), bound to a
//! free port on 127.0.0.1 with metrics off.

use clap::Parser as _;

/// api-service's settings with its defaults, delivering to
/// `collector_url`, caller authentication off.
pub fn api(collector_url: &str) -> cudly_api::app::Settings {
    let config = cudly_api::config::Config::try_parse_from([
        "api-service",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--auth-disabled",
        "--collector-url",
        collector_url,
    ])
    .expect("the test flags parse");
    cudly_api::app::Settings::from_config(&config).expect("the default settings are complete")
}

/// api-service's JWT settings with the defaults of its flags (leeway, the
/// permissions claim, the key refresh), trusting a placeholder issuer whose
/// keys are discovered: replace the issuers.
pub fn auth_defaults() -> cudly_api::auth::AuthSettings {
    let config = cudly_api::config::Config::try_parse_from([
        "api-service",
        "--jwt-issuer",
        "https://issuer.invalid/",
        "--jwt-audience",
        "cudly-api",
    ])
    .expect("the test flags parse");
    config.auth.settings().expect("the settings are complete")
}

/// collector-service's settings with its defaults, open to any caller.
pub fn collector() -> cudly_collector::app::Settings {
    cudly_collector::app::Settings::from_config(&collector_config()).expect("the default settings are complete")
}

/// The simulated clouds as collector-service's `--sim-*` flags default them.
pub fn simulated() -> cudly_collector::providers::simulated::SimulatedConfig {
    cudly_collector::providers::simulated::SimulatedConfig::from_config(&collector_config())
}

fn collector_config() -> cudly_collector::config::Config {
    cudly_collector::config::Config::try_parse_from([
        "collector-service",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--insecure-no-auth",
    ])
    .expect("the test flags parse")
}

/// What a run announces, as collector-service's `--notify-*` flags default
/// it.
pub fn notice_rules() -> cudly_collector::notices::NoticeRules {
    collector_config().notice_rules()
}

/// The collector's fan-out caps at their defaults.
pub fn engine() -> cudly_collector::engine::EngineConfig {
    collector().engine
}
