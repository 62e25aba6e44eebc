//! Cost Explorer's failures sorted into the kinds the retry policy and the
//! engine act on: an error's code and the SDK error's kind decide, never
//! its text.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_costexplorer::config::http::HttpResponse;
use aws_sdk_costexplorer::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use cudly_core::credentials::AwsCredentials;
use cudly_core::domain::Account;

use crate::providers::BackendError;
use crate::providers::calls::CallError;

/// Cost Explorer's error code for an account without enough usage data: no
/// recommendations, not a failure.
const NO_DATA: &str = "DataUnavailableException";

/// A Cost Explorer request that got no page, decided where the SDK error is
/// classified: by its error code and the SDK error's kind, never its text.
#[derive(Debug)]
pub(super) enum Unanswered {
    /// The account has too little usage for recommendations
    /// (`DataUnavailableException`): nothing to collect, not a failure.
    NoData,
    /// A failure, sorted for the retry policy.
    Failed(CallError),
}

/// A page, `None` when Cost Explorer has no data for the account, or the
/// sorted failure.
pub(super) fn answer<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    access: &Access,
) -> Result<Option<O>, CallError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result.map_err(|err| classify_sdk_error(err, access)) {
        Ok(output) => Ok(Some(output)),
        Err(Unanswered::NoData) => Ok(None),
        Err(Unanswered::Failed(err)) => Err(err),
    }
}

/// A Cost Explorer answer whose details cannot be read: that unit fails.
pub(super) fn malformed(what: &str, problem: String) -> BackendError {
    BackendError::failed(format!("{what}: malformed answer: {problem}"))
}

/// How an account reaches Cost Explorer, for sorting its failures: whether
/// a role is assumed, and what to do about a refusal.
pub(super) struct Access {
    assumes_role: bool,
    hint: String,
}

/// How `account` reaches Cost Explorer with `credentials`.
pub(super) fn access(credentials: &AwsCredentials, account: &Account) -> Access {
    let hint = match &credentials.role_arn {
        Some(arn) => format!(
            "check that {arn} trusts the collector's identity (sts:AssumeRole{}) and allows \
             ce:GetReservationPurchaseRecommendation and ce:GetSavingsPlansPurchaseRecommendation",
            if credentials.external_id.is_some() { " with the external id" } else { "" }
        ),
        None => format!(
            "the collector's own AWS identity needs ce:GetReservationPurchaseRecommendation and \
             ce:GetSavingsPlansPurchaseRecommendation for account {}",
            account.external_id
        ),
    };
    Access { assumes_role: credentials.role_arn.is_some(), hint }
}

/// Sorts an SDK error: no data is no recommendations; throttling and server
/// errors may be retried; credentials, permissions and bad requests may
/// not.
fn classify_sdk_error<E>(err: SdkError<E, HttpResponse>, access: &Access) -> Unanswered
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let hint = &access.hint;
    let failed = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("UnknownError");
            let message = service.err().message().unwrap_or("");
            match code {
                NO_DATA => return Unanswered::NoData,
                "LimitExceededException"
                | "ThrottlingException"
                | "TooManyRequestsException"
                | "RequestLimitExceeded" => {
                    CallError::Throttled { retry_after: None, message: format!("{code}: {message}") }
                }
                "InternalFailure" | "ServiceUnavailable" | "InternalServerError" => {
                    CallError::Transient(format!("{code}: {message}"))
                }
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredTokenException"
                | "AccessDenied" => CallError::Refused(format!("{code}: {message}; {hint}")),
                _ if service.raw().status().is_server_error() => CallError::Transient(format!("{code}: {message}")),
                _ => CallError::Permanent(format!("{code}: {message}")),
            }
        }
        SdkError::ResponseError(_) => {
            // The answer arrived but cannot be read: asking again (a billed
            // request) would get the same answer.
            CallError::Permanent(format!("malformed answer: {}", shorten(&format!("{}", DisplayErrorContext(&err)))))
        }
        SdkError::TimeoutError(_) => CallError::Transient(format!("{}", DisplayErrorContext(&err))),
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            CallError::Transient(format!("{}", DisplayErrorContext(&err)))
        }
        _ => {
            // Credentials that cannot be had (AssumeRole refused, no
            // ambient identity) end up here, before anything is sent: every
            // other call of the account would meet the same.
            let what = match (credentials_failed(&err), access.assumes_role) {
                (true, true) => "AssumeRole denied",
                (true, false) => "no usable AWS credentials",
                (false, _) => "the request could not be sent",
            };
            CallError::Refused(format!("{what}: {}; {hint}", shorten(&format!("{}", DisplayErrorContext(&err)))))
        }
    };
    Unanswered::Failed(failed)
}

