//! The cudlyctl binary as a script runs it: its JSON output, its exit
//! statuses, paging, the accounts commands, `token` and completions.

use std::path::Path;
use std::process::Output;

use cudly_api::auth::KeySource;
use cudly_testkit::jwt::{self, KeyDir, SECRET};
use cudly_testkit::spawn::{Options, TestApp, spawn_app, unused_addr};
use serde_json::Value;
use sqlx::PgPool;

/// Runs cudlyctl against `api` with `args`, in an environment of its own
/// (no CUDLY_* variable of the test run leaks in).
async fn ctl(api: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cudlyctl"))
        .env_clear()
        .arg("--api")
        .arg(api)
        .args(args)
        .output()
        .await
        .expect("cudlyctl runs")
}

fn url(app: &TestApp) -> String {
    format!("http://{}", app.addr)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The exit status, with the output in the message when it is not `want`.
#[track_caller]
fn assert_exit(output: &Output, want: i32) {
    assert_eq!(output.status.code(), Some(want), "stdout:\n{}\nstderr:\n{}", stdout(output), stderr(output));
}

/// Each line of stdout as JSON.
#[track_caller]
fn json_lines(output: &Output) -> Vec<Value> {
    assert_exit(output, 0);
    stdout(output).lines().map(|line| serde_json::from_str(line).expect("each line is a JSON object")).collect()
}

fn is_rfc3339_utc(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

#[sqlx::test(migrations = "../migrations")]
async fn cudlyctl_json_output_is_canonical_proto3_json_one_object_per_line(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let api = url(&app);

    // A refresh followed to its end: the response, then one Freshness per
    // change, each on its own line.
    let lines = json_lines(&ctl(&api, &["-o", "json", "refresh", "--watch"]).await);
    assert!(lines.len() >= 2, "{lines:?}");
    let run = &lines[0]["collection"];
    assert!(run["id"].is_string(), "{run}");
    assert!(run["generation"].is_string(), "int64 is a string: {run}");
    assert_eq!(run["trigger"], "TRIGGER_USER", "enums by name");
    assert!(is_rfc3339_utc(&run["startedAt"]), "{run}");
    assert_eq!(lines[0]["deduplicated"], false, "default values are printed");
    let last = lines.last().unwrap();
    assert_eq!(last["collection"]["outcome"], "OUTCOME_SUCCEEDED", "{last}");
    assert!(is_rfc3339_utc(&last["lastCollectedAt"]), "{last}");
    assert!(last["collection"]["providers"][0]["accountsTotal"].is_number(), "int32 is a number: {last}");

    let freshness = json_lines(&ctl(&api, &["-o", "json", "freshness"]).await);
    assert_eq!(freshness.len(), 1);
    assert_eq!(freshness[0]["collecting"], false);
    assert!(freshness[0]["version"].is_string());

    let pages = json_lines(&ctl(&api, &["--output", "json", "list", "--limit", "3"]).await);
    assert_eq!(pages.len(), 1);
    let page = &pages[0];
    let rows = page["recommendations"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0]["provider"].as_str().unwrap().starts_with("PROVIDER_"), "{}", rows[0]);
    assert_eq!(rows[0]["estimatedMonthlySavings"]["currencyCode"], "USD");
    assert!(rows[0]["estimatedMonthlySavings"]["units"].is_string(), "{}", rows[0]);
    assert!(rows[0]["termMonths"].is_number());
    assert!(!page["nextPageToken"].as_str().unwrap().is_empty());
    assert!(page["summary"]["count"].is_string());

    let history = json_lines(&ctl(&api, &["-o", "json", "collections"]).await);
    assert_eq!(history[0]["collections"][0]["outcome"], "OUTCOME_SUCCEEDED");

    let health = json_lines(&ctl(&api, &["-o", "json", "health"]).await);
    assert_eq!(health, [serde_json::json!({"status": "SERVING"})]);

    // The stream: its first message at once, as a line of its own.
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_cudlyctl"))
        .env_clear()
        .args(["--api", &api, "-o", "json", "watch"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut reader = tokio::io::BufReader::new(watch.stdout.take().unwrap());
    let mut first = String::new();
    let read = tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut first);
    tokio::time::timeout(std::time::Duration::from_secs(10), read).await.unwrap().unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["collection"]["outcome"], "OUTCOME_SUCCEEDED");
    watch.kill().await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn cudlyctl_exit_statuses_tell_failures_apart(pool: PgPool) {
    let keys = KeyDir::new();
    let secret = keys.write("secret", format!("{SECRET}\n"));
    let opts = Options {
        auth: jwt::settings(KeySource::Hs256SecretFile(secret.clone())),
        with_collector: false,
        ..Options::default()
    };
    let app = spawn_app(pool, opts).await;
    let api = url(&app);
    let mint = async |permission: &str| {
        keys.write(permission.replace(':', "-").as_str(), minted(&secret, permission).await + "\n")
    };
    let viewer = mint("recommendations:view").await;
    let admin = mint("accounts:admin").await;
    let with = |file: &Path| ["--token-file".to_string(), file.display().to_string()];

    // 2: usage, clap's own.
    assert_exit(&ctl(&api, &["list", "--provider", "mars"]).await, 2);
    assert_exit(&ctl(&api, &["no-such-command"]).await, 2);
    assert_exit(&ctl(&api, &["--token", "t", "--token-file", "/t", "freshness"]).await, 2);

    // 3: unreachable.
    let output = ctl(&format!("http://{}", unused_addr()), &["freshness"]).await;
    assert_exit(&output, 3);
    assert!(stderr(&output).contains("cannot reach api-service"), "{}", stderr(&output));

    // 4: refused, without a token and without the permission.
    let output = ctl(&api, &["freshness"]).await;
    assert_exit(&output, 4);
    assert!(stderr(&output).starts_with("cudlyctl: UNAUTHENTICATED: "), "{}", stderr(&output));
    let v = with(&viewer);
    let output = ctl(&api, &[&v[0], &v[1], "accounts", "list"]).await;
    assert_exit(&output, 4);
    assert!(stderr(&output).contains("PERMISSION_DENIED"), "{}", stderr(&output));
    assert_exit(&ctl(&api, &[&v[0], &v[1], "freshness"]).await, 0);

    // 5: a bad argument. A negative number is a value, not a flag: it
    // reaches the server, which refuses it.
    let output = ctl(&api, &[&v[0], &v[1], "list", "--min-savings", "-5"]).await;
    assert_exit(&output, 5);
    assert!(stderr(&output).contains("INVALID_ARGUMENT: min_monthly_savings"), "{}", stderr(&output));
    let output = ctl(&api, &[&v[0], &v[1], "list", "--min-percentage", "-1"]).await;
    assert_exit(&output, 5);
    assert!(stderr(&output).contains("min_savings_percentage"), "{}", stderr(&output));
    assert_exit(&ctl(&api, &[&v[0], &v[1], "list", "--page-token", "not-a-token"]).await, 5);

    // 6: not found.
    let a = with(&admin);
    let output =
        ctl(&api, &[&a[0], &a[1], "accounts", "get", "--provider", "aws", "--external-id", "999999999999"]).await;
    assert_exit(&output, 6);
    assert!(stderr(&output).contains("NOT_FOUND"), "{}", stderr(&output));

    // 1: anything else, such as a token file that is empty: it is named.
    let empty = keys.write("empty", "\n");
    let e = with(&empty);
    let output = ctl(&api, &[&e[0], &e[1], "freshness"]).await;
    assert_exit(&output, 1);
    assert!(stderr(&output).contains(&empty.display().to_string()), "{}", stderr(&output));

    // The file is read at every invocation: a rotated token is used.
    std::fs::copy(&admin, &viewer).unwrap();
    assert_exit(&ctl(&api, &[&v[0], &v[1], "accounts", "list"]).await, 0);

    // The statuses are documented.
    let help = stdout(&ctl(&api, &["--help"]).await);
    for line in ["2  usage", "3  api-service unreachable", "4  caller refused", "5  bad argument", "6  not found"] {
        assert!(help.contains(line), "{line:?} in\n{help}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn cudlyctl_accounts_are_created_read_listed_updated_and_deleted(pool: PgPool) {
    let app = spawn_app(pool, Options { with_collector: false, seed: "", ..Options::default() }).await;
    let api = url(&app);
    let key = ["--provider", "aws", "--external-id", "210987654321"];
    let role = "arn:aws:iam::210987654321:role/cudly-read-cost-explorer";

    let create =
        [&["accounts", "create"][..], &key, &["--display-name", "Payments prod", "--aws-role-arn", role]].concat();
    let output = ctl(&api, &create).await;
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("Payments prod"), "{}", stdout(&output));
    assert!(stdout(&output).contains(role), "{}", stdout(&output));
    assert_exit(&ctl(&api, &create).await, 7);

    let got = json_lines(&ctl(&api, &[&["-o", "json", "accounts", "get"][..], &key].concat()).await);
    let account = &got[0];
    assert_eq!(account["provider"], "PROVIDER_AWS");
    assert_eq!(account["externalId"], "210987654321");
    assert_eq!(account["displayName"], "Payments prod");
    assert_eq!(account["enabled"], true);
    assert_eq!(account["aws"]["roleArn"], role);
    assert!(is_rfc3339_utc(&account["createdAt"]), "{account}");

    let update =
        [&["-o", "json", "accounts", "update"][..], &key, &["--enabled", "false", "--clear-credentials"]].concat();
    let updated = json_lines(&ctl(&api, &update).await);
    assert_eq!(updated[0]["enabled"], false);
    assert_eq!(updated[0]["displayName"], "Payments prod", "what is not given stays");
    assert!(updated[0].get("aws").is_none(), "{}", updated[0]);

    let azure = [
        "accounts",
        "create",
        "--provider",
        "azure",
        "--external-id",
        "9b1f6471-1bf0-4dda-aec3-cb9272f09590",
        "--azure-tenant-id",
        "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
        "--azure-client-id",
        "5f1c1c3e-98a4-4f3e-9e1e-3a1b2c3d4e5f",
        "--azure-client-secret-ref",
    ];
    // A secret value where a reference belongs is refused before it leaves
    // the machine, and not echoed.
    let output = ctl(&api, &[&azure[..], &["p4ssw0rd!"]].concat()).await;
    assert_exit(&output, 2);
    assert!(!stderr(&output).contains("p4ssw0rd"), "{}", stderr(&output));
    assert!(stderr(&output).contains("--azure-client-secret-ref"), "{}", stderr(&output));
    assert_exit(&ctl(&api, &[&azure[..], &["file:/var/run/secrets/azure"]].concat()).await, 0);
    // One provider's credentials at a time.
    assert_exit(&ctl(&api, &[&create[..], &["--gcp-billing-account-id", "01A2B3-C4D5E6-F7A8B9"]].concat()).await, 2);

    let listed = json_lines(&ctl(&api, &["-o", "json", "accounts", "list"]).await);
    let ids: Vec<&str> =
        listed[0]["accounts"].as_array().unwrap().iter().map(|a| a["externalId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["210987654321", "9b1f6471-1bf0-4dda-aec3-cb9272f09590"]);
    let table = stdout(&ctl(&api, &["accounts", "list", "--provider", "azure"]).await);
    assert!(table.contains("secret file:/var/run/secrets/azure"), "{table}");
    assert!(!table.contains("210987654321"), "{table}");

    let output = ctl(&api, &[&["accounts", "delete"][..], &key].concat()).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output).trim(), "deleted aws account 210987654321 and 0 recommendations");
    let output = ctl(&api, &[&["-o", "json", "accounts", "delete"][..], &key].concat()).await;
    assert_exit(&output, 6);
}

#[sqlx::test(migrations = "../migrations")]
async fn cudlyctl_manages_notification_channels_and_follows_a_test_notice(pool: PgPool) {
    let keys = KeyDir::new();
    let secret = keys.write("secret", format!("{SECRET}\n"));
    let opts = Options {
        auth: jwt::settings(KeySource::Hs256SecretFile(secret.clone())),
        with_collector: false,
        seed: "",
        ..Options::default()
    };
    let app = spawn_app(pool, opts).await;
    let api = url(&app);
    let mint = async |permission: &str| minted(&secret, permission).await;
    let admin = mint("notifications:admin").await;
    let accounts_admin = mint("accounts:admin").await;
    let admin_ctl = async |args: &[&str]| ctl(&api, &[&["--token", &admin][..], args].concat()).await;

    let webhook = [
        "notifications",
        "channels",
        "create",
        "finops-hook",
        "--webhook-url",
        "https://hooks.example.com/cudly",
        "--signing-secret-ref",
    ];
    // A secret value where a reference belongs is refused before it leaves
    // the machine, and not echoed.
    let output = admin_ctl(&[&webhook[..], &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]].concat()).await;
    assert_exit(&output, 2);
    assert!(!stderr(&output).contains("whsec_"), "{}", stderr(&output));
    assert!(stderr(&output).contains("--signing-secret-ref"), "{}", stderr(&output));
    let output = admin_ctl(&[&webhook[..], &["env:CUDLY_CLOUD_SECRET_WEBHOOK"]].concat()).await;
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("https://hooks.example.com/cudly"), "{}", stdout(&output));
    assert_exit(&admin_ctl(&[&webhook[..], &["env:CUDLY_CLOUD_SECRET_WEBHOOK"]].concat()).await, 7);
    // An email channel "mail" sending to `to`, with `options` first.
    let mail = |options: &[&'static str], to: &'static str| {
        let fixed = [
            "--smtp-host",
            "smtp.example.com",
            "--smtp-username",
            "cudly",
            "--smtp-password-ref",
            "file:/var/run/secrets/cudly/smtp",
            "--from",
            "cudly@example.com",
            "--to",
            to,
        ];
        [options, &["notifications", "channels", "create", "mail"][..], &fixed[..]].concat()
    };
    // The server names a bad field: exit status 5.
    let output = admin_ctl(&mail(&[], "finops@example.com,not an address")).await;
    assert_exit(&output, 5);
    assert!(stderr(&output).contains("INVALID_ARGUMENT: channel.email.to[1]"), "{}", stderr(&output));
    // One kind at a time.
    let both = [&webhook[..], &["env:CUDLY_CLOUD_SECRET_WEBHOOK", "--smtp-host", "smtp.example.com"]].concat();
    assert_exit(&admin_ctl(&both).await, 2);
    let email = json_lines(
        &admin_ctl(
            &[mail(&["-o", "json"], "finops@example.com,platform@example.com"), vec!["--enabled", "false"]].concat(),
        )
        .await,
    );
    assert_eq!(email[0]["email"]["to"], serde_json::json!(["finops@example.com", "platform@example.com"]));
    assert_eq!(email[0]["email"]["smtpPort"], 587);
    assert_eq!(email[0]["enabled"], false);

    let listed = json_lines(&admin_ctl(&["-o", "json", "notifications", "channels", "list"]).await);
    let names: Vec<&str> =
        listed[0]["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["finops-hook", "mail"]);
    let table = stdout(&admin_ctl(&["notifications", "channels", "list"]).await);
    assert!(table.contains("signed with env:CUDLY_CLOUD_SECRET_WEBHOOK"), "{table}");
    let updated = json_lines(
        &admin_ctl(&[
            "-o",
            "json",
            "notifications",
            "channels",
            "update",
            "mail",
            "--slack-webhook-url-ref",
            "file:/s/u",
        ])
        .await,
    );
    assert_eq!(updated[0]["slack"]["webhookUrlRef"], "file:/s/u");
    assert!(updated[0].get("email").is_none(), "the kind was replaced: {}", updated[0]);
    assert_eq!(updated[0]["enabled"], false, "what is not given stays");

    // A test notice, then its delivery in the list.
    let test = json_lines(&admin_ctl(&["-o", "json", "notifications", "test", "mail"]).await);
    assert_eq!(test[0]["status"], "DELIVERY_STATUS_PENDING");
    assert_eq!(test[0]["test"], true);
    let id = test[0]["id"].as_str().unwrap();
    admin_ctl(&["notifications", "test", "finops-hook"]).await;
    let pages = json_lines(&admin_ctl(&["-o", "json", "notifications", "deliveries", "--channel", "mail"]).await);
    let deliveries = pages[0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["id"], id);
    let output = admin_ctl(&["notifications", "deliveries", "--limit", "1"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output).lines().count(), 2, "a header and one row:\n{}", stdout(&output));
    assert!(stdout(&output).contains("pending"), "{}", stdout(&output));
    let note = stderr(&output);
    let token = note.split_whitespace().skip_while(|w| *w != "--page-token").nth(1).expect("a token on stderr");
    let output = admin_ctl(&["notifications", "deliveries", "--all", "--page-token", token]).await;
    assert_exit(&output, 0);
    assert!(stdout(&output).contains(id), "the older delivery:\n{}", stdout(&output));
    assert_exit(&admin_ctl(&["notifications", "test", "nobody"]).await, 6);

    let output = admin_ctl(&["notifications", "channels", "delete", "mail"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output).trim(), "deleted notification channel mail and 1 deliveries");

    // Another permission does not reach them.
    let output = ctl(&api, &["--token", &accounts_admin, "notifications", "channels", "list"]).await;
    assert_exit(&output, 4);
    assert!(stderr(&output).contains("missing permission notifications:admin"), "{}", stderr(&output));
}

#[sqlx::test(migrations = "../migrations")]
async fn cudlyctl_pages_through_more_rows_than_one_page(pool: PgPool) {
    let app = spawn_app(pool, Options { with_collector: false, seed: "aws=1100,azure=1", ..Options::default() }).await;
    let api = url(&app);
    let count = |pages: &[Value]| pages.iter().map(|p| p["accounts"].as_array().unwrap().len()).sum::<usize>();

    // --all: every page, one JSON object per page.
    let pages = json_lines(&ctl(&api, &["-o", "json", "accounts", "list", "--all"]).await);
    assert_eq!(pages.len(), 2, "1101 accounts take two pages of at most 1000");
    assert_eq!(count(&pages), 1101);
    assert_eq!(pages[1]["nextPageToken"], "");

    // --limit beyond one page is not cut to the page size.
    let pages = json_lines(&ctl(&api, &["-o", "json", "accounts", "list", "--limit", "1050"]).await);
    assert_eq!(count(&pages), 1050);
    let token = pages[1]["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let rest = json_lines(&ctl(&api, &["-o", "json", "accounts", "list", "--all", "--page-token", token]).await);
    assert_eq!(count(&rest), 51);

    // A table tells on stderr how to go on; stdout stays rows.
    let output = ctl(&api, &["accounts", "list", "--limit", "2"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output).lines().count(), 3, "a header and two rows:\n{}", stdout(&output));
    let note = stderr(&output);
    let token = note.split_whitespace().skip_while(|w| *w != "--page-token").nth(1).expect("a token on stderr");
    let output = ctl(&api, &["accounts", "list", "--limit", "1", "--page-token", token]).await;
    assert!(stdout(&output).contains("100000000003"), "the third account:\n{}", stdout(&output));

    assert_exit(&ctl(&api, &["accounts", "list", "--all", "--limit", "5"]).await, 2);
}

#[tokio::test]
async fn cudlyctl_token_refuses_a_secret_the_service_would_refuse() {
    let keys = KeyDir::new();
    let short = keys.write("short", format!("{}\n", "s".repeat(cudly_api::auth::MIN_HS256_SECRET_BYTES - 1)));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_cudlyctl"))
        .env_clear()
        .args(["token", "--issuer", "i", "--audience", "a", "--secret-file"])
        .arg(&short)
        .output()
        .await
        .unwrap();
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("at least"), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn cudlyctl_completions_print_a_shell_script() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef cudlyctl"), ("fish", "complete -c cudlyctl")] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_cudlyctl"))
            .env_clear()
            .args(["completions", shell])
            .output()
            .await
            .unwrap();
        assert_exit(&output, 0);
        assert!(stdout(&output).contains(marker), "{shell}:\n{}", stdout(&output));
        assert!(stdout(&output).contains("accounts"), "{shell} completes the subcommands");
    }
}

/// A token `cudlyctl token` signs with `secret` for `permission`.
async fn minted(secret: &Path, permission: &str) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_cudlyctl"))
        .env_clear()
        .args(["token", "--issuer", jwt::ISSUER, "--audience", jwt::AUDIENCE, "--permission", permission])
        .arg("--secret-file")
        .arg(secret)
        .output()
        .await
        .unwrap();
    assert_exit(&output, 0);
    stdout(&output).trim().to_string()
}
