//! `latchkey`: see `latchkey --help` and the README.

fn main() -> std::process::ExitCode {
    latchkey::cli::main()
}
