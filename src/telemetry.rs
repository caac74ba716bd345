//! Logging: `tracing` to stdout, human-readable or JSON (`LOG_FORMAT`), filtered by `LOG_LEVEL`
//! (or `RUST_LOG`). Request spans carry the request id, so JSON lines carry it too.
//! Log ids and statuses only: never names, phones, birth dates or credentials.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use crate::settings::LogFormat;

/// Replaces the default panic hook, which prints the panic message to stderr as plain text
/// (whatever `LOG_FORMAT` says) — and a message such as "byte index 10 is out of range of
/// `1990-5-12`" quotes request data. The hook logs through `tracing` instead, in the configured
/// format with the request's id, saying only where the panic happened. The request still gets
/// its 500 `OperationOutcome` (catch-panic) and the process keeps serving.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(%location, "panic (its message is not logged: it may quote request data)");
    }));
}

/// Installs the global subscriber writing to stdout (the service); a second call (tests) is a no-op.
pub fn init(level: &str, format: LogFormat) {
    init_to(level, format, false);
}

/// Like [`init`]; `stderr` for command-line tools, whose stdout is their output.
pub fn init_to(level: &str, format: LogFormat, stderr: bool) {
    init_with_writer(level, format, move || -> Box<dyn std::io::Write> {
        if stderr { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) }
    });
}

/// Installs the subscriber writing to `writer` (tests capture the logs this way, to check what
/// they contain); a second call is a no-op.
pub fn init_with_writer<W>(level: &str, format: LogFormat, writer: W)
where
    W: Fn() -> Box<dyn std::io::Write> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .flatten_event(true)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false).with_writer(writer)).try_init(),
    };
    // Already initialised (tests start several apps in one process): keep the first.
    drop(result);
}
