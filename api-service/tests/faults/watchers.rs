//! Many WatchFreshness streams that behave like real clients: on
//! UNAVAILABLE they reconnect (to the next address) with the last version
//! they saw.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::recommendations_service_client::RecommendationsServiceClient;
use tokio::sync::watch;
use tonic::transport::Channel;

/// What one watcher saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    pub(crate) last: Option<pb::Freshness>,
    pub(crate) unavailable: u32,
    pub(crate) versions: Vec<i64>,
}

/// Starts `n` watchers spread over `connections` HTTP/2 connections to the
/// first of `addrs`; after UNAVAILABLE a watcher reconnects to the next
/// address with `since_version`. Each publishes what it saw.
pub(crate) async fn start(addrs: Vec<SocketAddr>, n: usize, connections: usize) -> Vec<watch::Receiver<Seen>> {
    let addrs = Arc::new(addrs);
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(Channel::from_shared(format!("http://{}", addrs[0])).unwrap().connect().await.unwrap());
    }
    let mut out = Vec::new();
    for i in 0..n {
        let (tx, rx) = watch::channel(Seen::default());
        let first = channels[i % connections].clone();
        tokio::spawn(watch_one(addrs.clone(), first, tx));
        out.push(rx);
    }
    out
}

async fn watch_one(addrs: Arc<Vec<SocketAddr>>, first: Channel, tx: watch::Sender<Seen>) {
    let mut channel = first;
    let mut target = 0;
    let mut since = 0;
    for _attempt in 0..20 {
        let mut client = RecommendationsServiceClient::new(channel.clone());
        if let Ok(stream) = client.watch_freshness(pb::WatchFreshnessRequest { since_version: since }).await {
            let mut stream = stream.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(f)) => {
                        since = f.version;
                        tx.send_modify(|s| {
                            s.versions.push(f.version);
                            s.last = Some(f);
                        });
                    }
                    Ok(None) => break,
                    Err(status) => {
                        if status.code() == tonic::Code::Unavailable {
                            tx.send_modify(|s| s.unavailable += 1);
                            target = (target + 1) % addrs.len();
                        }
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let addr = addrs[target];
        match Channel::from_shared(format!("http://{addr}")).unwrap().connect().await {
            Ok(c) => channel = c,
            Err(_) => continue,
        }
    }
}

/// Waits (bounded) until every watcher's latest snapshot satisfies `done`.
/// Returns how many did not.
pub(crate) async fn wait_all(
    watchers: &[watch::Receiver<Seen>],
    within: Duration,
    done: impl Fn(&pb::Freshness) -> bool,
) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let pending = watchers.iter().filter(|w| !w.borrow().last.as_ref().is_some_and(&done)).count();
        if pending == 0 || tokio::time::Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
