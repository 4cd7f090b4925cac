//! Scaling (issue 5, goal 5): throughput of the layer on 2 threads against 1 thread, with
//! distinct keys per thread and with one shared hot key (the same store record and the same
//! limiter entry hit from both threads). Goal: 2 threads ≥ 1.8× one thread.
//!
//! Each run: every thread gets its own service (`layer.layer(inner())`, the layer's store and
//! limiter shared, as a server's connections share them) and CALLS pre-built requests; the
//! threads start together at a barrier, and the run's throughput is all calls / wall time
//! from the barrier to the last thread's end (requests and responses dropped inside, as a
//! server does). Every round runs every variant at 1 and then 2 threads, back to back; the
//! ratio is taken per round and its median reported. The bare inner service and the
//! reference pipeline run the same way: the bare ratio is what the machine itself gives at
//! that moment (another process on the second core shows up there first).
//!
//! run: `taskset -c 0,1 cargo bench --bench scaling` (env ROUNDS, default 15; CALLS per
//! thread per run, default 100000; `cargo test --benches` runs 2 small rounds)

mod reference;

use std::sync::{Arc, Barrier};
use std::time::Instant;

use http::Request;
use reference::*;
use tower::{Layer, Service};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Calls per second of `threads` threads, each on its own service from `make` and `calls`
/// copies of the request `req(thread)`.
fn throughput<S, B>(
    threads: usize,
    calls: usize,
    make: &(dyn Fn() -> S + Sync),
    req: &(dyn Fn(usize) -> Request<()> + Sync),
    expect: u16,
) -> f64
where
    S: Service<Request<()>, Response = http::Response<B>> + Send,
    S::Error: std::fmt::Debug,
{
    let barrier = Barrier::new(threads + 1);
    let (start, ends) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut svc = make();
                    let template = req(t);
                    let reqs: Vec<Request<()>> = (0..calls).map(|_| template.clone()).collect();
                    // one uncounted call: the limiter's entry for the key exists before the run
                    let first = ready_call_now(&mut svc, template).status().as_u16();
                    assert_eq!(first, expect);
                    barrier.wait();
                    let mut ok = true;
                    for r in reqs {
                        ok &= ready_call_now(&mut svc, r).status().as_u16() == expect;
                    }
                    let end = Instant::now();
                    assert!(ok, "a response was not {expect}");
                    end
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let ends: Vec<Instant> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (start, ends)
    });
    let wall = ends.into_iter().max().unwrap().duration_since(start);
    (threads * calls) as f64 / wall.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.25), q(0.75))
}

type Run<'a> = Box<dyn Fn(usize) -> f64 + 'a>;

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let rounds = env_usize("ROUNDS", if bench_mode { 15 } else { 2 });
    let calls = env_usize("CALLS", if bench_mode { 100_000 } else { 2_000 });

    let ark = ark_layer(ark_store(100_000));
    let reference = ModelAuthLayer {
        auth: Arc::new(RefAuthenticator::new(100_000)),
    };
    let shared = |_t: usize| bearer_request(&key_token(0));
    let distinct = |t: usize| bearer_request(&key_token(1 + t as u64));
    let ark_svc = || ark.layer(inner());
    let ref_svc = || reference.layer(inner());
    let variants: Vec<(&str, Run<'_>)> = vec![
        (
            "bare service_fn",
            Box::new(|n| throughput(n, calls, &inner, &shared, 200)),
        ),
        (
            "reference, distinct keys",
            Box::new(|n| throughput(n, calls, &ref_svc, &distinct, 200)),
        ),
        (
            "reference, one shared key",
            Box::new(|n| throughput(n, calls, &ref_svc, &shared, 200)),
        ),
        (
            "ark accept, distinct keys",
            Box::new(|n| throughput(n, calls, &ark_svc, &distinct, 200)),
        ),
        (
            "ark accept, one shared key",
            Box::new(|n| throughput(n, calls, &ark_svc, &shared, 200)),
        ),
    ];

    let mut one = vec![Vec::new(); variants.len()];
    let mut two = vec![Vec::new(); variants.len()];
    let mut ratio = vec![Vec::new(); variants.len()];
    for (i, (_, run)) in variants.iter().enumerate() {
        run(1); // warm-up
        let _ = i;
    }
    for r in 0..rounds {
        for k in 0..variants.len() {
            let i = (k + r) % variants.len();
            let t1 = (variants[i].1)(1);
            let t2 = (variants[i].1)(2);
            one[i].push(t1);
            two[i].push(t2);
            ratio[i].push(t2 / t1);
        }
    }
    println!(
        "# scaling: {rounds} rounds, {calls} calls per thread per run, {} CPUs available",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| variant | 1 thread calls/s | 2 threads calls/s | 2 threads / 1 thread, median of per-round ratios [p25..p75] |");
    println!("|---|---|---|---|");
    let mut bare_ratio = 0.0;
    for (i, (name, _)) in variants.iter().enumerate() {
        let (r, lo, hi) = median(ratio[i].clone());
        if i == 0 {
            bare_ratio = r;
        }
        println!(
            "| {name} | {:.0} | {:.0} | {r:.2} [{lo:.2}..{hi:.2}] |",
            median(one[i].clone()).0,
            median(two[i].clone()).0
        );
    }
    println!(
        "\ngoal: ark 2 threads / 1 thread >= 1.8 (the bare service_fn's {bare_ratio:.2} is the machine's own ceiling in this run)"
    );
}
