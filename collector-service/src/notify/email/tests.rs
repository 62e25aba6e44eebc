//! The email channel against a real SMTP server: aiosmtpd (PyPI), started
//! per test on a free port of 127.0.0.1 by tests/fixtures/smtp_server.py,
//! with STARTTLS (a certificate from the test CA) and AUTH, writing what it
//! receives to a directory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use cudly_core::notice::{NoticeItem, NoticePayload, NoticeTotal};
use cudly_testkit::pki::Pki;
use secrecy::SecretString;
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;
use uuid::Uuid;

use super::{EmailSettings, Mailer, Redaction};
use crate::notify::SendError;

const USER: &str = "cudly-mailer";
const PASSWORD: &str = "correct-Horse-battery-5taple";
const WRONG_PASSWORD: &str = "not-the-Password-at-all-42";

/// A python3 that can import aiosmtpd: $CUDLY_TEST_PYTHON (scripts/test sets
/// it), else the venv scripts/test-python makes, else `python3`.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let imports = |py: &Path| {
            std::process::Command::new(py)
                .args(["-c", "import aiosmtpd"])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if let Some(py) = std::env::var_os("CUDLY_TEST_PYTHON") {
            let py = PathBuf::from(py);
            assert!(imports(&py), "CUDLY_TEST_PYTHON={} cannot import aiosmtpd: run scripts/test-python", py.display());
            return py;
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
        let venv = cache.map(|c| c.join("cudly/test-venv/bin/python3"));
        venv.into_iter().chain([PathBuf::from("python3")]).find(|py| imports(py)).unwrap_or_else(|| {
            panic!(
                "the email tests need Python with aiosmtpd (PyPI) to run a local SMTP server: run \
                 `scripts/test-python` (it installs aiosmtpd into ~/.cache/cudly/test-venv; scripts/test runs it), \
                 or set CUDLY_TEST_PYTHON to a python3 that can `import aiosmtpd`"
            )
        })
    })
}

/// A running aiosmtpd, ended (and its directory removed) when dropped.
struct SmtpServer {
    port: u16,
    dir: PathBuf,
    _process: tokio::process::Child,
}

impl SmtpServer {
    /// With a CA: STARTTLS with a certificate for 127.0.0.1 signed by it, and
    /// AUTH only after it. Without: no STARTTLS, AUTH accepted in the clear.
    async fn start(ca: Option<&Pki>) -> SmtpServer {
        let dir = std::env::temp_dir().join(format!("cudly-smtp-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_server.py");
        let mut command = tokio::process::Command::new(python());
        command.arg(script).arg("--dir").arg(&dir).args(["--user", USER, "--password", PASSWORD]);
        if let Some(pki) = ca {
            let (cert, key) = pki.issue("127.0.0.1");
            std::fs::write(dir.join("cert.pem"), cert).unwrap();
            std::fs::write(dir.join("key.pem"), key).unwrap();
            command.arg("--cert").arg(dir.join("cert.pem")).arg("--key").arg(dir.join("key.pem"));
        }
        // The server ends when its stdin closes, so it never outlives the test.
        command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).kill_on_drop(true);
        let mut process = command.spawn().expect("starting the SMTP server");
        let mut lines = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP server did not start within 30 s")
            .unwrap()
            .expect("the SMTP server exited before listening");
        let port = line.strip_prefix("LISTENING ").and_then(|p| p.parse().ok()).expect(&line);
        SmtpServer { port, dir, _process: process }
    }

