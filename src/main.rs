//! The `flatline` binary: a thin shell over the library (see `flatline::cli`).

fn main() {
    std::process::exit(flatline::cli::main());
}
