//! Cost per call against the number of keys in the store (1 000, 10 000, 100 000, 1 000 000),
//! accept path, interleaved like `interleaved.rs`: every round times a batch of every variant
//! (order shuffled per round), so the per-round deltas to the bare service come from measurements
//! milliseconds apart. Per store size: ark with one hot key (key 0), and requests rotating
//! over 1 024 keys spread over the whole store (every lookup, every limiter entry a different
//! one: the store's size shows up through cache misses), and the reference pipeline on the
//! same rotation over a store of the same size. The bare service and the reference with one
//! hot key (100 000 keys) run in the same rounds.
//!
//! Prints a table (median ns/call and median per-round Δ to bare) and writes an SVG plot of
//! Δbare against the number of keys to KEYS_PLOT (default `target/keys_plot.svg`;
//! `benches/keys_plot.svg` is the committed one).
//!
//! run: `KEYS_PLOT=benches/keys_plot.svg taskset -c 1 cargo bench --bench keys`
//! env: ROUNDS (default 2000 under `cargo bench`, 10 otherwise), BATCH (default 100),
//! SIZES (comma-separated, default 1000,10000,100000,1000000; 1000,10000 outside `cargo bench`)

mod reference;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use reference::*;
use tower::{Layer, Service};

type Runner = Box<dyn FnMut(usize) -> Duration>;

#[inline(never)]
fn timed_batch<S, RB>(svc: &mut S, batch: &mut Vec<Request<ReqBody>>, out: &mut Vec<Response<RB>>)
where
    S: Service<Request<ReqBody>, Response = Response<RB>>,
    S::Error: std::fmt::Debug,
{
    for req in batch.drain(..) {
        out.push(ready_call_now(svc, req));
    }
}

