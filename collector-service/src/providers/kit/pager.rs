//! A paged list, followed page by page to its end. Every page is a request
//! (billed, for Cost Explorer), so a list that does not end is given up:
//! past a bound, or as soon as a page names a cursor already followed.
//! What a cursor is (AWS's and GCP's page token, ARM's `nextLink`) and how
//! a page is asked for are the provider's.

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;

use crate::providers::BackendError;

/// Pages of one list before it is given up: far more than any real list
/// (a few pages), few enough to bound what a looping API costs.
pub(crate) const MAX_PAGES: usize = 500;

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page<T, C> {
    /// What the page holds.
    pub(crate) items: Vec<T>,
    /// Where the next page is; `None` on the last.
    pub(crate) next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page without a successor.
    pub(crate) fn last(items: Vec<T>) -> Self {
        Page { items, next: None }
    }
}

/// Every item of a list whose pages `fetch` asks for: it gets the page's
/// number (from 1, for naming it) and the cursor the previous page named
/// (`None` for the first). At most [`MAX_PAGES`] pages are asked for; a
/// list still going on then, or naming a cursor a second time, fails as
/// incomplete (`what` names it).
pub(crate) async fn all_items<T, C, F, Fut>(what: &str, mut fetch: F) -> Result<Vec<T>, BackendError>
where
    C: Clone + Eq + Hash,
    F: FnMut(usize, Option<C>) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, BackendError>>,
{
    let mut items = Vec::new();
    let mut followed = HashSet::new();
    let mut cursor = None;
    for number in 1..=MAX_PAGES {
        let page = fetch(number, cursor.take()).await?;
        items.extend(page.items);
        match page.next {
            None => return Ok(items),
            Some(next) if !followed.insert(next.clone()) => {
                return Err(BackendError::failed(format!(
                    "{what}: the API repeated a page token; the list is incomplete"
                )));
            }
            Some(next) => cursor = Some(next),
        }
    }
    Err(BackendError::failed(format!("{what}: more than {MAX_PAGES} pages; the list is incomplete")))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::{MAX_PAGES, Page, all_items};
    use crate::providers::{BackendError, ErrorKind};

    #[tokio::test]
    async fn pages_are_followed_in_order_to_the_last() {
        let asked = Mutex::new(Vec::new());
        let items = all_items("List", |number, cursor: Option<String>| {
            asked.lock().unwrap().push((number, cursor.clone()));
            async move {
                Ok(match cursor.as_deref() {
                    None => Page { items: vec![1, 2], next: Some("b".to_string()) },
                    Some("b") => Page { items: vec![3], next: Some("c".to_string()) },
                    _ => Page::last(vec![4]),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(items, [1, 2, 3, 4]);
        let asked = asked.into_inner().unwrap();
        assert_eq!(asked, [(1, None), (2, Some("b".into())), (3, Some("c".into()))]);
    }

    #[tokio::test]
    async fn a_list_that_does_not_end_is_given_up_as_incomplete() {
        let asked = Mutex::new(0);
        let endless = |number: usize, _| {
            *asked.lock().unwrap() += 1;
            async move { Ok(Page { items: vec![number], next: Some(number) }) }
        };
        let err = all_items("GetThing for account 1", endless).await.unwrap_err();
        assert_eq!(err.to_string(), "GetThing for account 1: more than 500 pages; the list is incomplete");
        assert_eq!((err.kind, *asked.lock().unwrap()), (ErrorKind::Failed, MAX_PAGES), "no more than the bound");

        *asked.lock().unwrap() = 0;
        let looping = |number: usize, _| {
            *asked.lock().unwrap() += 1;
            async move { Ok(Page { items: vec![number], next: Some(if number < 3 { number } else { 1 }) }) }
        };
        let err = all_items("List", looping).await.unwrap_err();
        assert!(err.to_string().contains("repeated a page token"), "{err}");
        assert_eq!(*asked.lock().unwrap(), 3, "stopped at the first repeated cursor");
    }

    #[tokio::test]
    async fn a_failed_page_fails_the_list_with_its_kind() {
        let refused = |_, _: Option<u8>| async { Err::<Page<u8, u8>, _>(BackendError::refused("HTTP 403")) };
        let err = all_items("List", refused).await.unwrap_err();
        assert_eq!((err.kind, err.to_string()), (ErrorKind::Refused, "HTTP 403".to_string()));
    }
}
