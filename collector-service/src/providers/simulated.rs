//! A simulated cloud: plausible, deterministic recommendations per (account,
//! service, region, term, payment) from a seed, with a configurable per-call
//! latency and failure rate, so that demos, tests and benchmarks exercise the
//! real engine without cloud credentials.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cudly_core::domain::{Account, CommitmentType, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{BackendError, CloudBackend, Query, RequestCount, Sweep};

/// How a simulated cloud behaves.
#[derive(Clone, Debug)]
pub struct SimulatedConfig {
    /// Seeds the generated data.
    pub seed: u64,
    /// Mean latency of one call.
    pub latency: Duration,
    /// Each call's latency is uniform in `latency ± jitter`.
    pub jitter: Duration,
    /// Probability (0–1) that a call fails.
    pub failure_rate: f64,
}

impl SimulatedConfig {
    /// What the `--sim-*` flags ask for.
    pub fn from_config(config: &crate::config::Config) -> Self {
        SimulatedConfig {
            seed: config.sim_seed,
            latency: config.sim_latency,
            jitter: config.sim_jitter,
            failure_rate: config.sim_failure_rate,
        }
    }
}

// The live backends' services, so that simulated data looks like theirs.
const AWS_SERVICES: &[&str] = super::aws::SERVICES;
const AZURE_SERVICES: &[&str] = &["virtual_machines", "sql_database", "cosmos_db", "redis_cache"];
const GCP_SERVICES: &[&str] = super::gcp::SERVICES;

const AWS_REGIONS: &[&str] = &["eu-west-1", "us-east-1", "us-east-2", "us-west-2"];
const AZURE_REGIONS: &[&str] = &["eastus", "northeurope", "westeurope", "westus2"];
/// The regions the simulated GCP lists for every project.
pub const GCP_REGIONS: &[&str] = &[
    "asia-east1",
    "asia-southeast1",
    "australia-southeast1",
    "europe-west1",
    "europe-west4",
    "us-central1",
    "us-east1",
    "us-west1",
];

/// A simulated cloud for one provider.
#[derive(Debug)]
pub struct SimulatedBackend {
    provider: Provider,
    config: SimulatedConfig,
    /// The failure rate as f64 bits, changeable while running (demos, tests).
    failure_rate: AtomicU64,
    /// Varies latency and failures from call to call; the data stays fixed.
    calls: AtomicU64,
    /// Services whose every call fails.
    failing_services: std::sync::Mutex<Vec<&'static str>>,
}

impl SimulatedBackend {
    /// A simulated `provider`.
    pub fn new(provider: Provider, config: SimulatedConfig) -> Self {
        let failure_rate = AtomicU64::new(config.failure_rate.to_bits());
        SimulatedBackend {
            provider,
            config,
            failure_rate,
            calls: AtomicU64::new(0),
            failing_services: Default::default(),
        }
    }

    /// Makes every later call for `service` fail (a service the accounts'
    /// credentials may not read, say), while the others succeed.
    pub fn fail_service(&self, service: &'static str) {
        self.failing_services.lock().unwrap().push(service);
    }

