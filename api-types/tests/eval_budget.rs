//! The HCL evaluator's byte budget: job files whose values double, multiply or expand fail
//! with the budget error at the expression that went over, and the parse never holds much
//! more memory than the budget. Memory is measured by a counting allocator (peak bytes live
//! on the test's own thread), never by time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nomos_api::{parse_source, ParseOptions};

struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: the thread's slots may be gone while it exits.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const BUDGET_ERROR: &str = "values grow past the 16 MiB evaluation budget";

/// The most a refused file may make this thread hold at once: the budget, what the parser
/// and decoder keep besides values, and one value being built when the budget trips.
const PEAK_LIMIT: isize = 3 * (16 << 20);

/// Parses `source` and returns its errors (empty when it parsed) and the peak bytes held
/// meanwhile.
fn parse_measured(source: &str) -> (Vec<String>, isize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let result = parse_source("job.hcl", source, &ParseOptions::default());
    let peak = PEAK.with(Cell::get) - base;
    let diags = match result {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    };
    (diags, peak)
}

fn job_with(locals: &str, group_extra: &str) -> String {
    format!(
        r#"locals {{
{locals}
}}
job "j" {{
  datacenters = ["dc1"]
  group "g" {{
{group_extra}
    task "t" {{
      driver = "raw_exec"
      config {{ command = "/bin/true" }}
    }}
  }}
}}
"#
    )
}

/// Thirty locals, each twice the one before: 2 bytes to 2 GiB without a budget.
fn doubling_chain() -> String {
    let mut locals = String::from("  l0 = \"xx\"\n");
    for i in 1..30 {
        locals += &format!("  l{i} = \"${{local.l{p}}}${{local.l{p}}}\"\n", p = i - 1);
    }
    job_with(&locals, "")
}

#[test]
fn hostile_files_fail_with_the_budget_error_at_the_expression_and_stay_within_memory() {
    let nested_for =
        "  big = [for a in range(1000) : [for b in range(1000) : \"${a}-${b}-padding-padding\"]]";
    let nested_dynamic = r#"    dynamic "constraint" {
      for_each = range(1000)
      content {
        dynamic "x" {
          for_each = range(1000)
          content {
            dynamic "y" {
              for_each = range(1000)
              content {}
            }
          }
        }
      }
    }"#;
    let cases = [
        (
            "doubling locals",
            doubling_chain(),
            "job.hcl:23:9: values grow past",
        ),
        (
            "range(1e9)",
            job_with("  r = range(1e9)", ""),
            "job.hcl:2:7: values grow past",
        ),
        (
            "nested for",
            job_with(nested_for, ""),
            "job.hcl:2:60: values grow past",
        ),
        (
            "nested dynamic",
            job_with("", nested_dynamic),
            "job.hcl:10:9: values grow past",
        ),
    ];
    for (what, source, at) in cases {
        let (diags, peak) = parse_measured(&source);
        let hit = diags
            .iter()
            .find(|d| d.contains(BUDGET_ERROR))
            .unwrap_or_else(|| panic!("{what}: no budget error in {diags:#?}"));
        assert!(hit.starts_with(at), "{what}: {hit}");
        assert!(
            peak < PEAK_LIMIT,
            "{what}: peak {peak} bytes, limit {PEAK_LIMIT}"
        );
    }
}

#[test]
fn the_doubling_chain_is_refused_at_the_local_that_goes_over() {
    let (diags, _) = parse_measured(&doubling_chain());
    // l22 is 8 MiB; building it (with the two copies it reads) crosses 16 MiB.
    let first = diags.iter().find(|d| d.contains(BUDGET_ERROR)).unwrap();
    let line: u32 = first.split(':').nth(1).unwrap().parse().unwrap();
    assert!((20..=26).contains(&line), "{first}");
}

#[test]
fn realistic_files_are_unaffected_by_the_budget() {
    // A generous real-world shape: 200 locals, a 100-item for, templates and joins.
    let mut locals = String::new();
    for i in 0..200 {
        locals += &format!("  env{i} = \"value-{i}-${{upper(\"abc\")}}\"\n");
    }
    locals += "  ports = [for i in range(100) : { name = \"p${i}\", to = 8000 + i }]\n";
    locals += "  joined = join(\",\", [for p in local.ports : p.name])\n";
    let (diags, _) = parse_measured(&job_with(&locals, "    count = 3"));
    assert!(diags.is_empty(), "{diags:#?}");
}
