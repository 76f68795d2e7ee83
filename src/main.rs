//! The `container-ops` binary: a thin shell over the library's CLI.

fn main() -> std::process::ExitCode {
    container_ops::app::cli::run()
}
