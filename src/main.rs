fn main() -> std::process::ExitCode {
    twinhead::cli::main()
}
