//! Benchmark of the Trust Report (docs/PERFORMANCE-report.md): the report
//! read from the rollups, and the same question answered by a scan of the
//! whole journal, on the database `EGRESS_BENCH_DATABASE_URL` names
//! (`scripts/bench-report.sh` builds one of 10,000,000 rows and runs this).
//! Prints one Markdown table row per case, and whether both answers agree.
//!
//! `EGRESS_BENCH_RUNS` (default 30) timed runs from the rollups per period,
//! `EGRESS_BENCH_SCAN_RUNS` (default 3) of the journal scan, after one
//! untimed run of each to warm the caches.

use std::time::{Duration, Instant};

use egress_rollup::report::{self, Since};
use egress_rollup::{Report, Source};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// (min, median, p95, max) of the timings.
fn spread(mut times: Vec<Duration>) -> (Duration, Duration, Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (times[0], at(0.5), at(0.95), times[times.len() - 1])
}

/// The two reports, minus what differs by construction.
fn same_answer(a: &Report, b: &Report) -> bool {
    let strip = |r: &Report| Report {
        generated_at_us: 0,
        source: String::new(),
        ..r.clone()
    };
    strip(a) == strip(b)
}

fn main() {
    let Ok(url) = std::env::var("EGRESS_BENCH_DATABASE_URL") else {
        eprintln!("EGRESS_BENCH_DATABASE_URL is not set: nothing to measure (see scripts/bench-report.sh)");
        return;
    };
    let runs = env_usize("EGRESS_BENCH_RUNS", 30).max(1);
    let scan_runs = env_usize("EGRESS_BENCH_SCAN_RUNS", 3).max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let config: tokio_postgres::Config = url.parse().expect("EGRESS_BENCH_DATABASE_URL parses");
        let database = config.get_dbname().unwrap_or("?").to_owned();
        let (mut client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to the bench database");
        tokio::spawn(connection);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM egress.journal", &[])
            .await
            .expect("count the journal")
            .get(0);
        let rollup_rows: i64 = client
            .query_one("SELECT count(*) FROM egress.rollup", &[])
            .await
            .expect("count the rollups")
            .get(0);
        println!("journal rows: {rows}; call rollup rows: {rollup_rows}");
        println!();
        println!("| period | source | runs | min ms | median ms | p95 ms | max ms | calls in the report |");
        println!("|---|---|---|---|---|---|---|---|");
        let mut agreement = Vec::new();
        for period in ["7d", "30d", "all"] {
            let since: Since = period.parse().expect("a period");
            let mut answers = Vec::new();
            for (source, n) in [(Source::Rollups, runs), (Source::JournalScan, scan_runs)] {
                let mut times = Vec::with_capacity(n);
                let mut last = None;
                for i in 0..=n {
                    let started = Instant::now();
                    let report = report::build(&mut client, &database, since, source)
                        .await
                        .expect("the report");
                    if i > 0 {
                        times.push(started.elapsed());
                    }
                    last = Some(report);
                }
                let report = last.expect("at least one run");
                let (min, median, p95, max) = spread(times);
                println!(
                    "| {period} | {} | {n} | {} | {} | {} | {} | {} |",
                    source.as_str(),
                    ms(min),
                    ms(median),
                    ms(p95),
                    ms(max),
                    report.summary.calls
                );
                answers.push(report);
            }
            agreement.push(format!(
                "- `--since {period}`: the rollups and the journal scan give {} answer.",
                if same_answer(&answers[0], &answers[1]) {
                    "the same"
                } else {
                    "a DIFFERENT"
                }
            ));
        }
        println!();
        for line in agreement {
            println!("{line}");
        }
    });
}
