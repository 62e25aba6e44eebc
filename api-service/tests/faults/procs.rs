//! The real binaries as child processes, on loopback ports, with their logs
//! kept for failure messages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::recommendations_service_client::RecommendationsServiceClient;
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub(crate) type Client = RecommendationsServiceClient<Channel>;

fn binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_api-service")).with_file_name(name);
    assert!(path.exists(), "{} is missing: run `cargo build --bins` first (scripts/test does)", path.display());
    path
}

/// A free loopback address (bound, then released for the child to take).
pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A running service process.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(binary_name: &str, name: &str, addr: SocketAddr, env: &[(&str, String)]) -> Proc {
        let log = std::env::temp_dir().join(format!("cudly-fault-{name}-{}.log", addr.port()));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary(binary_name));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Proc { name: name.to_string(), addr, child, log }
    }

    /// collector-service on `addr` with a simulated fleet.
    pub(crate) fn collector(name: &str, db: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Proc {
        let mut all = vec![
            ("DATABASE_URL", db.to_string()),
            ("CUDLY_COLLECTOR_LISTEN", addr.to_string()),
            ("CUDLY_SEED_ACCOUNTS", "aws=2,azure=1,gcp=1".to_string()),
            ("CUDLY_PROGRESS_INTERVAL", "100ms".to_string()),
            ("CUDLY_COLLECTOR_INSECURE_NO_AUTH", "true".to_string()),
            ("CUDLY_METRICS_LISTEN", "off".to_string()),
        ];
        all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        Proc::spawn("collector-service", name, addr, &all)
    }

    /// api-service on `addr` delivering to `collector`.
    pub(crate) fn api(name: &str, db: &str, addr: SocketAddr, collector: SocketAddr, env: &[(&str, &str)]) -> Proc {
        let mut all = vec![
            ("DATABASE_URL", db.to_string()),
            ("CUDLY_API_LISTEN", addr.to_string()),
            ("CUDLY_COLLECTOR_URL", format!("http://{collector}")),
            ("CUDLY_AUTH_DISABLED", "true".to_string()),
            ("CUDLY_METRICS_LISTEN", "off".to_string()),
        ];
        all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        Proc::spawn("api-service", name, addr, &all)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// Sends a signal by name (KILL, STOP, CONT, TERM).
    pub(crate) fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status();
        assert!(status.unwrap().success(), "kill -{name} {} failed", self.name);
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub(crate) async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let status = tokio::time::timeout(within, self.child.wait()).await;
        match status {
            Ok(status) => status.unwrap().code(),
            Err(_) => panic!("{} did not exit within {within:?}\n{}", self.name, self.log_tail()),
        }
    }

    /// The last lines of its log.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("--- {} log ---\n{}", self.name, lines[lines.len().saturating_sub(30)..].join("\n"))
    }

    /// Its whole log.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The overall health status of `addr`, or `None` when it does not answer.
pub(crate) async fn health(addr: SocketAddr) -> Option<ServingStatus> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(1))
        .connect()
        .await
        .ok()?;
    let reply = HealthClient::new(channel).check(HealthCheckRequest::default()).await.ok()?;
    Some(reply.into_inner().status())
}

/// Waits (bounded) until `proc` reports SERVING.
pub(crate) async fn wait_serving(proc: &Proc, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if health(proc.addr).await == Some(ServingStatus::Serving) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not become SERVING within {within:?}\n{}", proc.name, proc.log_tail());
}

/// A client of the api-service at `addr`.
pub(crate) async fn client(addr: SocketAddr) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    RecommendationsServiceClient::new(channel)
}

/// Calls RefreshRecommendations.
pub(crate) async fn refresh(client: &Client) -> Result<pb::RefreshRecommendationsResponse, tonic::Status> {
    client.clone().refresh_recommendations(pb::RefreshRecommendationsRequest::default()).await.map(|r| r.into_inner())
}
