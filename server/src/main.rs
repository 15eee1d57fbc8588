//! `latchkey`: see `latchkey --help` and the README.

/// mimalloc instead of the system allocator: a request allocates and frees
/// many small objects (headers, form fields, claims), which glibc's malloc
/// makes about a tenth of an introspection's CPU (`bench/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    latchkey::cli::main()
}
