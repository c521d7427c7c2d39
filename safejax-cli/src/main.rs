//! The `safejax` command. See `safejax --help`.

fn main() -> std::process::ExitCode {
    safejax_cli::main()
}