    /// Calls made to this simulated cloud so far (every account, every run).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Changes the failure rate for later calls (1.0 makes every call fail).
    pub fn set_failure_rate(&self, rate: f64) {
        self.failure_rate.store(rate.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// What one call takes: sleeps its latency, then fails with the
    /// configured probability.
    async fn call(&self, what: &str, calls: &RequestCount) -> Result<(), BackendError> {
        calls.request();
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let roll = mix(&[self.config.seed, n, 0x5eed]);
        let jitter = self.config.jitter.as_secs_f64() * (unit(roll) * 2.0 - 1.0);
        let latency = (self.config.latency.as_secs_f64() + jitter).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(latency)).await;
        let rate = f64::from_bits(self.failure_rate.load(Ordering::Relaxed));
        if unit(mix(&[roll, 1])) < rate {
            calls.error();
            return Err(BackendError::failed(format!("simulated {} API error on {what}", self.provider)));
        }
        Ok(())
    }

    fn generate(&self, query: &Query<'_>) -> Vec<Recommendation> {
        let account = query.account;
        let key = mix(&[
            self.config.seed,
            hash_str(&account.external_id),
            hash_str(query.service),
            query.region.map(hash_str).unwrap_or(0),
            query.sweep.term_months as u64,
            query.sweep.payment as u64,
        ]);
        let (regions, resources, platforms): (&[&str], &[&str], &[&str]) = match self.provider {
            Provider::Aws => (AWS_REGIONS, aws_resources(query.service), aws_platforms(query.service)),
            Provider::Azure => (AZURE_REGIONS, azure_resources(query.service), &[""]),
            Provider::Gcp => (&[], gcp_resources(query.service), &[""]),
        };
        let wanted = 1 + (key % 3) as usize;
        let mut out: Vec<Recommendation> = Vec::with_capacity(wanted);
        for i in 0..wanted as u64 {
            let h = mix(&[key, i]);
            let region = match query.region {
                Some(region) => region.to_string(),
                None => regions[(h % regions.len() as u64) as usize].to_string(),
            };
            let resource_type = resources[((h >> 8) % resources.len() as u64) as usize].to_string();
            let platform = platforms[((h >> 16) % platforms.len() as u64) as usize].to_string();
            if out.iter().any(|r| r.region == region && r.resource_type == resource_type && r.platform == platform) {
                continue;
            }
            out.push(self.price(query, h, region, resource_type, platform));
        }
        out
    }

    fn price(
        &self,
        query: &Query<'_>,
        h: u64,
        region: String,
        resource_type: String,
        platform: String,
    ) -> Recommendation {
        let term = f64::from(query.sweep.term_months);
        let count = (1 + (h >> 24) % 8) as f64;
        let unit_monthly = 25.0 + unit(mix(&[h, 2])) * 350.0;
        let on_demand = round2(count * unit_monthly);
        // Longer terms and more upfront buy deeper discounts, as on the clouds.
        let base = if query.sweep.term_months >= 36 { 0.45 } else { 0.25 };
        let upfront_bonus = match query.sweep.payment {
            PaymentOption::AllUpfront => 0.06,
            PaymentOption::PartialUpfront => 0.03,
            PaymentOption::NoUpfront | PaymentOption::Monthly => 0.0,
        };
        let discount = base + upfront_bonus + unit(mix(&[h, 3])) * 0.12;
        let effective_monthly = on_demand * (1.0 - discount);
        let upfront_share = match query.sweep.payment {
            PaymentOption::AllUpfront => 1.0,
            PaymentOption::PartialUpfront => 0.5,
            PaymentOption::NoUpfront | PaymentOption::Monthly => 0.0,
        };
        let upfront = round2(effective_monthly * term * upfront_share);
        let recurring = round2(effective_monthly * (1.0 - upfront_share));
        let savings = round2(on_demand - effective_monthly);
        let break_even = if upfront > 0.0 { round2(upfront / (on_demand - recurring)) } else { 0.0 };
        let commitment_type = match self.provider {
            Provider::Aws if query.service.ends_with("savings_plans") => CommitmentType::SavingsPlan,
            Provider::Aws | Provider::Azure => CommitmentType::ReservedInstance,
            Provider::Gcp => CommitmentType::CommittedUseDiscount,
        };
        Recommendation {
            provider: self.provider,
            account_id: query.account.external_id.clone(),
            account_name: query.account.display_name.clone(),
            service: query.service.to_string(),
            region,
            resource_type,
            platform,
            commitment_type,
            term_months: query.sweep.term_months,
            payment_option: query.sweep.payment,
            currency: Currency::USD,
            recommended_count: count,
            upfront_cost: cents(upfront),
            recurring_monthly_cost: cents(recurring),
            on_demand_monthly_cost: cents(on_demand),
            estimated_monthly_savings: cents(savings),
            savings_percentage: round2(savings / on_demand * 100.0),
            break_even_months: break_even,
        }
    }
}

impl CloudBackend for SimulatedBackend {
    fn provider(&self) -> Provider {
        self.provider
    }

    fn services(&self) -> &'static [&'static str] {
        match self.provider {
            Provider::Aws => AWS_SERVICES,
            Provider::Azure => AZURE_SERVICES,
            Provider::Gcp => GCP_SERVICES,
        }
    }

    fn sweeps(&self, _service: &'static str) -> Vec<Sweep> {
        let payments: &[PaymentOption] = match self.provider {
            Provider::Aws => &[PaymentOption::NoUpfront, PaymentOption::PartialUpfront, PaymentOption::AllUpfront],
            Provider::Azure | Provider::Gcp => &[PaymentOption::Monthly],
        };
        [12, 36]
            .into_iter()
            .flat_map(|term_months| payments.iter().map(move |&payment| Sweep { term_months, payment }))
            .collect()
    }

    fn regions<'a>(
        &'a self,
        account: &'a Account,
        calls: &'a RequestCount,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, BackendError>> {
        async move {
            if self.provider != Provider::Gcp {
                return Ok(None);
            }
            self.call(&format!("regions of {}", account.external_id), calls).await?;
            Ok(Some(GCP_REGIONS.iter().map(|r| r.to_string()).collect()))
        }
        .boxed()
    }

    fn fetch<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Vec<Recommendation>, BackendError>> {
        async move {
            let what = format!("{} of {}", query.service, query.account.external_id);
            self.call(&what, query.calls).await?;
            if self.failing_services.lock().unwrap().contains(&query.service) {
                query.calls.error();
                return Err(BackendError::failed(format!("simulated {} API error on {what}", self.provider)));
            }
            Ok(self.generate(&query))
        }
        .boxed()
    }
}

fn aws_resources(service: &str) -> &'static [&'static str] {
    match service {
        "ec2" | "ec2_instance_savings_plans" => &["c6i.xlarge", "m5.large", "m6i.2xlarge", "r6g.xlarge", "t3.medium"],
        "rds" => &["db.m6g.large", "db.r6g.xlarge", "db.t4g.medium"],
        "elasticache" => &["cache.m6g.large", "cache.r6g.large"],
        "opensearch" => &["m6g.large.search", "r6g.xlarge.search"],
        "redshift" => &["ra3.4xlarge", "ra3.xlplus"],
        "sagemaker_savings_plans" => &["ml.m5.xlarge", "ml.g5.2xlarge"],
        _ => &["compute"],
    }
}

