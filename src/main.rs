//! The `cht-fhir-mediator` binary: everything lives in the library.

/// The service allocates many small JSON maps per request; glibc malloc spent ~40% of a report
/// conversion in malloc/free (perf, `cargo bench --bench conversions`). The benchmark uses the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cht_fhir_mediator::cli::main()
}
