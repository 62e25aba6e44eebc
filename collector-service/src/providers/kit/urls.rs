//! URLs of the REST backends: base URLs checked at start-up, and request
//! URLs built from them so that an id can never change a URL's shape.

use anyhow::Context;
use reqwest::Url;

/// A configured base URL (`cloud` and `name` say which, in errors): http
/// or https, a host, no query (each request sets its own), a trailing `/`
/// ignored.
pub(crate) fn base_url(cloud: &str, name: &str, raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw.trim_end_matches('/')).with_context(|| format!("{cloud} {name} {raw:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || url.query().is_some() {
        anyhow::bail!("{cloud} {name} {raw:?} is not an http(s) base URL: expected http(s)://host[:port][/path]");
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded (a subscription,
/// project id or region can never change the path's shape), and the query
/// `pairs`: names as written, values percent-encoded; no query without
/// pairs.
pub(crate) fn endpoint(base: &Url, segments: &[&str], pairs: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    if !pairs.is_empty() {
        let query: Vec<String> =
            pairs.iter().map(|(name, value)| format!("{name}={}", encode_query_value(value))).collect();
        url.set_query(Some(&query.join("&")));
    }
    url
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved
/// bytes, spaces as `%20` (which ARM and every Google front end read as a
/// space).
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use reqwest::Url;

    use super::{base_url, encode_query_value, endpoint};

    #[test]
    fn segments_and_query_values_are_escaped_and_names_kept() {
        assert_eq!(encode_query_value("stateInfo.state = ACTIVE"), "stateInfo.state%20%3D%20ACTIVE");
        assert_eq!(encode_query_value("Category eq 'Cost'"), "Category%20eq%20%27Cost%27");
        assert_eq!(encode_query_value("a-b_c.d~é"), "a-b_c.d~%C3%A9");
        let base = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            endpoint(&base, &["v1", "projects", "a/b?c"], &[]).as_str(),
            "http://127.0.0.1:8080/v1/projects/a%2Fb%3Fc"
        );
        let url = endpoint(&base, &["x"], &[("api-version", "2023-01-01"), ("$filter", "a eq 'b'")]);
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/x?api-version=2023-01-01&$filter=a%20eq%20%27b%27");
        let under_a_path = Url::parse("https://proxy.example/azure/").unwrap();
        assert_eq!(
            endpoint(&under_a_path, &["subscriptions"], &[]).as_str(),
            "https://proxy.example/azure/subscriptions"
        );
    }

    #[test]
    fn a_base_url_must_be_http_with_a_host_and_no_query() {
        assert_eq!(
            base_url("GCP", "compute_url", "https://compute.googleapis.com/").unwrap().as_str(),
            "https://compute.googleapis.com/"
        );
        assert!(base_url("Azure", "login URL", "http://127.0.0.1:9").is_ok());
        let err = |raw: &str| format!("{:#}", base_url("Azure", "management URL", raw).unwrap_err());
        assert!(err("management.azure.com").contains("Azure management URL \"management.azure.com\""));
        assert!(err("ftp://management.azure.com").contains("http(s)"));
        assert!(err("https://management.azure.com/?x=1").contains("http(s)"), "a query would be lost");
        assert!(err("unix:/run/socket").contains("http(s)"));
    }
}
