//! The tower layer that puts every gRPC call through [`Authenticator`]
//! before it reaches a service.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tonic::Status;

use super::{Access, Authenticator, Principal, Refusal, access};

/// A tower layer that authenticates and authorizes every gRPC call before
/// it reaches a service. Sits inside the gRPC-web layer, so browsers get
/// the same answers.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Option<Arc<Authenticator>>,
}

impl AuthLayer {
    /// `None` lets every call through (auth disabled).
    pub fn new(authenticator: Option<Arc<Authenticator>>) -> Self {
        AuthLayer { authenticator }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, layer: self.clone() }
    }
}

/// See [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was polled ready serves this call; a clone takes
        // its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        // Owned, so that the body (not necessarily `Sync`) is not borrowed
        // across the check.
        let path = request.uri().path().to_string();
        let authorization =
            request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        Box::pin(async move {
            match layer.check(&path, authorization.as_deref()).await {
                Ok(principal) => {
                    if let Some(principal) = principal {
                        request.extensions_mut().insert(principal);
                    }
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

impl AuthLayer {
    async fn check(&self, path: &str, authorization: Option<&str>) -> Result<Option<Principal>, Status> {
        let Some(authenticator) = &self.authenticator else {
            return Ok(None);
        };
        let needs = match access(path) {
            Access::Open => return Ok(None),
            Access::Needs(p) => Some(p),
            Access::Authenticated => None,
        };
        let (principal, permissions) = authenticator.verify(authorization).await?;
        if let Some(needed) = needs
            && !permissions.contains(&needed)
        {
            tracing::info!(subject = %principal.subject, path, permission = needed.as_str(), "permission denied");
            return Err(Refusal::Denied(needed).into());
        }
        Ok(Some(principal))
    }
}
