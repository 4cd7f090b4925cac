//! Interleaved measurement of the stacks, for a noisy machine (after perf-reference's
//! `benches/interleaved.rs`).
//!
//! Every round measures every variant once (a batch of BATCH calls each, requests cloned
//! untimed beforehand, order shuffled per round), so the per-round ratio "variant / bare" is
//! taken from measurements milliseconds apart. Reported: median ns/call (p10..p90 over
//! rounds), median of the per-round ratios and deltas to bare, and the key figure
//! (ark accept − bare) / (reference − bare).
//!
//! env: VARIANTS (comma-separated name substrings; default all; bare, the reference with and
//! without headers and ark accept 100k always run), ROUNDS (default 10000 under `cargo bench`, 20 otherwise, e.g. under
//! `cargo test --benches`), BATCH (calls per variant per round, default 100),
//! DROP_RESPONSE=1 (drop each response inside the timed part, as a server does once it has
//! written it, instead of keeping the batch's responses alive until after the timing)
//! run: `taskset -c 1 cargo bench --bench interleaved`
//!
//! Profile mode (no measurement): `ARK_PROFILE=<variant name substring>` runs only that
//! variant for ARK_PROFILE_CALLS calls (default 200000), through the same `timed_batch` as
//! the measurement; e.g. under
//! `valgrind --tool=callgrind --toggle-collect='*timed_batch*' <bench binary>`
//! the collected instructions divided by the calls are the instructions per call.

mod reference;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use reference::*;
use tower::{Layer, Service, ServiceExt};

type Runner = Box<dyn FnMut(usize) -> Duration>;

/// The timed part: `n` x (poll_ready + call + poll), responses kept (dropped untimed later),
/// or, with `drop_inside`, each response dropped right away, inside the timed part (only the
/// first is kept, for the status check).
#[inline(never)]
fn timed_batch<S, RB>(
    svc: &mut S,
    batch: &mut Vec<Request<ReqBody>>,
    out: &mut Vec<Response<RB>>,
    drop_inside: bool,
) where
    S: Service<Request<ReqBody>, Response = Response<RB>>,
    S::Error: Debug,
{
    for req in batch.drain(..) {
        let res = ready_call_now(svc, req);
        if !drop_inside || out.is_empty() {
            out.push(res);
        }
    }
}

/// Clones `n` requests (untimed), then times `timed_batch`.
fn stack_runner<S, RB>(
    svc: S,
    templates: Vec<Request<ReqBody>>,
    expect: u16,
    drop_inside: bool,
) -> Runner
where
    S: Service<Request<ReqBody>, Response = Response<RB>> + 'static,
    S::Error: Debug,
    RB: 'static,
{
    wrapped_runner(svc, templates, expect, drop_inside, |timed| timed())
}

