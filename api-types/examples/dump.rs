//! Prints the canonical JSON of a job file, or its diagnostics (a development aid).
fn main() {
    for f in std::env::args().skip(1) {
        match nomos_api::parse_file(
            std::path::Path::new(&f),
            &nomos_api::ParseOptions::default(),
        ) {
            Ok(p) => {
                for w in &p.warnings {
                    println!("{w}");
                }
                for j in &p.jobs {
                    println!("{}", nomos_api::to_canonical_json(j));
                }
            }
            Err(e) => {
                for d in e {
                    println!("{d}");
                }
            }
        }
    }
}
