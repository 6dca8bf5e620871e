//! Fuzz target: the template engine must parse or refuse any text, and render what parses
//! within its limits, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomos_template::{NoSources, Options, Template, Value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = Template::parse("fuzz", &text, &Options::default()) {
        let _ = t.render(&Value::Null, &NoSources);
    }
});