/// Whether the SDK could not get credentials (the role could not be
/// assumed, no ambient identity): the error's chain holds the error every
/// credentials provider fails with, recognised by its type, never by its
/// text.
fn credentials_failed(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |e| e.source()).any(|e| e.is::<CredentialsError>())
}

/// At most 400 characters of an SDK error's text.
fn shorten(text: &str) -> String {
    cudly_core::quote::at_most(text, 400)
}

#[cfg(test)]
mod tests {
    use aws_config::retry::RetryConfig;
    use aws_sdk_costexplorer::config::http::HttpResponse;
    use aws_sdk_costexplorer::config::{Credentials as SdkCredentials, ProvideCredentials};
    use aws_sdk_costexplorer::error::{ConnectorError, ErrorMetadata, SdkError};
    use aws_sdk_costexplorer::operation::get_reservation_purchase_recommendation::GetReservationPurchaseRecommendationError as RiError;

    use super::{Access, CallError, Unanswered, classify_sdk_error};

    fn access(assumes_role: bool) -> Access {
        Access { assumes_role, hint: "the hint".into() }
    }

    fn service_error(code: &str, status: u16) -> SdkError<RiError, HttpResponse> {
        let error = RiError::generic(ErrorMetadata::builder().code(code).message("it said so").build());
        SdkError::service_error(error, HttpResponse::new(status.try_into().unwrap(), "".into()))
    }

    fn unsent(source: Box<dyn std::error::Error + Send + Sync>) -> SdkError<RiError, HttpResponse> {
        SdkError::dispatch_failure(ConnectorError::other(source, None))
    }

    #[test]
    fn no_data_is_told_by_its_code_and_is_no_failure() {
        assert!(matches!(
            classify_sdk_error(service_error("DataUnavailableException", 400), &access(false)),
            Unanswered::NoData
        ));
        let throttled = classify_sdk_error(service_error("LimitExceededException", 400), &access(false));
        assert!(matches!(throttled, Unanswered::Failed(CallError::Throttled { .. })), "{throttled:?}");
        let denied = classify_sdk_error(service_error("AccessDeniedException", 400), &access(false));
        assert!(
            matches!(&denied, Unanswered::Failed(CallError::Refused(m))
                if m == "AccessDeniedException: it said so; the hint"),
            "{denied:?}"
        );
        let unknown = classify_sdk_error(service_error("ValidationException", 400), &access(false));
        assert!(matches!(unknown, Unanswered::Failed(CallError::Permanent(_))), "{unknown:?}");
        let server = classify_sdk_error(service_error("Whatever", 503), &access(false));
        assert!(matches!(server, Unanswered::Failed(CallError::Transient(_))), "{server:?}");
    }

    #[tokio::test]
    async fn credentials_that_cannot_be_had_are_refused_and_named_by_their_type_not_their_text() {
        // STS where nothing listens: the role's provider fails to get credentials.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(format!("http://{closed}"))
            .retry_config(RetryConfig::disabled())
            .credentials_provider(SdkCredentials::new("AKIDTEST", "test-secret", None, None, "test"))
            .load()
            .await;
        let role = aws_config::sts::AssumeRoleProvider::builder("arn:aws:iam::123456789012:role/cudly-read")
            .configure(&base)
            .build()
            .await;
        let no_credentials = || async { unsent(Box::new(role.provide_credentials().await.unwrap_err())) };
        let refused = |unanswered: Unanswered| match unanswered {
            Unanswered::Failed(CallError::Refused(message)) => message,
            other => panic!("not a refusal: {other:?}"),
        };
        let message = refused(classify_sdk_error(no_credentials().await, &access(true)));
        assert!(message.starts_with("AssumeRole denied: ") && message.ends_with("; the hint"), "{message}");
        let message = refused(classify_sdk_error(no_credentials().await, &access(false)));
        assert!(message.starts_with("no usable AWS credentials: "), "{message}");
        // A text that mentions credentials is not a credentials failure.
        let message = refused(classify_sdk_error(unsent("no AssumeRole credentials here".into()), &access(true)));
        assert!(message.starts_with("the request could not be sent: "), "{message}");
    }
}
