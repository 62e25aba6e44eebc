//! The accounts a run collects, and seeding simulated ones for local runs.

use std::str::FromStr;

use sqlx::PgPool;

use cudly_core::domain::{Account, Provider};

/// Every enabled account, ordered by provider and id.
/// An account whose stored credentials do not parse is still collected: its
/// backend then fails it with a message (it is never silently skipped).
pub async fn enabled_accounts(pool: &PgPool) -> Result<Vec<Account>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT provider, external_id, display_name, credentials
         FROM accounts WHERE enabled ORDER BY provider, external_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let external_id = row.external_id;
            let credentials = row.credentials.and_then(|json| match serde_json::from_value(json) {
                Ok(c) => Some(c),
                Err(err) => {
                    tracing::warn!(account = %external_id, error = %err, "stored credentials do not parse");
                    None
                }
            });
            Some(Account {
                provider: Provider::parse(&row.provider)?,
                external_id,
                display_name: row.display_name,
                credentials,
            })
        })
        .collect())
}

/// How many simulated accounts to seed per provider, e.g. `aws=3,azure=2,gcp=2`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedSpec(pub Vec<(Provider, u32)>);

impl FromStr for SeedSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, count) = part.split_once('=').ok_or_else(|| format!("expected PROVIDER=COUNT, got {part:?}"))?;
            let provider = Provider::parse(name.trim())
                .ok_or_else(|| format!("unknown provider {name:?} (expected aws, azure or gcp)"))?;
            let count: u32 = count.trim().parse().map_err(|_| format!("{count:?} is not a count"))?;
            if count > 10_000 {
                return Err(format!("{count} {provider} accounts is more than the 10000 a seed may create"));
            }
            out.push((provider, count));
        }
        Ok(SeedSpec(out))
    }
}

/// The `n`th (1-based) simulated account of a provider, with an id of the
/// provider's shape and a name that says it is simulated.
pub fn simulated_account(provider: Provider, n: u32) -> Account {
    let external_id = match provider {
        Provider::Aws => format!("{:012}", 100_000_000_000u64 + u64::from(n)),
        Provider::Azure => format!("00000000-0000-4000-8000-{n:012}"),
        Provider::Gcp => format!("simulated-project-{n:03}"),
    };
    let name = match provider {
        Provider::Aws => "AWS account",
        Provider::Azure => "Azure subscription",
        Provider::Gcp => "GCP project",
    };
    Account { provider, external_id, display_name: format!("Simulated {name} {n:03}"), credentials: None }
}

/// Upserts the simulated accounts `spec` asks for (enabling them). Returns
/// how many it wrote.
pub async fn seed_simulated_accounts(pool: &PgPool, spec: &SeedSpec) -> Result<usize, sqlx::Error> {
    let accounts: Vec<Account> =
        spec.0.iter().flat_map(|&(provider, count)| (1..=count).map(move |n| simulated_account(provider, n))).collect();
    if accounts.is_empty() {
        return Ok(0);
    }
    sqlx::query!(
        "INSERT INTO accounts (provider, external_id, display_name)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
         ON CONFLICT (provider, external_id) DO UPDATE
             SET display_name = EXCLUDED.display_name, enabled = true, updated_at = now()",
        &accounts.iter().map(|a| a.provider.as_str()).collect::<Vec<_>>() as &[&str],
        &accounts.iter().map(|a| a.external_id.as_str()).collect::<Vec<_>>() as &[&str],
        &accounts.iter().map(|a| a.display_name.as_str()).collect::<Vec<_>>() as &[&str],
    )
    .execute(pool)
    .await?;
    Ok(accounts.len())
}

/// Seeds `spec` as soon as the database answers with the schema this build
/// needs (it may start after the service, and be migrated after it too),
/// retrying every second. Until then it waits quietly: readiness already
/// says, once, what it waits for.
pub async fn seed_when_reachable(pool: PgPool, spec: SeedSpec) {
    loop {
        let ready = cudly_core::db::schema(&pool).await.is_ok_and(|schema| schema.is_usable());
        if ready {
            match seed_simulated_accounts(&pool, &spec).await {
                Ok(seeded) => {
                    tracing::info!(accounts = seeded, "simulated accounts seeded");
                    return;
                }
                Err(err) => tracing::warn!(error = %err, "seeding accounts failed; retrying"),
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_specs_parse_and_reject_nonsense_clearly() {
        assert_eq!("aws=3, gcp=1".parse::<SeedSpec>().unwrap(), SeedSpec(vec![(Provider::Aws, 3), (Provider::Gcp, 1)]));
        assert_eq!("".parse::<SeedSpec>().unwrap(), SeedSpec::default());
        assert!("oracle=2".parse::<SeedSpec>().unwrap_err().contains("unknown provider"));
        assert!("aws".parse::<SeedSpec>().unwrap_err().contains("PROVIDER=COUNT"));
        assert!("aws=-1".parse::<SeedSpec>().unwrap_err().contains("not a count"));
    }

    #[test]
    fn simulated_ids_have_the_shape_of_the_providers_ids() {
        assert_eq!(simulated_account(Provider::Aws, 7).external_id.len(), 12);
        assert_eq!(simulated_account(Provider::Azure, 7).external_id.len(), 36);
        assert!(simulated_account(Provider::Gcp, 7).display_name.starts_with("Simulated"));
    }
}
