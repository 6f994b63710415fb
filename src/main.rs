fn main() {
    std::process::exit(orc::cli::main());
}
