//! Capturing what the mediator logs in a test binary: the process's one `tracing` subscriber,
//! JSON at debug level, writing into a buffer the test can search.

use std::sync::{Arc, Mutex, OnceLock};

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (before any mediator starts in this process; a later
/// `spawn_app` keeps it) and returns the buffer.
pub fn capture() -> Arc<Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        cht_fhir_mediator::telemetry::init_with_writer(
            "debug",
            cht_fhir_mediator::settings::LogFormat::Json,
            move || Box::new(Capture(sink.clone())) as Box<dyn std::io::Write>,
        );
        buffer
    })
    .clone()
}

/// Everything captured so far, as text.
pub fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}