    fn settings(&self, to: &[&str]) -> EmailSettings {
        EmailSettings {
            smtp_host: "127.0.0.1".into(),
            smtp_port: self.port,
            username: USER.into(),
            password_ref: "env:CUDLY_CLOUD_SECRET_SMTP".parse().unwrap(),
            from: "Cudly <cudly@example.com>".into(),
            to: to.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The summaries of the messages received, in order.
    fn received(&self) -> Vec<Value> {
        (1..)
            .map(|n| self.dir.join(format!("{n}.json")))
            .take_while(|p| p.exists())
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// The `login:password` of every AUTH attempt.
    fn auth_attempts(&self) -> String {
        std::fs::read_to_string(self.dir.join("auth.log")).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A mailer trusting `pki`'s CA besides the public roots.
fn mailer(pki: &Pki, timeout: Duration) -> Mailer {
    let file = std::env::temp_dir().join(format!("cudly-smtp-ca-{}.pem", Uuid::new_v4()));
    std::fs::write(&file, pki.ca.pem()).unwrap();
    let mailer = Mailer::new(Some(&file), timeout).unwrap();
    std::fs::remove_file(&file).unwrap();
    mailer
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn item(account_name: &str, savings: &str, previous: Option<&str>, currency: &str) -> NoticeItem {
    NoticeItem {
        id: Uuid::new_v4(),
        provider: "aws".into(),
        account_id: "123456789012".into(),
        account_name: account_name.into(),
        service: "ec2".into(),
        region: "us-east-1".into(),
        resource_type: "m5.large".into(),
        term_months: 12,
        payment_option: "no_upfront".into(),
        currency: currency.into(),
        monthly_savings: savings.into(),
        previous_monthly_savings: previous.map(Into::into),
        savings_percentage: 31.5,
    }
}

fn run_notice() -> NoticePayload {
    NoticePayload {
        kind: "recommendations.new_savings".into(),
        collection_id: Some(Uuid::new_v4()),
        created_at: chrono::Utc::now(),
        outcome: Some("succeeded".into()),
        totals: vec![
            NoticeTotal { currency: "USD".into(), count: 4, monthly_savings: "1234.56".into() },
            NoticeTotal { currency: "EUR".into(), count: 1, monthly_savings: "0.10".into() },
        ],
        items: vec![
            item("<script>alert('x')</script> & Co", "1000.00", Some("800.00"), "USD"),
            item("Prod", "0.10", None, "EUR"),
        ],
        omitted: 3,
        console_url: Some("https://console.example/?view=new&sort=savings".into()),
    }
}

fn test_notice() -> NoticePayload {
    NoticePayload {
        kind: "test".into(),
        collection_id: None,
        created_at: chrono::Utc::now(),
        outcome: None,
        totals: vec![],
        items: vec![],
        omitted: 0,
        console_url: None,
    }
}

fn part<'a>(message: &'a Value, content_type: &str) -> &'a str {
    let parts = message["parts"].as_array().unwrap();
    let found: Vec<&str> =
        parts.iter().filter(|p| p["content_type"] == content_type).map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(found.len(), 1, "one {content_type} part in {message}");
    found[0]
}

fn assert_no_password(err: &SendError) {
    for text in [err.to_string(), format!("{err:?}")] {
        for password in [PASSWORD, WRONG_PASSWORD] {
            assert!(!text.contains(password), "the password is in {text:?}");
        }
    }
}

#[tokio::test]
async fn a_digest_arrives_over_starttls_with_both_parts_escaped_values_and_the_delivery_id() {
    let pki = Pki::new("cudly test CA");
    let server = SmtpServer::start(Some(&pki)).await;
    let delivery = Uuid::new_v4();
    let settings = server.settings(&["ops@example.com", "Fin Ops <finops@example.org>"]);
    let notice = run_notice();
    mailer(&pki, Duration::from_secs(10)).send(&settings, &secret(PASSWORD), delivery, &notice).await.unwrap();

    let received = server.received();
    assert_eq!(received.len(), 1);
    let m = &received[0];
    assert_eq!(m["tls"], true, "sent after STARTTLS");
    assert_eq!(m["authenticated_as"], USER);
    assert_eq!(m["mail_from"], "cudly@example.com");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ops@example.com", "finops@example.org"]));
    let headers = &m["headers"];
    assert_eq!(headers["subject"], "5 new savings: 1234.56 USD/month, 0.10 EUR/month");
    assert_eq!(headers["from"], "Cudly <cudly@example.com>");
    assert_eq!(headers["to"], "ops@example.com, Fin Ops <finops@example.org>");
    assert_eq!(headers["x-cudly-delivery-id"], delivery.to_string());
    assert_eq!(headers["message-id"], format!("<{delivery}@example.com>"));
    assert_eq!(m["content_type"], "multipart/alternative");

    let text = part(m, "text/plain");
    let html = part(m, "text/html");
    for body in [text, html] {
        assert!(body.contains("1234.56"), "the total, exactly: {body}");
        assert!(body.contains("0.10"), "{body}");
        assert!(body.contains("and 3 more"), "{body}");
        assert!(body.contains("m5.large") && body.contains("us-east-1") && body.contains("no_upfront"), "{body}");
        assert!(body.contains("12 months") && body.contains("123456789012"), "{body}");
        assert!(body.contains(&delivery.to_string()), "{body}");
    }
    assert!(text.contains("1000.00 USD/month (was 800.00)"), "now and before: {text}");
    assert!(text.contains("<script>alert('x')</script> & Co (123456789012)"), "plain text is not escaped: {text}");
    assert!(text.contains("Console: https://console.example/?view=new&sort=savings"), "{text}");

    assert!(!html.contains("<script"), "a value from a cloud became markup: {html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co (123456789012)"), "{html}");
    assert!(html.contains("<td>1000.00 USD</td><td>800.00 USD</td>"), "now and before: {html}");
    assert!(html.contains("<td>0.10 EUR</td><td>new</td>"), "{html}");
    assert!(html.contains(r#"<a href="https://console.example/?view=new&amp;sort=savings">"#), "{html}");

    let raw = std::fs::read_to_string(server.dir.join("1.eml")).unwrap();
    assert!(!raw.contains(PASSWORD));
}

#[tokio::test]
async fn a_test_notice_says_it_is_one() {
    let pki = Pki::new("cudly test CA");
    let server = SmtpServer::start(Some(&pki)).await;
    let delivery = Uuid::new_v4();
    mailer(&pki, Duration::from_secs(10))
        .send(&server.settings(&["ops@example.com"]), &secret(PASSWORD), delivery, &test_notice())
        .await
        .unwrap();
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["headers"]["subject"], "cudly test notice");
    assert_eq!(received[0]["headers"]["x-cudly-delivery-id"], delivery.to_string());
    assert!(part(&received[0], "text/plain").contains("test notice"));
    assert!(part(&received[0], "text/html").contains("test notice"));
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_named_nowhere() {
    let pki = Pki::new("cudly test CA");
    let server = SmtpServer::start(Some(&pki)).await;
    let err = mailer(&pki, Duration::from_secs(10))
        .send(&server.settings(&["ops@example.com"]), &secret(WRONG_PASSWORD), Uuid::new_v4(), &run_notice())
        .await
        .unwrap_err();
    let SendError::Permanent(text) = &err else { panic!("{err:?}") };
    assert!(text.contains("535"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{}", server.port)), "{text}");
    assert_no_password(&err);
    assert_eq!(server.auth_attempts(), format!("{USER}:{WRONG_PASSWORD}\n"), "refused for its credentials");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_server_that_is_down_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let pki = Pki::new("cudly test CA");
    let settings = EmailSettings {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        username: USER.into(),
        password_ref: "env:CUDLY_CLOUD_SECRET_X".parse().unwrap(),
        from: "cudly@example.com".into(),
        to: vec!["ops@example.com".into()],
    };
    let err = mailer(&pki, Duration::from_secs(10))
        .send(&settings, &secret(PASSWORD), Uuid::new_v4(), &run_notice())
        .await
        .unwrap_err();
    let SendError::Retryable(text) = &err else { panic!("{err:?}") };
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert_no_password(&err);
}

#[tokio::test]
async fn a_server_that_never_answers_is_retryable_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let pki = Pki::new("cudly test CA");
    let settings = EmailSettings {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        username: USER.into(),
        password_ref: "env:CUDLY_CLOUD_SECRET_X".parse().unwrap(),
        from: "cudly@example.com".into(),
        to: vec!["ops@example.com".into()],
    };
    let started = Instant::now();
    let err = mailer(&pki, Duration::from_millis(500))
        .send(&settings, &secret(PASSWORD), Uuid::new_v4(), &run_notice())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retryable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "gave up after {:?}", started.elapsed());
    held.abort();
}

#[tokio::test]
async fn a_server_without_starttls_is_permanent_and_never_gets_the_credentials() {
    let pki = Pki::new("cudly test CA");
    let server = SmtpServer::start(None).await;
    let err = mailer(&pki, Duration::from_secs(10))
        .send(&server.settings(&["ops@example.com"]), &secret(PASSWORD), Uuid::new_v4(), &run_notice())
        .await
        .unwrap_err();
    let SendError::Permanent(text) = &err else { panic!("{err:?}") };
    assert!(text.to_lowercase().contains("starttls"), "{text}");
    assert_eq!(server.auth_attempts(), "", "credentials sent in the clear");
    assert!(server.received().is_empty());
    assert_no_password(&err);
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_permanent() {
    let (pki, other) = (Pki::new("cudly test CA"), Pki::new("some other CA"));
    let server = SmtpServer::start(Some(&pki)).await;
    let err = mailer(&other, Duration::from_secs(10))
        .send(&server.settings(&["ops@example.com"]), &secret(PASSWORD), Uuid::new_v4(), &run_notice())
        .await
        .unwrap_err();
    let SendError::Permanent(text) = &err else { panic!("{err:?}") };
    assert!(text.contains("TLS"), "{text}");
    assert_eq!(server.auth_attempts(), "", "credentials sent to an unverified server");
}

#[tokio::test]
async fn a_busy_mailbox_is_retryable_and_an_unknown_one_permanent() {
    let pki = Pki::new("cudly test CA");
    let server = SmtpServer::start(Some(&pki)).await;
    let mailer = mailer(&pki, Duration::from_secs(10));
    let send = |to: &'static str| {
        let settings = server.settings(&[to]);
        let mailer = &mailer;
        async move { mailer.send(&settings, &secret(PASSWORD), Uuid::new_v4(), &run_notice()).await.unwrap_err() }
    };
    let busy = send("busy@example.com").await;
    assert!(matches!(&busy, SendError::Retryable(t) if t.contains("450")), "{busy:?}");
    let nobody = send("nobody@example.com").await;
    assert!(matches!(&nobody, SendError::Permanent(t) if t.contains("550")), "{nobody:?}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_bad_address_is_permanent_and_named() {
    let pki = Pki::new("cudly test CA");
    let mailer = mailer(&pki, Duration::from_secs(10));
    let settings = |from: &str, to: &[&str]| EmailSettings {
        smtp_host: "127.0.0.1".into(),
        smtp_port: 1,
        username: USER.into(),
        password_ref: "env:CUDLY_CLOUD_SECRET_X".parse().unwrap(),
        from: from.into(),
        to: to.iter().map(|s| s.to_string()).collect(),
    };
    for (settings, named) in [
        (settings("cudly@example.com", &["ops@example.com", "not an address"]), "to[1]"),
        (settings("cudly", &["ops@example.com"]), "from"),
        (settings("cudly@example.com", &[]), "to"),
    ] {
        let err = mailer.send(&settings, &secret(PASSWORD), Uuid::new_v4(), &run_notice()).await.unwrap_err();
        assert!(matches!(&err, SendError::Permanent(t) if t.starts_with(named)), "{err:?}");
    }
}

#[test]
fn the_settings_read_the_json_api_service_writes() {
    let settings: EmailSettings = serde_json::from_value(serde_json::json!({
        "smtp_host": "smtp.example.com", "smtp_port": 0, "username": "cudly",
        "password_ref": "env:CUDLY_CLOUD_SECRET_SMTP", "from": "cudly@example.com",
        "to": ["a@example.com", "b@example.com"]
    }))
    .unwrap();
    assert_eq!(settings.password_ref.to_string(), "env:CUDLY_CLOUD_SECRET_SMTP");
    assert_eq!(super::server(&settings), "smtp.example.com:587", "port 0 is submission");
    assert_eq!(settings.to.len(), 2);
}

#[test]
fn a_ca_file_without_a_certificate_is_refused_at_start_up() {
    let file = std::env::temp_dir().join(format!("cudly-smtp-ca-{}.pem", Uuid::new_v4()));
    std::fs::write(&file, "not a certificate\n").unwrap();
    let err = Mailer::new(Some(&file), Duration::from_secs(1)).err().expect("refused");
    std::fs::remove_file(&file).unwrap();
    assert!(err.to_string().contains("holds no certificate"), "{err}");
    assert!(Mailer::new(Some(Path::new("/nonexistent/ca.pem")), Duration::from_secs(1)).is_err());
    assert!(Mailer::new(None, Duration::from_secs(1)).is_ok(), "public roots only");
}

#[test]
fn what_a_server_echoes_of_the_credentials_is_cut_out() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let redaction = Redaction::new(USER, &secret(PASSWORD));
    let echoed = format!("535 no: {} {} {PASSWORD}\r\nbye", b64(&format!("\0{USER}\0{PASSWORD}")), b64(PASSWORD));
    let text = redaction.apply(&echoed);
    assert_eq!(text, "535 no: [redacted] [redacted] [redacted]  bye");
}

/// The deliverer, not only the mailer: an email channel's notice, queued as
/// the run-end transaction queues it, goes out through the worker with the
/// password read from its reference, and is recorded delivered.
#[sqlx::test(migrations = "../migrations")]
async fn the_deliverer_sends_an_email_channels_notice_with_the_password_from_its_reference(pool: sqlx::PgPool) {
    let pki = Pki::new("cudly smtp test CA");
    let server = SmtpServer::start(Some(&pki)).await;
    let files = std::env::temp_dir().join(format!("cudly-smtp-secrets-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(files.join("ca.pem"), pki.ca.pem()).unwrap();
    let settings = serde_json::json!({
        "smtp_host": "127.0.0.1", "smtp_port": server.port, "username": USER,
        "password_ref": format!("file:{}", files.join("smtp-password").display()),
        "from": "cudly@example.com", "to": ["finops@example.com"],
    });
    let channel = cudly_testkit::notify::channel(&pool, "finops-mail", "email", settings).await;
    let ids = cudly_testkit::notify::queue(&pool, &cudly_testkit::notify::payload(3), &[channel]).await;
    let delivery_settings = crate::notify::DeliverySettings {
        concurrency: 2,
        poll_interval: Duration::from_millis(200),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        retry_for: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        secret_files: cudly_core::credentials::SecretFileDirs::new([files.clone()]).unwrap(),
        smtp_ca_file: Some(files.join("ca.pem")),
    };
    let metrics = crate::metrics::CollectorMetrics::register(&mut prometheus_client::registry::Registry::default());
    let deliverer = crate::notify::Deliverer::new(pool.clone(), delivery_settings, metrics).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(deliverer.run(stop.clone()));
    let (status, attempts, error) =
        cudly_testkit::notify::wait_for_status(&pool, ids[0], "delivered", Duration::from_secs(20)).await;
    assert_eq!((status.as_str(), attempts, error), ("delivered", 1, None));
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["headers"]["x-cudly-delivery-id"], ids[0].to_string());
    assert!(server.auth_attempts().contains(USER), "authenticated as the channel's user");
    stop.cancel();
    running.await.unwrap();
    std::fs::remove_dir_all(&files).unwrap();
}
