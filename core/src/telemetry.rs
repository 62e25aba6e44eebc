//! Logging and tracing: structured logs to stderr (text or JSON) and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans exported over OTLP.

use std::io::IsTerminal as _;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flushes exported spans when dropped; keep it alive for the process.
#[must_use = "spans are flushed when the guard is dropped"]
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing traces failed: {err}");
        }
    }
}

/// Installs the global subscriber. The filter comes from `RUST_LOG`
/// (default `info`). OTLP export is on only when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the exporter reads the other
/// standard `OTEL_*` variables itself.
pub fn init(service_name: &'static str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or a collector
    // gets plain text, and NO_COLOR (https://no-color.org) turns them off.
    let ansi = colours_wanted(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed(),
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().json().with_ansi(false).with_writer(std::io::stderr).boxed()
        }
    };
    let provider = if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name).build();
        Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name)));
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init()?;
    Ok(TelemetryGuard(provider))
}

/// Whether log lines get ANSI colours: only on a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string.
fn colours_wanted(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// An error and its causes (`source()`), each said once: a cause whose text
/// is already in what was said (typically its parent's text) is left out.
/// Transport errors repeat their cause in their own text, or wrap it in a
/// layer that displays the same ("transport error" over "tcp connect
/// error" over "tcp connect error" over the I/O error), so printing every
/// level would say things twice and the `{:#}` of an `anyhow::Error` does.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&with_causes(self.0.to_string(), self.0.source()))
    }
}

/// A failed call's status as a line: its message, then each distinct cause
/// of the transport error behind it (tonic keeps the message short, e.g.
/// "tcp connect error", and the cause, e.g. "Connection refused", in
/// `source()`).
pub fn status_line(status: &tonic::Status) -> String {
    use std::error::Error as _;
    with_causes(status.message().to_string(), status.source())
}

/// `said`, followed by each cause in `cause`'s chain that is not in it yet.
fn with_causes(mut said: String, mut cause: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(err) = cause {
        let text = err.to_string();
        if !text.is_empty() && !said.contains(&text) {
            if !said.is_empty() {
                said.push_str(": ");
            }
            said.push_str(&text);
        }
        cause = err.source();
    }
    said
}

/// Puts the current span's trace context into outgoing gRPC metadata as W3C
/// `traceparent`/`tracestate` (nothing when there is no trace).
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataCarrier(metadata));
}

/// The W3C trace context a caller sent in gRPC metadata (empty when none).
pub fn extract_trace_context(metadata: &tonic::metadata::MetadataMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&MetadataReader(metadata))
}

struct MetadataCarrier<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) =
            (tonic::metadata::MetadataKey::from_bytes(key.as_bytes()), tonic::metadata::MetadataValue::try_from(value))
        {
            self.0.insert(key, value);
        }
    }
}

struct MetadataReader<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for MetadataReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn chain(levels: &[&'static str]) -> Layer {
        levels.iter().rev().fold(None, |inner, text| Some(Layer(text, inner.map(Box::new)))).unwrap()
    }

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let nested = chain(&[
            "transport error",
            "tcp connect error: Connection refused (os error 111)",
            "tcp connect error",
            "Connection refused (os error 111)",
        ]);
        assert_eq!(
            ErrorChain(&nested).to_string(),
            "transport error: tcp connect error: Connection refused (os error 111)"
        );
        let repeated = chain(&["tcp connect error", "tcp connect error", "tcp connect error"]);
        assert_eq!(ErrorChain(&repeated).to_string(), "tcp connect error");
        let distinct = chain(&["reading config", "permission denied"]);
        assert_eq!(ErrorChain(&distinct).to_string(), "reading config: permission denied");
        let cause = chain(&["tcp connect error", "tcp connect error", "Connection refused (os error 111)"]);
        let status = tonic::Status::from_error(Box::new(cause));
        assert_eq!(status_line(&status), "tcp connect error: Connection refused (os error 111)");
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours_wanted(true, None));
        assert!(!colours_wanted(false, None), "a file or a pipe gets plain text");
        assert!(!colours_wanted(true, Some("1".into())));
        assert!(colours_wanted(true, Some("".into())), "an empty NO_COLOR is as if unset");
    }
}
