//! `tollgate-fuzz --target NAME|all [--seconds 60] [--seed N] [--max-rss-mib 1024]
//! [--slow-ms 5000] [--crashes DIR]`: runs each parser on mutated real inputs
//! for a bounded time (on stable Rust: no cargo-fuzz), and fails on a panic, a
//! broken invariant, an input slower than `--slow-ms`, or a peak resident size
//! above `--max-rss-mib`. A failing input is written to `--crashes` for a test.

mod mutate;
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use targets::{Harness, TARGETS};

#[derive(Debug)]
struct Args {
    targets: Vec<String>,
    seconds: u64,
    seed: u64,
    max_rss_mib: u64,
    slow: Duration,
    crashes: PathBuf,
}

const USAGE: &str = "usage: tollgate-fuzz --target NAME|all [--seconds 60] [--seed N] \
[--max-rss-mib 1024] [--slow-ms 5000] [--crashes DIR]";

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        targets: Vec::new(),
        seconds: 60,
        seed: 1,
        max_rss_mib: 1024,
        slow: Duration::from_secs(5),
        crashes: PathBuf::from("fuzz/crashes"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(format!("{USAGE}\ntargets: {}", TARGETS.join(", ")));
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag}: a value is needed\n{USAGE}"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--target" if value == "all" => parsed.targets = TARGETS.map(str::to_owned).to_vec(),
            "--target" if TARGETS.contains(&value.as_str()) => parsed.targets.push(value.clone()),
            "--target" => {
                return Err(format!(
                    "unknown target {value:?}; one of all, {}",
                    TARGETS.join(", ")
                ));
            }
            "--seconds" => parsed.seconds = number()?,
            "--seed" => parsed.seed = number()?,
            "--max-rss-mib" => parsed.max_rss_mib = number()?,
            "--slow-ms" => parsed.slow = Duration::from_millis(number()?),
            "--crashes" => parsed.crashes = PathBuf::from(&value),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    if parsed.targets.is_empty() {
        return Err(format!("--target is needed\n{USAGE}"));
    }
    Ok(parsed)
}

/// A line of `/proc/self/status` in MiB (Linux): `VmHWM` the peak, `VmRSS` now.
fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

/// The input being run and since when, for the watchdog.
type Running = Arc<Mutex<Option<(String, Instant, Vec<u8>)>>>;

/// Watches the input in flight: one that hangs (past twice the slowness
/// bound) or grows the process past the memory bound is saved and the run
/// ended, instead of stalling CI or dying to the OOM killer without a trace.
fn watchdog(running: Running, args: &Args) {
    let (slow, max_mib, crashes) = (args.slow * 2, args.max_rss_mib, args.crashes.clone());
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let guard = running.lock().unwrap_or_else(|p| p.into_inner());
            let Some((target, began, input)) = guard.as_ref() else {
                continue;
            };
            let rss = status_mib("VmRSS:");
            let failure = if began.elapsed() > slow {
                format!("hung for {:?}", began.elapsed())
            } else if rss > max_mib {
                format!("resident size {rss} MiB")
            } else {
                continue;
            };
            let saved = save(&crashes, target, input);
            eprintln!("FAILED {target}: an input {failure}; saved as {saved}");
            std::process::exit(1);
        }
    });
}

/// Fuzzes one target for the time given; the failure, if one.
fn fuzz(target: &str, args: &Args, running: &Running) -> Result<String, String> {
    let harness = Harness::new(target)?;
    let seeds = harness.seeds(target);
    if seeds.is_empty() {
        return Err(format!("{target}: no seeds"));
    }
    let mut rng = mutate::Rng::new(args.seed ^ fxhash(target));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut runs = 0u64;
    // Seeds first, as they are: they must pass too.
    let mut queue: Vec<Vec<u8>> = seeds.clone();
    while Instant::now() < deadline {
        let input = queue
            .pop()
            .unwrap_or_else(|| mutate::input(&mut rng, &seeds));
        let began = Instant::now();
        let watched = (target.to_owned(), began, input.clone());
        *running.lock().unwrap_or_else(|p| p.into_inner()) = Some(watched);
        let outcome = catch_unwind(AssertUnwindSafe(|| harness.run(target, &input)));
        *running.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let took = began.elapsed();
        runs += 1;
        let failure = match outcome {
            Err(panic) => Some(format!("panicked: {}", panic_message(&panic))),
            Ok(Err(broken)) => Some(broken),
            Ok(Ok(())) if took > args.slow => Some(format!("took {took:?}")),
            Ok(Ok(())) => None,
        };
        let rss = peak_rss_mib();
        let failure = failure
            .or_else(|| (rss > args.max_rss_mib).then(|| format!("peak resident size {rss} MiB")));
        if let Some(failure) = failure {
            let saved = save(&args.crashes, target, &input);
            return Err(format!(
                "{target} (seed {}): input {runs} {failure}; saved as {saved}",
                args.seed
            ));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "{target} (seed {}): {runs} inputs in {seconds:.0} s ({:.0}/s), peak resident size {} MiB, no failure",
        args.seed,
        runs as f64 / seconds.max(1e-9),
        peak_rss_mib()
    ))
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn save(dir: &std::path::Path, target: &str, input: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, input);
    let path = dir.join(format!("{target}-{}", hex::encode(&digest.as_ref()[..8])));
    match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, input)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not saved: {e})"),
    }
}

/// A target's share of the seed, so each target walks its own sequence.
fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // Panics are caught and reported with their input; the default hook's
    // backtrace for each would drown the summary.
    std::panic::set_hook(Box::new(|_| {}));
    let running: Running = Arc::default();
    watchdog(running.clone(), &args);
    let mut failed = false;
    for target in &args.targets {
        match fuzz(target, &args, &running) {
            Ok(summary) => println!("{summary}"),
            Err(failure) => {
                eprintln!("FAILED {failure}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
