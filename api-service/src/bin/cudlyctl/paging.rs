//! Paged listings: `--limit` rows fetched in as many pages as that takes
//! (the server's page is at most [`MAX_PAGE_SIZE`] rows), `--all` to the last
//! page, `--page-token` to go on where an earlier call stopped.

use clap::Args;
use cudly_api::recommendations::MAX_PAGE_SIZE;
use cudly_proto::recommendations::v1 as pb;

use crate::output::{self, Format};

/// Where to start and whether to go on to the end.
#[derive(Debug, Args)]
pub(crate) struct Pages {
    /// Every row: follow next_page_token to the last page (instead of
    /// --limit).
    #[arg(long, conflicts_with = "limit")]
    all: bool,
    /// Go on from an earlier call's next page token (the same filters).
    #[arg(long, value_name = "TOKEN")]
    page_token: Option<String>,
}

/// A page of a listing.
pub(crate) trait Page {
    /// Rows on it.
    fn rows(&self) -> usize;
    /// Where the next page starts; empty on the last page.
    fn next_page_token(&self) -> &str;
}

impl Page for pb::ListRecommendationsResponse {
    fn rows(&self) -> usize {
        self.recommendations.len()
    }
    fn next_page_token(&self) -> &str {
        &self.next_page_token
    }
}

impl Page for pb::ListCollectionsResponse {
    fn rows(&self) -> usize {
        self.collections.len()
    }
    fn next_page_token(&self) -> &str {
        &self.next_page_token
    }
}

impl Page for pb::ListAccountsResponse {
    fn rows(&self) -> usize {
        self.accounts.len()
    }
    fn next_page_token(&self) -> &str {
        &self.next_page_token
    }
}

impl Pages {
    /// Calls `call(page_size, page_token)` page after page until `limit`
    /// rows (every row with `--all`) have come, handing each page to
    /// `each`. Returns the next page token when rows remain, for
    /// [`tell_more`].
    pub(crate) async fn fetch<P: Page>(
        &self,
        limit: u32,
        mut call: impl AsyncFnMut(i32, String) -> Result<P, tonic::Status>,
        mut each: impl FnMut(P) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<String>> {
        let mut remaining = (!self.all).then_some(i64::from(limit));
        let mut token = self.page_token.clone().unwrap_or_default();
        loop {
            let page_size = remaining.map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE));
            let page = call(i32::try_from(page_size).unwrap_or(i32::MAX), token).await?;
            let rows = page.rows();
            token = page.next_page_token().to_string();
            each(page)?;
            if let Some(n) = &mut remaining {
                *n -= i64::try_from(rows).unwrap_or(i64::MAX);
            }
            // A page without rows cannot move on; a server that sends one
            // with a token must not keep the loop going.
            if token.is_empty() || remaining.is_some_and(|n| n <= 0) || rows == 0 {
                break;
            }
        }
        Ok(Some(token).filter(|t| !t.is_empty()))
    }
}

/// After a table, tells on stderr how to go on when rows remain (a JSON
/// page carries its own `nextPageToken`).
pub(crate) fn tell_more(next_page_token: Option<String>, out: Format) {
    if let (Some(token), Format::Table) = (next_page_token, out) {
        output::note(&format!("more rows: --page-token {token} (or --all)"));
    }
}
