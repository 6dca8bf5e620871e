//! Fuzz target: every job-file format and the stored-spec reader must return jobs or
//! diagnostics for any input, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomos_api::{parse_source, parse_stored_spec, ParseOptions};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the format, the rest is the file.
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let name = ["job.hcl", "job.nomad", "job.yaml", "job.json", "job"][usize::from(which) % 5];
    let text = String::from_utf8_lossy(rest);
    let _ = parse_source(name, &text, &ParseOptions::default());
    let _ = parse_stored_spec("/nomos/jobs/default/fuzz", rest);
});
