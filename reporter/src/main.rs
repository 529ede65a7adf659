fn main() {
    std::process::exit(joulebook_reporter::cli::main());
}