fn aws_platforms(service: &str) -> &'static [&'static str] {
    match service {
        "ec2" | "ec2_instance_savings_plans" => &["linux", "windows"],
        "rds" => &["mysql", "postgresql"],
        "elasticache" => &["redis"],
        _ => &[""],
    }
}

fn azure_resources(service: &str) -> &'static [&'static str] {
    match service {
        "virtual_machines" => &["Standard_D2s_v5", "Standard_D4s_v5", "Standard_E8s_v5"],
        "sql_database" => &["SQLDB_GP_Compute_Gen5_4", "SQLDB_BC_Compute_Gen5_8"],
        "cosmos_db" => &["cosmos_db_100RU"],
        _ => &["Premium_P1", "Standard_C2"],
    }
}

fn gcp_resources(service: &str) -> &'static [&'static str] {
    match service {
        "compute" => &["n2-standard", "e2-standard", "c3-standard"],
        "cloud_sql" => &["cloudsql-postgres-vcpu", "cloudsql-mysql-vcpu"],
        _ => &["memorystore-redis-standard"],
    }
}

/// splitmix64 over several words: stable across platforms and releases,
/// unlike std's hasher.
fn mix(words: &[u64]) -> u64 {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in words {
        state ^= w.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(state << 6).wrapping_add(state >> 2);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        state = z ^ (z >> 31);
    }
    state
}

fn hash_str(s: &str) -> u64 {
    // FNV-1a: stable, so the same account gets the same data everywhere.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A value in [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A price in whole cents, as the simulated clouds quote them.
fn cents(x: f64) -> Amount {
    Amount::from_nanos((x * 100.0).round() as i64 * 10_000_000)
}

#[cfg(test)]
mod tests {
    use cudly_core::domain::{Account, PaymentOption, Provider};
    use cudly_core::money::{Amount, Currency};

    use super::{SimulatedBackend, SimulatedConfig};
    use crate::providers::{CloudBackend, Query, RequestCount, Sweep};

    /// A simulated cloud that answers at once, without failures.
    fn quick() -> SimulatedConfig {
        SimulatedConfig {
            seed: 42,
            latency: std::time::Duration::ZERO,
            jitter: std::time::Duration::ZERO,
            failure_rate: 0.0,
        }
    }

    fn account() -> Account {
        Account {
            provider: Provider::Aws,
            external_id: "000000000001".into(),
            display_name: "Simulated AWS account 01".into(),
            credentials: None,
        }
    }

    static CALLS: RequestCount = RequestCount::new();
    static RUN: std::sync::LazyLock<crate::providers::RunScope> = std::sync::LazyLock::new(Default::default);

    fn query(account: &Account) -> Query<'_> {
        Query {
            account,
            service: "ec2",
            region: None,
            sweep: Sweep { term_months: 36, payment: PaymentOption::AllUpfront },
            calls: &CALLS,
            run: &RUN,
        }
    }

    #[test]
    fn the_same_query_always_generates_the_same_recommendations() {
        let a = SimulatedBackend::new(Provider::Aws, quick());
        let b = SimulatedBackend::new(Provider::Aws, quick());
        let account = account();
        assert_eq!(a.generate(&query(&account)), b.generate(&query(&account)));
        let other_seed = SimulatedBackend::new(Provider::Aws, SimulatedConfig { seed: 7, ..quick() });
        assert_ne!(a.generate(&query(&account)), other_seed.generate(&query(&account)));
    }

    #[test]
    fn generated_prices_are_consistent() {
        let backend = SimulatedBackend::new(Provider::Aws, quick());
        let account = account();
        for rec in backend.generate(&query(&account)) {
            assert!(rec.estimated_monthly_savings.is_positive());
            assert!(rec.savings_percentage > 0.0 && rec.savings_percentage < 100.0);
            assert_eq!(rec.recurring_monthly_cost, Amount::ZERO, "all upfront has no recurring cost");
            assert!(rec.upfront_cost.is_positive() && rec.break_even_months > 0.0);
            assert_eq!(rec.currency, Currency::USD);
            assert_eq!(rec.on_demand_monthly_cost.nanos() % 10_000_000, 0, "whole cents");
            assert!(rec.break_even_months < 36.0, "a recommendation that never pays back is not one");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_rate_of_one_fails_every_call() {
        let backend = SimulatedBackend::new(Provider::Azure, quick());
        let account = account();
        assert!(backend.fetch(query(&account)).await.is_ok());
        backend.set_failure_rate(1.0);
        for _ in 0..200 {
            let err = backend.fetch(query(&account)).await.unwrap_err();
            assert!(err.message.contains("simulated azure API error"), "{err}");
        }
        assert_eq!(backend.calls(), 201, "every call counted, the failed ones too");
    }
}
