//! The `cht-fhir-mediator` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    cht_fhir_mediator::cli::main()
}
