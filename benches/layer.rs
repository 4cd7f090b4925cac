//! Per-call cost of `ArkAuthLayer` next to a bare service, tower-http's bearer check and the
//! team's tuned reference pipeline (ported in `reference/mod.rs`), all in one criterion run
//! with the same driver: the request (8 headers) is cloned from a template in `iter_batched`'s
//! untimed setup, then `poll_ready` + `call` + one poll with a no-op waker is timed (the
//! request is dropped inside the timed part, the response outside it).
//!
//! Groups: `stack/*` (middleware stacks, accept and reject paths), `prim/*` (pieces of the
//! ark-auth accept path, for the profile discussion in `benches/README.md`).
//!
//! run: `taskset -c 1 cargo bench --bench layer -- --warm-up-time 1 --measurement-time 3`

mod reference;

use std::fmt::Debug;
use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ark_auth::{
    key::KeyHash,
    limit::{MemoryRateLimiter, RateLimiter},
    response::{X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET},
    store::{Answer, KeyStore},
    MemoryKeyStore, RequestId,
};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion};
use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, Response};
use reference::*;
use tower::{Layer, Service, ServiceExt};

/// Checks the status of one call (which also checks that nothing is Pending), then benches
/// the service on the request templates, rotating over them.
fn stack<S, RB>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut svc: S,
    templates: &[Request<ReqBody>],
    expect: u16,
) where
    S: Service<Request<ReqBody>, Response = Response<RB>>,
    S::Error: Debug,
{
    for t in templates {
        let status = ready_call_now(&mut svc, t.clone()).status().as_u16();
        assert_eq!(status, expect, "{name}");
    }
    let mut i = 0usize;
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                i = i.wrapping_add(1);
                templates[i % templates.len()].clone()
            },
            |req| ready_call_now(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let r = f();
    eprintln!("setup: {what} in {:.2} s", t0.elapsed().as_secs_f64());
    r
}

fn bench_stacks(c: &mut Criterion) {
    let mut g = c.benchmark_group("stack");
    let token0 = key_token(0);
    let good = vec![bearer_request(&token0)];
    // 1024 different keys spread over 0..100k
    let rotating: Vec<Request<ReqBody>> = (0..1024u64)
        .map(|i| bearer_request(&key_token(i * 97)))
        .collect();

    stack(&mut g, "01_bare_service_fn", inner(), &good, 200);
    // tower-http's `bearer(token)` prepends "Bearer " itself
    let tower_http_svc = bearer_layer(&token0).layer(inner());
    stack(
        &mut g,
        "02_towerhttp_bearer_valid",
        tower_http_svc,
        &good,
        200,
    );

    let reference = Arc::new(timed("reference 100k keys", || {
        RefAuthenticator::new(100_000)
    }));
    let model = ModelAuthLayer {
        auth: reference.clone(),
    };
    stack(
        &mut g,
        "03_reference_accept_100k",
        model.layer(inner()),
        &good,
        200,
    );
    stack(
        &mut g,
        "03b_reference_accept_100k_rotating_1k",
        model.layer(inner()),
        &rotating,
        200,
    );
    stack(
        &mut g,
        "03a_reference_accept_100k+ratelimit_headers",
        model.layer(inner()).map_response(add_ratelimit_headers),
        &good,
        200,
    );
    let unknown = vec![bearer_request(&key_token(UNKNOWN_KEY))];
    stack(
        &mut g,
        "03c_reference_reject_unknown_100k",
        model.layer(inner()),
        &unknown,
        401,
    );
    drop(model);
    drop(reference);

    let store = timed("ark store 100k keys", || ark_store(100_000));
    let ark = ark_layer(store);
    stack(&mut g, "04_ark_accept_100k", ark.layer(inner()), &good, 200);
    stack(
        &mut g,
        "04b_ark_accept_100k_rotating_1k",
        ark.layer(inner()),
        &rotating,
        200,
    );

    // reject paths, same layer (and so the same limiter) as the accept path
    let svc = ark.layer(inner());
    stack(
        &mut g,
        "05a_ark_reject_unknown_key",
        svc.clone(),
        &unknown,
        401,
    );
    let wrong = vec![bearer_request(&wrong_secret_token(0))];
    stack(
        &mut g,
        "05b_ark_reject_wrong_secret",
        svc.clone(),
        &wrong,
        401,
    );
    let revoked = vec![bearer_request(&key_token(REVOKED_KEY))];
    stack(&mut g, "05c_ark_reject_revoked", svc.clone(), &revoked, 401);
    let no_perm = vec![bearer_request(&key_token(NO_PERMISSION_KEY))];
    stack(
        &mut g,
        "05d_ark_reject_403_missing_permission",
        svc.clone(),
        &no_perm,
        403,
    );
    // The tiny-quota key allows 1 request/s: the first call is accepted, then 429. (A 1/s
    // sliding window admits one request every 2 s when hammered: a negligible share of 200s.)
    let tiny = vec![bearer_request(&key_token(TINY_QUOTA_KEY))];
    let mut exhaust = svc.clone();
    let first = ready_call_now(&mut exhaust, tiny[0].clone());
    assert_eq!(first.status().as_u16(), 200);
    stack(
        &mut g,
        "05e_ark_reject_429_rate_limited",
        svc.clone(),
        &tiny,
        429,
    );
    let malformed = vec![typical_request(Some("Bearer ark_live_nope"))];
    stack(
        &mut g,
        "05f_ark_reject_malformed_header",
        svc.clone(),
        &malformed,
        401,
    );
    let missing = vec![typical_request(None)];
    stack(&mut g, "05g_ark_reject_missing_header", svc, &missing, 401);
    drop(ark);

    let store = timed("ark store 1k keys", || ark_store(1_000));
    stack(
        &mut g,
        "04c_ark_accept_1k",
        ark_layer(store).layer(inner()),
        &good,
        200,
    );
    let store = timed("ark store 1M keys", || ark_store(1_000_000));
    stack(
        &mut g,
        "04d_ark_accept_1M",
        ark_layer(store.clone()).layer(inner()),
        &good,
        200,
    );
    timed("ark store 1M keys drop", || drop(store));
    g.finish();
}

