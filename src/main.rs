//! The `phigate` binary: a dispatch into the library's command layer.

fn main() -> std::process::ExitCode {
    phigate::cli::run()
}
