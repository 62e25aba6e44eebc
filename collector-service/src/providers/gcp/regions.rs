//! Where a GCP project is swept: the regions Compute Engine lists for it,
//! each list's parent (a project's region for resource-based commitments,
//! its billing account's `global` and regional locations for spend-based
//! ones), and the sweep plan.

use cudly_core::credentials::Credentials;
use cudly_core::domain::{Account, PaymentOption};

use super::GcpBackend;
use super::client::ListCall;
use super::wire::RegionPage;
use crate::providers::{BackendError, RequestCount, Sweep};

/// The recommender of resource-based commitments (per project and region).
const USAGE_RECOMMENDER: &str = "google.compute.commitment.UsageCommitmentRecommender";
/// The recommender of spend-based commitments (per billing account).
const SPEND_RECOMMENDER: &str = "google.cloudbilling.commitment.SpendBasedCommitmentRecommender";
/// The location of recommendations that are not regional.
pub(super) const GLOBAL: &str = "global";

impl GcpBackend {
    /// The project's regions (Compute Engine's `regions.list`, every page),
    /// sorted.
    pub(super) async fn list_regions(
        &self,
        account: &Account,
        calls: &RequestCount,
    ) -> Result<Vec<String>, BackendError> {
        let project = account.external_id.as_str();
        let auth = self.token(account, calls).await?;
        let list = ListCall {
            calls,
            what: format!("GCP regions for project {project}"),
            hint: format!(
                "enable the Compute Engine API (compute.googleapis.com) on project {project} and grant the \
                 collector's service account a role with compute.regions.list there (e.g. roles/compute.viewer)"
            ),
            auth: &auth,
            base: &self.compute_url,
            segments: &["compute", "v1", "projects", project, "regions"],
            filter: None,
        };
        let mut names = self
            .pages(&list, |page: RegionPage| (page.items.into_iter().map(|r| r.name).collect(), page.next_page_token))
            .await?;
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// The locations `service` is swept in, given the project's regions:
/// compute per region; the spend-based services (billing-account scope) in
/// `global` and every region.
pub(super) fn service_regions(service: &str, listed: &[String]) -> Vec<String> {
    match service {
        "compute" => listed.to_vec(),
        _ => std::iter::once(GLOBAL.to_string()).chain(listed.iter().cloned()).collect(),
    }
}

/// Both terms, paid monthly (commitments are billed monthly), for every
/// service.
pub(super) fn sweeps() -> Vec<Sweep> {
    [12, 36].into_iter().map(|term_months| Sweep { term_months, payment: PaymentOption::Monthly }).collect()
}

/// The project's billing account id (without `billingAccounts/`), when it
/// has one: spend-based recommendations live there.
pub(super) fn billing_account(account: &Account) -> Option<String> {
    match &account.credentials {
        Some(Credentials::Gcp(gcp)) => gcp
            .billing_account_id
            .as_deref()
            .map(|id| id.trim().trim_start_matches("billingAccounts/").to_string())
            .filter(|id| !id.is_empty()),
        _ => None,
    }
}

/// Where a list lives, for URLs, errors and hints.
pub(super) enum Scope<'a> {
    /// Resource-based commitments of a project, in a region.
    Project { project: &'a str, region: &'a str },
    /// Spend-based commitments of the project's billing account `id`, in a
    /// location (`global` or a region).
    Billing { id: &'a str, project: &'a str, location: &'a str },
}

impl Scope<'_> {
    /// `v1/<parent>/recommendations`, one segment each.
    pub(super) fn segments(&self) -> Vec<&str> {
        match *self {
            Scope::Project { project, region } => {
                vec![
                    "v1",
                    "projects",
                    project,
                    "locations",
                    region,
                    "recommenders",
                    USAGE_RECOMMENDER,
                    "recommendations",
                ]
            }
            Scope::Billing { id, location, .. } => {
                vec![
                    "v1",
                    "billingAccounts",
                    id,
                    "locations",
                    location,
                    "recommenders",
                    SPEND_RECOMMENDER,
                    "recommendations",
                ]
            }
        }
    }

    /// Names the list in errors.
    pub(super) fn what(&self) -> String {
        match self {
            Scope::Project { project, region } => {
                format!("GCP compute recommendations for project {project} in {region}")
            }
            Scope::Billing { id, project, location } => {
                format!("GCP spend-based recommendations for project {project} (billing account {id}) in {location}")
            }
        }
    }

    /// What to enable and grant when the list is refused.
    pub(super) fn hint(&self) -> String {
        match self {
            Scope::Project { project, .. } => format!(
                "enable the Recommender API (recommender.googleapis.com) on project {project} and on the service \
                 account's own project, and grant the collector's service account roles/recommender.computeViewer \
                 on project {project}"
            ),
            Scope::Billing { id, .. } => format!(
                "grant the collector's service account roles/recommender.billingAccountCudViewer on billing account \
                 {id}, and enable the Recommender API on the service account's own project"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{GLOBAL, Scope, service_regions, sweeps};

    #[test]
    fn spend_based_services_are_swept_in_global_and_every_region() {
        let listed = vec!["europe-west1".to_string(), "us-central1".to_string()];
        assert_eq!(service_regions("compute", &listed), listed);
        assert_eq!(service_regions("cloud_sql", &listed), [GLOBAL, "europe-west1", "us-central1"]);
        assert_eq!(sweeps().iter().map(|s| s.term_months).collect::<Vec<_>>(), [12, 36]);
    }

    #[test]
    fn a_list_is_named_by_where_it_lives() {
        let project = Scope::Project { project: "p", region: "us-east1" };
        assert_eq!(
            project.segments().join("/"),
            "v1/projects/p/locations/us-east1/recommenders/google.compute.commitment.UsageCommitmentRecommender/\
             recommendations"
        );
        assert_eq!(project.what(), "GCP compute recommendations for project p in us-east1");
        let billing = Scope::Billing { id: "01A2B3-C4D5E6-F7A8B9", project: "p", location: GLOBAL };
        assert!(billing.segments().join("/").starts_with("v1/billingAccounts/01A2B3-C4D5E6-F7A8B9/locations/global/"));
        assert!(billing.hint().contains("roles/recommender.billingAccountCudViewer on billing account 01A2B3"));
    }
}