fn runner<S, RB>(mut svc: S, templates: Vec<Request<ReqBody>>) -> Runner
where
    S: Service<Request<ReqBody>, Response = Response<RB>> + 'static,
    S::Error: std::fmt::Debug,
    RB: 'static,
{
    let (mut batch, mut out, mut k) = (Vec::new(), Vec::new(), 0usize);
    Box::new(move |n| {
        out.clear();
        for _ in 0..n {
            k += 1;
            batch.push(templates[k % templates.len()].clone());
        }
        out.reserve(n);
        let t0 = Instant::now();
        timed_batch(&mut svc, &mut batch, &mut out);
        let e = t0.elapsed();
        assert!(out.iter().all(|r: &Response<RB>| r.status() == 200));
        e
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let rounds = env_usize("ROUNDS", if bench_mode { 2000 } else { 10 });
    let batch = env_usize("BATCH", 100);
    let sizes: Vec<u64> = std::env::var("SIZES")
        .unwrap_or_else(|_| {
            if bench_mode {
                "1000,10000,100000,1000000".into()
            } else {
                "1000,10000".into() // smoke run (`cargo test --benches`)
            }
        })
        .split(',')
        .map(|s| s.trim().parse().expect("SIZES: numbers"))
        .collect();

    let good = vec![bearer_request(&key_token(0))];
    let mut variants: Vec<(String, Runner)> = vec![
        ("bare".into(), runner(inner(), good.clone())),
        (
            "reference 100k, hot key".into(),
            runner(
                ModelAuthLayer {
                    auth: Arc::new(RefAuthenticator::new(100_000)),
                }
                .layer(inner()),
                good.clone(),
            ),
        ),
    ];
    for &n in &sizes {
        let t = Instant::now();
        let layer = ark_layer(ark_store(n));
        eprintln!(
            "store of {n} keys built in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        // 1 024 keys spread over the store (a stride through its key numbers)
        let rotating: Vec<_> = (0..1024u64)
            .map(|i| bearer_request(&key_token(i * n / 1024)))
            .collect();
        let model = ModelAuthLayer {
            auth: Arc::new(RefAuthenticator::new(n)),
        };
        variants.push((
            format!("ark {n}, hot key"),
            runner(layer.layer(inner()), good.clone()),
        ));
        variants.push((
            format!("ark {n}, rotating 1024"),
            runner(layer.layer(inner()), rotating.clone()),
        ));
        variants.push((
            format!("reference {n}, rotating 1024"),
            runner(model.layer(inner()), rotating),
        ));
    }
    let nv = variants.len();
    for (_, run) in variants.iter_mut() {
        for _ in 0..20 {
            run(batch);
        }
    }
    let mut ns = vec![Vec::with_capacity(rounds); nv];
    for r in 0..rounds {
        for v in round_order(nv, r) {
            ns[v].push((variants[v].1)(batch).as_nanos() as f64 / batch as f64);
        }
    }
    let delta = |v: usize| median((0..rounds).map(|r| ns[v][r] - ns[0][r]).collect());

    println!("# keys: {rounds} rounds x {nv} variants x {batch} calls; ns/call");
    println!("| variant | median ns | median Δbare ns |");
    println!("|---|---|---|");
    for v in 0..nv {
        println!(
            "| {} | {:.0} | {:.0} |",
            variants[v].0,
            median(ns[v].clone()),
            delta(v)
        );
    }

    // the plot: Δbare against log10(keys), two ark series, the reference as a level
    let hot: Vec<f64> = (0..sizes.len()).map(|i| delta(2 + 3 * i)).collect();
    let rot: Vec<f64> = (0..sizes.len()).map(|i| delta(3 + 3 * i)).collect();
    let ref_rot: Vec<f64> = (0..sizes.len()).map(|i| delta(4 + 3 * i)).collect();
    let reference = delta(1);
    let path = std::env::var("KEYS_PLOT").unwrap_or_else(|_| "target/keys_plot.svg".into());
    let svg = plot(&sizes, &hot, &rot, &ref_rot, reference, rounds, batch);
    std::fs::write(&path, svg).expect("write the plot");
    println!("\nplot: {path}");
}

fn plot(
    sizes: &[u64],
    hot: &[f64],
    rot: &[f64],
    ref_rot: &[f64],
    reference: f64,
    rounds: usize,
    batch: usize,
) -> String {
    let (w, h) = (640.0, 400.0);
    let (left, right, top, bottom) = (70.0, 50.0, 40.0, 60.0);
    let ymax = hot
        .iter()
        .chain(rot)
        .chain(ref_rot)
        .chain([&reference])
        .fold(0.0f64, |a, &b| a.max(b));
    // a round grid step (100, 200, 250, 500, 1000, …) and five or six lines
    let raw = ymax * 1.1 / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let steps = (ymax * 1.1 / step).ceil().max(1.0) as usize;
    let ymax = step * steps as f64;
    let (lx0, lx1) = (
        (sizes[0] as f64).log10(),
        (*sizes.last().unwrap() as f64)
            .log10()
            .max((sizes[0] as f64).log10() + 1.0),
    );
    let x = |n: u64| left + ((n as f64).log10() - lx0) / (lx1 - lx0) * (w - left - right);
    let y = |v: f64| top + (1.0 - v / ymax) * (h - top - bottom);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="14">ArkAuthLayer accept path: ns per call over a bare service vs keys in the store</text>
"#,
        w / 2.0
    );
    // axes and grid
    for i in 0..=steps {
        let v = ymax * i as f64 / steps as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{v:.0}</text>"##,
            y(v),
            w - right,
            left - 6.0,
            y(v) + 4.0
        );
    }
    for &n in sizes {
        let label = match n {
            n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
            n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
            n => n.to_string(),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1}" stroke="#eee"/><text x="{0:.1}" y="{2}" text-anchor="middle">{label}</text>"##,
            x(n),
            h - bottom,
            h - bottom + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{0}" stroke="black"/>
<text x="{2}" y="{3}" text-anchor="middle">keys in the MemoryKeyStore (log scale)</text>
<text x="16" y="{4}" text-anchor="middle" transform="rotate(-90 16 {4})">Δ ns per call over bare (median of per-round deltas)</text>"##,
        h - bottom,
        w - right,
        (left + w - right) / 2.0,
        h - 16.0,
        (top + h - bottom) / 2.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#888" stroke-dasharray="6 4"/><text x="{2}" y="{3:.1}" text-anchor="end" fill="#555">reference pipeline, 100k keys, hot key ({reference:.0})</text>"##,
        y(reference),
        w - right,
        w - right - 4.0,
        y(reference) - 5.0
    );
    for (series, color, name) in [
        (hot, "#1f77b4", "ark, one hot key"),
        (rot, "#d62728", "ark, rotating over 1 024 keys"),
        (ref_rot, "#2ca02c", "reference, rotating over 1 024 keys"),
    ] {
        let pts: Vec<String> = sizes
            .iter()
            .zip(series)
            .map(|(&n, &v)| format!("{:.1},{:.1}", x(n), y(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for (&n, &v) in sizes.iter().zip(series) {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"><title>{name}, {n} keys: {v:.0} ns</title></circle><text x="{:.1}" y="{:.1}" font-size="10" fill="{color}">{v:.0}</text>"#,
                x(n),
                y(v),
                x(n) + 5.0,
                y(v) - 6.0
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<rect x="{0}" y="{1}" width="12" height="3" fill="#1f77b4"/><text x="{2}" y="{3}">ark, one hot key</text>
<rect x="{0}" y="{4}" width="12" height="3" fill="#d62728"/><text x="{2}" y="{5}">ark, rotating over 1 024 keys spread over the store</text>
<rect x="{0}" y="{7}" width="12" height="3" fill="#2ca02c"/><text x="{2}" y="{8}">reference pipeline, the same 1 024 keys, store of the same size</text>
<text x="{left}" y="{6}" font-size="10" fill="#555">benches/keys.rs, {rounds} interleaved rounds x {batch} calls, taskset -c 1; wall clock on a shared 2-core VM</text>"##,
        left + 10.0,
        top + 6.0,
        left + 28.0,
        top + 10.0,
        top + 22.0,
        top + 26.0,
        h - 2.0,
        top + 38.0,
        top + 42.0
    );
    s.push_str("</svg>\n");
    s
}