/// Pieces of the accept path, each timed alone (cached, single key).
fn bench_prims(c: &mut Criterion) {
    let mut g = c.benchmark_group("prim");
    let token = key_token(0);
    let req = bearer_request(&token);
    let parsed = ark_auth::token::Token::parse(&token).unwrap();
    let hash = KeyHash::of(&parsed);

    g.bench_function("std_Instant_now", |b| b.iter(|| black_box(Instant::now())));
    g.bench_function("std_SystemTime_now", |b| {
        b.iter(|| black_box(SystemTime::now()))
    });
    g.bench_function("ark_bearer_token_8hdr", |b| {
        b.iter(|| {
            ark_auth::token::bearer_token(black_box(&req).headers())
                .map(|t| t.expose_secret().len())
                .ok()
        })
    });
    g.bench_function("reference_get_parse_bearer_fast_8hdr", |b| {
        b.iter(|| {
            black_box(&req)
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| parse_bearer_fast(v.as_bytes()))
                .map(|s| s.len())
        })
    });
    g.bench_function("ark_KeyHash_of_49B", |b| {
        b.iter(|| KeyHash::of(black_box(&parsed)))
    });
    let h2 = hash;
    g.bench_function("ark_KeyHash_ct_eq(subtle_bytewise)", |b| {
        b.iter(|| black_box(&hash).ct_eq(black_box(&h2)))
    });
    let (a, a2) = (*hash.as_bytes(), *h2.as_bytes());
    g.bench_function("reference_ct_eq_words", |b| {
        b.iter(|| bool::from(ct_eq_words(black_box(&a), black_box(&a2))))
    });

    let store: MemoryKeyStore = ark_store(100_000);
    g.bench_function("ark_MemoryKeyStore_lookup_100k(hit,incl_Arc_drop)", |b| {
        b.iter(|| match store.lookup(black_box(&hash)) {
            Answer::Now(found) => found.unwrap().is_some(),
            Answer::Later(_) => unreachable!("the memory store answers now"),
        })
    });
    let limiter = MemoryRateLimiter::new();
    let record = store.records()[0].clone();
    g.bench_function("ark_MemoryRateLimiter_acquire", |b| {
        b.iter(
            || match limiter.acquire(black_box(&record), &huge_quota().into()) {
                Answer::Now(checked) => checked.unwrap().remaining,
                Answer::Later(_) => unreachable!("the memory limiter answers now"),
            },
        )
    });
    let tat = AtomicU64::new(0);
    let epoch = Instant::now();
    g.bench_function("reference_inline_gcra_with_Instant_now", |b| {
        b.iter(|| {
            let now = Instant::now().duration_since(epoch).as_nanos() as u64;
            gcra_check(black_box(&tat), now, 1, 1_000_000_000)
        })
    });
    g.bench_function("http_HeaderValue_from_u32_u32_u64", |b| {
        b.iter(|| {
            (
                HeaderValue::from(black_box(4_294_967_295u32)),
                HeaderValue::from(black_box(4_294_967_294u32)),
                HeaderValue::from(black_box(1_790_000_000u64)),
            )
        })
    });
    // a realistic quota (10/s): fewer digits than BytesMut's capacity, so `freeze` allocates
    // a second time (bytes' `From<Vec<u8>>` when len != capacity)
    g.bench_function("http_HeaderValue_from_small_ints(10,7,reset)", |b| {
        b.iter(|| {
            (
                HeaderValue::from(black_box(10u32)),
                HeaderValue::from(black_box(7u32)),
                HeaderValue::from(black_box(1_790_000_000u64)),
            )
        })
    });
    // what `set_rate_limit_headers` does to the inner service's (empty) response
    g.bench_function("response_3_ratelimit_headers(HeaderValue_from_ints)", |b| {
        b.iter_batched(
            || Response::new(Body::new()),
            |mut res| {
                let h = res.headers_mut();
                h.insert(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(u32::MAX));
                h.insert(
                    X_RATELIMIT_REMAINING.clone(),
                    HeaderValue::from(u32::MAX - 1),
                );
                h.insert(
                    X_RATELIMIT_RESET.clone(),
                    HeaderValue::from(1_790_000_000u64),
                );
                res
            },
            BatchSize::SmallInput,
        )
    });
    // the same with static values: only the header map's allocation and the inserts
    g.bench_function("response_3_ratelimit_headers(static_values)", |b| {
        b.iter_batched(
            || Response::new(Body::new()),
            |mut res| {
                insert_static_ratelimit_headers(res.headers_mut());
                res
            },
            BatchSize::SmallInput,
        )
    });
    // the map already allocated: custom names (hashed byte by byte with FNV by `http`) vs
    // standard names (hashed by their enum discriminant)
    let reserved = || {
        let mut r = Response::new(Body::new());
        r.headers_mut().reserve(3);
        r
    };
    g.bench_function(
        "response_3_ratelimit_headers(static_values,map_preallocated)",
        |b| {
            b.iter_batched(
                reserved,
                |mut res| {
                    insert_static_ratelimit_headers(res.headers_mut());
                    res
                },
                BatchSize::SmallInput,
            )
        },
    );
    g.bench_function(
        "response_3_standard_headers(static_values,map_preallocated)",
        |b| {
            b.iter_batched(
                reserved,
                |mut res| {
                    let h = res.headers_mut();
                    h.insert(http::header::AGE, HeaderValue::from_static("4294967295"));
                    h.insert(
                        http::header::EXPIRES,
                        HeaderValue::from_static("4294967294"),
                    );
                    h.insert(
                        http::header::RETRY_AFTER,
                        HeaderValue::from_static("1790000000"),
                    );
                    res
                },
                BatchSize::SmallInput,
            )
        },
    );
    g.bench_function("ark_RequestId_from_headers(valid)", |b| {
        b.iter(|| RequestId::from_headers(black_box(&req).headers()))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(100)
}

criterion_group! { name = stacks; config = config(); targets = bench_stacks }
criterion_group! { name = prims; config = config(); targets = bench_prims }
criterion_main!(stacks, prims);

/// The three `X-RateLimit-*` headers with static (allocation-free) values: what is left is
/// the header map's own work.
fn insert_static_ratelimit_headers(h: &mut http::HeaderMap) {
    h.insert(
        X_RATELIMIT_LIMIT.clone(),
        HeaderValue::from_static("4294967295"),
    );
    h.insert(
        X_RATELIMIT_REMAINING.clone(),
        HeaderValue::from_static("4294967294"),
    );
    h.insert(
        X_RATELIMIT_RESET.clone(),
        HeaderValue::from_static("1790000000"),
    );
}