/// [`stack_runner`] with the timed part run inside `around` (which must call it once).
fn wrapped_runner<S, RB>(
    mut svc: S,
    templates: Vec<Request<ReqBody>>,
    expect: u16,
    drop_inside: bool,
    around: impl Fn(&mut dyn FnMut()) + 'static,
) -> Runner
where
    S: Service<Request<ReqBody>, Response = Response<RB>> + 'static,
    S::Error: Debug,
    RB: 'static,
{
    let mut batch: Vec<Request<ReqBody>> = Vec::new();
    let mut out: Vec<Response<RB>> = Vec::new();
    let mut k = 0usize;
    Box::new(move |n| {
        out.clear();
        batch.clear();
        for _ in 0..n {
            k += 1;
            batch.push(templates[k % templates.len()].clone());
        }
        out.reserve(n);
        let t0 = Instant::now();
        around(&mut || timed_batch(&mut svc, &mut batch, &mut out, drop_inside));
        let e = t0.elapsed();
        assert_eq!(out[0].status().as_u16(), expect);
        e
    })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// [`stack_runner`] with a Prometheus recorder installed for the timed part only (the
/// `metrics` facade's thread-local recorder): the layer's counters as a deployment that
/// exports them pays for them. Built with `--features metrics` only.
#[cfg(feature = "metrics")]
fn metrics_runner<S, RB>(svc: S, templates: Vec<Request<ReqBody>>, drop_inside: bool) -> Runner
where
    S: Service<Request<ReqBody>, Response = Response<RB>> + 'static,
    S::Error: Debug,
    RB: 'static,
{
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let mut run = wrapped_runner(svc, templates, 200, drop_inside, move |timed| {
        metrics::with_local_recorder(&recorder, timed)
    });
    // the recorder counts: the variant measures what it claims
    run(1);
    let text = handle.render();
    assert!(
        text.contains("ark_auth_requests_total{outcome=\"accepted\"}"),
        "{text}"
    );
    run
}

/// The requests of the rotating variants: keys `0..1 000` in turn.
fn rotating_requests() -> Vec<Request<ReqBody>> {
    (0..1_000).map(|i| bearer_request(&key_token(i))).collect()
}

/// The reference with `n` keys and the three headers, on keys `0..1 000` in turn.
fn rotating_reference(n: u64, drop_inside: bool) -> Runner {
    let svc = ModelAuthLayer {
        auth: Arc::new(RefAuthenticator::new(n)),
    }
    .layer(inner())
    .map_response(add_ratelimit_headers);
    stack_runner(svc, rotating_requests(), 200, drop_inside)
}

/// ark-auth with the exact sliding window (the default's limit of 10, per millisecond instead
/// of per second) on keys `0..1 000` in turn: about 2 requests per key and millisecond
/// natively, all admitted.
fn rotating_exact(store: ark_auth::MemoryKeyStore, drop_inside: bool) -> Runner {
    let layer = ark_auth::ArkAuthLayer::new(store)
        .require(REQUIRED)
        .default_quota(ark_auth::limit::Quota::new(
            std::num::NonZeroU32::new(10).unwrap(),
            Duration::from_millis(1),
        ));
    stack_runner(layer.layer(inner()), rotating_requests(), 200, drop_inside)
}

const BARE: &str = "1_bare_service_fn";
const BARE_AXUM_BODY: &str = "1b_bare_service_fn_axum_body";
const REFERENCE: &str = "3_reference_accept_100k";
const REFERENCE_HEADERS: &str = "3b_reference_accept_100k+ratelimit_headers";
const REFERENCE_SAME_WIRE: &str = "3f_reference_accept_100k+ratelimit_headers+request_id";
const ARK_ACCEPT: &str = "5_ark_accept_100k";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then a quick smoke run.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let rounds = env_usize("ROUNDS", if bench_mode { 10_000 } else { 20 });
    let batch = env_usize("BATCH", 100);
    let profile = std::env::var("ARK_PROFILE").ok();
    let d = std::env::var("DROP_RESPONSE").is_ok_and(|v| v == "1");

    let token0 = key_token(0);
    let good = vec![bearer_request(&token0)];
    let unknown = vec![bearer_request(&key_token(UNKNOWN_KEY))];
    let wrong = vec![bearer_request(&wrong_secret_token(0))];

    // Each variant is built on demand: the profile mode builds only the one it runs (under
    // valgrind, building the 1M-key store is most of the run), VARIANTS=<substrings,…> picks a
    // subset for the interleaved run (default: all; `1_bare` and the reference are always in).
    type Build<'a> = Box<dyn FnOnce() -> Runner + 'a>;
    let reference = || ModelAuthLayer {
        auth: Arc::new(RefAuthenticator::new(100_000)),
    };
    let store100k = std::cell::OnceCell::new();
    let store = || store100k.get_or_init(|| ark_store(100_000)).clone();
    let ark100k = std::cell::OnceCell::new();
    let ark = || ark100k.get_or_init(|| ark_layer(store())).clone();
    let reject = |tokens: Vec<Request<ReqBody>>, status: u16| -> Build<'_> {
        Box::new(move || stack_runner(ark().layer(inner()), tokens, status, d))
    };
    let builders: Vec<(&str, Build<'_>)> = vec![
        (
            BARE,
            Box::new(|| stack_runner(inner(), good.clone(), 200, d)),
        ),
        (
            BARE_AXUM_BODY,
            Box::new(|| stack_runner(peer::inner_axum_body(), good.clone(), 200, d)),
        ),
        (
            "2_towerhttp_bearer_valid",
            Box::new(|| stack_runner(bearer_layer(&token0).layer(inner()), good.clone(), 200, d)),
        ),
        (
            REFERENCE,
            Box::new(|| stack_runner(reference().layer(inner()), good.clone(), 200, d)),
        ),
        (
            REFERENCE_HEADERS,
            Box::new(|| {
                stack_runner(
                    reference()
                        .layer(inner())
                        .map_response(add_ratelimit_headers),
                    good.clone(),
                    200,
                    d,
                )
            }),
        ),
        (
            REFERENCE_SAME_WIRE,
            Box::new(|| {
                // the reference writing what ark-auth's accept path writes by default: the
                // three headers and the request's checked `X-Request-Id` (ark-auth's own
                // `RequestId::from_headers`, credentials check included)
                let svc = tower::ServiceBuilder::new()
                    .layer(reference::echo::EchoRequestIdLayer)
                    .map_response(add_ratelimit_headers)
                    .layer(reference())
                    .service(inner());
                stack_runner(svc, good.clone(), 200, d)
            }),
        ),
        (
            "4_reference_unknown_key_100k",
            Box::new(|| stack_runner(reference().layer(inner()), unknown.clone(), 401, d)),
        ),
        (
            "3c_reference_accept_1k_rotating+ratelimit_headers",
            Box::new(|| rotating_reference(1_000, d)),
        ),
        (
            "3e_reference_accept_100k_rotating+ratelimit_headers",
            Box::new(|| rotating_reference(100_000, d)),
        ),
        (
            "3d_reference_accept_1M_rotating+ratelimit_headers",
            Box::new(|| rotating_reference(1_000_000, d)),
        ),
        (ARK_ACCEPT, reject(good.clone(), 200)),
        (
            "5b_ark_accept_1k",
            Box::new(|| {
                stack_runner(
                    ark_layer(ark_store(1_000)).layer(inner()),
                    good.clone(),
                    200,
                    d,
                )
            }),
        ),
        (
            "5c_ark_accept_1M",
            Box::new(|| {
                stack_runner(
                    ark_layer(ark_store(1_000_000)).layer(inner()),
                    good.clone(),
                    200,
                    d,
                )
            }),
        ),
        (
            "5d_ark_accept_exact_100k_rotating",
            Box::new(|| rotating_exact(store(), d)),
        ),
        (
            "5e_ark_accept_exact_1k_rotating",
            Box::new(|| rotating_exact(ark_store(1_000), d)),
        ),
        (
            "5f_ark_accept_exact_1M_rotating",
            Box::new(|| rotating_exact(ark_store(1_000_000), d)),
        ),
        (
            "5g_ark_accept_100k_no_echo_no_hiding",
            Box::new(|| {
                // what the defaults added since 0.1.0 cost: the same layer without the
                // `X-Request-Id` echo and without removing `Authorization`
                let layer = ark().request_id_header(false).hide_credentials(false);
                stack_runner(layer.layer(inner()), good.clone(), 200, d)
            }),
        ),
        #[cfg(feature = "metrics")]
        (
            "5m_ark_accept_100k_metrics_prometheus",
            Box::new(|| metrics_runner(ark().layer(inner()), good.clone(), d)),
        ),
        ("6_ark_unknown_key_100k", reject(unknown.clone(), 401)),
        ("7_ark_wrong_secret_100k", reject(wrong.clone(), 401)),
        (
            "8_ark_revoked",
            reject(vec![bearer_request(&key_token(REVOKED_KEY))], 401),
        ),
        (
            "9_ark_403_missing_permission",
            reject(vec![bearer_request(&key_token(NO_PERMISSION_KEY))], 403),
        ),
        ("10_ark_429_rate_limited", {
            // a layer of its own whose default quota is 1 per hour (key 99 999 has no quota
            // of its own), exhausted before the measurement: no request of the run gets
            // through, however slowly it runs (under valgrind, a 1/s key lets one through
            // every second). The limiter is process-wide (keyed by the key's hash): the key is
            // outside the keys `0..1 000` the rotating variants admit under other quotas.
            let t = vec![bearer_request(&key_token(99_999))];
            Box::new(move || {
                let layer = ark_auth::ArkAuthLayer::new(store())
                    .require(REQUIRED)
                    .default_quota(ark_auth::limit::Quota::new(
                        std::num::NonZeroU32::MIN,
                        Duration::from_secs(3600),
                    ));
                let mut svc = layer.layer(inner());
                let _ = ready_call_now(&mut svc, t[0].clone());
                stack_runner(svc, t, 429, d)
            })
        }),
        (
            "11_ark_malformed_header",
            reject(vec![typical_request(Some("Bearer ark_live_nope"))], 401),
        ),
        (
            "12_ark_missing_header",
            reject(vec![typical_request(None)], 401),
        ),
        (
            "13_peer_accept_100k",
            Box::new(|| stack_runner(peer::peer_stack(100_000), good.clone(), 200, d)),
        ),
        (
            "14_peer_unknown_key_100k",
            Box::new(|| stack_runner(peer::peer_stack(100_000), unknown.clone(), 401, d)),
        ),
        (
            "15_peer_wrong_secret_100k",
            Box::new(|| stack_runner(peer::peer_stack(100_000), wrong.clone(), 401, d)),
        ),
    ];

    if let Some(name) = profile {
        let calls = env_usize("ARK_PROFILE_CALLS", 200_000);
        let (label, build) = match builders.iter().position(|(n, _)| *n == name) {
            Some(i) => builders.into_iter().nth(i),
            None => builders
                .into_iter()
                .find(|(n, _)| n.contains(name.as_str())),
        }
        .unwrap_or_else(|| panic!("no variant matches ARK_PROFILE={name}"));
        let mut run = build();
        let batches = calls.div_ceil(batch);
        let mut total = Duration::ZERO;
        for _ in 0..batches {
            total += run(batch);
        }
        println!(
            "# profile: {label}: {} calls in batches of {batch}, {:.0} ns/call",
            batches * batch,
            total.as_nanos() as f64 / (batches * batch) as f64
        );
        return;
    }

    let wanted: Option<Vec<String>> = std::env::var("VARIANTS")
        .ok()
        .map(|v| v.split(',').map(str::to_owned).collect());
    let mut variants: Vec<(&str, Runner)> = builders
        .into_iter()
        .filter(|(n, _)| {
            [
                BARE,
                BARE_AXUM_BODY,
                REFERENCE,
                REFERENCE_HEADERS,
                ARK_ACCEPT,
            ]
            .contains(n)
                || wanted
                    .as_ref()
                    .is_none_or(|w| w.iter().any(|w| n.contains(w.as_str())))
        })
        .map(|(n, b)| (n, b()))
        .collect();
    let nv = variants.len();

    for (name, run) in variants.iter_mut() {
        for _ in 0..20 {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(batch))).is_err() {
                panic!("variant {name} failed its warm-up");
            }
        }
    }
    let mut ns = vec![Vec::with_capacity(rounds); nv];
    let t_start = Instant::now();
    for r in 0..rounds {
        for v in round_order(nv, r) {
            let d = (variants[v].1)(batch);
            ns[v].push(d.as_nanos() as f64 / batch as f64);
        }
    }
    let wall = t_start.elapsed();

    println!(
        "# interleaved: {rounds} rounds x {nv} variants x {batch} calls/batch, {:.1} s; ns/call; \
         responses dropped {}",
        wall.as_secs_f64(),
        if d {
            "inside the timed part (DROP_RESPONSE=1)"
        } else {
            "after the timed part"
        }
    );
    println!(
        "| variant | median ns | p10 ns | p90 ns | median ×bare (p10..p90) | median Δbare ns |"
    );
    println!("|---|---|---|---|---|---|");
    let idx = |name: &str| variants.iter().position(|(n, _)| *n == name).unwrap();
    let (b, rf, ak) = (idx(BARE), idx(REFERENCE), idx(ARK_ACCEPT));
    let delta = |v: usize| sorted((0..rounds).map(|r| ns[v][r] - ns[b][r]).collect());
    for v in 0..nv {
        let s = sorted(ns[v].clone());
        let ratio = sorted((0..rounds).map(|r| ns[v][r] / ns[b][r]).collect());
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} ({:.2}..{:.2}) | {:.0} |",
            variants[v].0,
            pct(&s, 0.5),
            pct(&s, 0.1),
            pct(&s, 0.9),
            pct(&ratio, 0.5),
            pct(&ratio, 0.1),
            pct(&ratio, 0.9),
            pct(&delta(v), 0.5)
        );
    }
    let rh = idx(REFERENCE_HEADERS);
    let per_round_h = sorted(
        (0..rounds)
            .map(|r| (ns[ak][r] - ns[b][r]) / (ns[rh][r] - ns[b][r]))
            .collect(),
    );
    let per_round = sorted(
        (0..rounds)
            .map(|r| (ns[ak][r] - ns[b][r]) / (ns[rf][r] - ns[b][r]))
            .collect(),
    );
    println!(
        "\nkey figure (ark accept − bare) / (reference − bare): {:.2} from median deltas \
         ({:.0} / {:.0} ns); median of per-round quotients {:.2} (p10..p90 {:.2}..{:.2}); goal ≤ 1.2",
        pct(&delta(ak), 0.5) / pct(&delta(rf), 0.5),
        pct(&delta(ak), 0.5),
        pct(&delta(rf), 0.5),
        pct(&per_round, 0.5),
        pct(&per_round, 0.1),
        pct(&per_round, 0.9)
    );
    // goal 1 at 1k and 1M keys (when those variants ran), goal 2: each reject path against
    // the accept path, unknown key against wrong secret (per-round quotients of the deltas)
    let quot = |a: usize, c: usize| {
        sorted(
            (0..rounds)
                .map(|r| (ns[a][r] - ns[b][r]) / (ns[c][r] - ns[b][r]))
                .collect(),
        )
    };
    let find = |name: &str| variants.iter().position(|(n, _)| n.contains(name));
    for (label, v) in [("1k", find("5b_ark")), ("1M", find("5c_ark"))] {
        if let Some(v) = v {
            let q = quot(v, rf);
            println!(
                "key figure at {label} keys (vs the reference at 100k): median of per-round quotients {:.2} (p10..p90 {:.2}..{:.2})",
                pct(&q, 0.5),
                pct(&q, 0.1),
                pct(&q, 0.9)
            );
        }
    }
    // the reject paths: every `ark` variant that is not an accept (5…)
    for v in 0..nv {
        let name = variants[v].0;
        if !name.contains("_ark_") || name.starts_with('5') {
            continue;
        }
        let ratio = sorted((0..rounds).map(|r| ns[v][r] / ns[ak][r]).collect());
        println!(
            "{} / ark accept: median of per-round ratios {:.2} (p10..p90 {:.2}..{:.2}); goal <= 1 (no slower than accept)",
            variants[v].0,
            pct(&ratio, 0.5),
            pct(&ratio, 0.1),
            pct(&ratio, 0.9)
        );
    }
    if let (Some(u), Some(w)) = (find("6_ark_unknown"), find("7_ark_wrong")) {
        let ratio = sorted((0..rounds).map(|r| ns[w][r] / ns[u][r]).collect());
        println!(
            "wrong secret / unknown key: median of per-round ratios {:.3} (p10..p90 {:.3}..{:.3}); goal within 0.95..1.05",
            pct(&ratio, 0.5),
            pct(&ratio, 0.1),
            pct(&ratio, 0.9)
        );
    }
    // the accept path against the reference doing the same wire work (headers and id echo)
    if let Some(sw) = find(REFERENCE_SAME_WIRE) {
        let q = quot(ak, sw);
        println!(
            "{} vs {REFERENCE_SAME_WIRE} (added cost over bare): {:.3} from median deltas ({:.0} / {:.0} ns); median of per-round quotients {:.3} (p10..p90 {:.3}..{:.3})",
            ARK_ACCEPT,
            pct(&delta(ak), 0.5) / pct(&delta(sw), 0.5),
            pct(&delta(ak), 0.5),
            pct(&delta(sw), 0.5),
            pct(&q, 0.5),
            pct(&q, 0.1),
            pct(&q, 0.9)
        );
    }
    // the exact window at 1k / 100k / 1M keys, against the reference on the same rotation
    for (ark_name, ref_name) in [
        ("5e_ark_accept_exact_1k", "3c_reference_accept_1k"),
        ("5d_ark_accept_exact_100k", "3e_reference_accept_100k"),
        ("5f_ark_accept_exact_1M", "3d_reference_accept_1M"),
    ] {
        if let (Some(a), Some(r)) = (find(ark_name), find(ref_name)) {
            let q = quot(a, r);
            println!(
                "{} vs {} (added cost over bare): {:.3} from median deltas ({:.0} / {:.0} ns); median of per-round quotients {:.3} (p10..p90 {:.3}..{:.3}); goal <= 1.05",
                variants[a].0,
                variants[r].0,
                pct(&delta(a), 0.5) / pct(&delta(r), 0.5),
                pct(&delta(a), 0.5),
                pct(&delta(r), 0.5),
                pct(&q, 0.5),
                pct(&q, 0.1),
                pct(&q, 0.9)
            );
        }
    }
    // the peer stack (its own bare: the same service_fn with axum's body)
    let ba = idx(BARE_AXUM_BODY);
    for (ark_name, peer_name, goal) in [
        (ARK_ACCEPT, "13_peer_accept", "<= 0.8"),
        ("5d_ark_accept_exact", "13_peer_accept", "<= 0.8"),
        ("6_ark_unknown", "14_peer_unknown", "<= 1"),
        ("7_ark_wrong", "15_peer_wrong", "<= 1"),
    ] {
        if let (Some(a), Some(p)) = (find(ark_name), find(peer_name)) {
            let q = sorted(
                (0..rounds)
                    .map(|r| (ns[a][r] - ns[b][r]) / (ns[p][r] - ns[ba][r]))
                    .collect(),
            );
            let peer_delta = sorted((0..rounds).map(|r| ns[p][r] - ns[ba][r]).collect());
            println!(
                "{} vs {} (added cost, each over its own bare): {:.3} from median deltas ({:.0} / {:.0} ns); median of per-round quotients {:.3} (p10..p90 {:.3}..{:.3}); goal {goal}",
                variants[a].0,
                variants[p].0,
                pct(&delta(a), 0.5) / pct(&peer_delta, 0.5),
                pct(&delta(a), 0.5),
                pct(&peer_delta, 0.5),
                pct(&q, 0.5),
                pct(&q, 0.1),
                pct(&q, 0.9)
            );
        }
    }
    println!(
        "same against the reference + the 3 X-RateLimit-* headers (same wire output as ark): \
         {:.2} from median deltas ({:.0} / {:.0} ns); median of per-round quotients {:.2} \
         (p10..p90 {:.2}..{:.2})",
        pct(&delta(ak), 0.5) / pct(&delta(rh), 0.5),
        pct(&delta(ak), 0.5),
        pct(&delta(rh), 0.5),
        pct(&per_round_h, 0.5),
        pct(&per_round_h, 0.1),
        pct(&per_round_h, 0.9)
    );
}
