//! Measures how long parsing takes (a development aid): `cargo run --release -p nomos-api
//! --example parse_speed -- FILE [ITERATIONS]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("usage: parse_speed FILE [ITERATIONS]");
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let text = std::fs::read_to_string(&file).expect("read file");
    let opts = nomos_api::ParseOptions::default();
    let start = std::time::Instant::now();
    for _ in 0..n {
        let parsed = nomos_api::parse_source(&file, &text, &opts).expect("valid file");
        std::hint::black_box(parsed);
    }
    let per = start.elapsed() / n;
    println!(
        "{file}: {} bytes, {per:?} per parse, {:.0} parses/s",
        text.len(),
        1.0 / per.as_secs_f64()
    );
    // The same job read back from the store as canonical JSON (what controllers do).
    let job = &nomos_api::parse_source(&file, &text, &opts)
        .expect("valid file")
        .jobs[0];
    let json = nomos_api::to_canonical_json(job);
    let key = format!("/nomos/jobs/{}/{}", job.namespace, job.id);
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(nomos_api::parse_stored_spec(&key, json.as_bytes()).expect("valid"));
    }
    let per = start.elapsed() / n;
    println!(
        "canonical JSON: {} bytes, {per:?} per parse_stored_spec, {:.0}/s",
        json.len(),
        1.0 / per.as_secs_f64()
    );
    // Where the time goes.
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::from_str::<serde_json::Value>(&json).unwrap());
    }
    println!("  serde_json to Value: {:?}", t.elapsed() / n);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut v = v.clone();
        nomos_api::defaults::apply(&mut v);
        std::hint::black_box(v);
    }
    println!("  clone + defaults: {:?}", t.elapsed() / n);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_path_to_error::deserialize::<_, nomos_api::Job>(&v).unwrap());
    }
    println!("  Value to Job: {:?}", t.elapsed() / n);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(nomos_api::validate::validate(job));
    }
    println!("  validate: {:?}", t.elapsed() / n);
}
