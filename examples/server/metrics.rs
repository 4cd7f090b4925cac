//! `GET /metrics` (public): what the layer records through the `metrics` facade (requests
//! by outcome, store lookup times, limiter failures), in the Prometheus text format, from
//! `metrics-exporter-prometheus`'s recorder.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::reply::{error, Rid};

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histograms are folded (the recorder's upkeep), whether or not anyone scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed the first time this is called (by
/// [`app_with`](super::app::app_with), so that the first request is counted). `None` when
/// another recorder was installed first.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let h = handle.clone();
                rt.spawn(async move {
                    loop {
                        tokio::time::sleep(UPKEEP).await;
                        h.run_upkeep();
                    }
                });
            }
            Some(handle)
        })
        .as_ref()
}

/// `GET /metrics`: the current values, or 503 in the envelope when this process has no
/// Prometheus recorder.
pub async fn metrics(rid: Rid) -> Response {
    match recorder() {
        Some(handle) => {
            let mut res = handle.render().into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            res
        }
        None => error(
            &rid,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Metrics are not available in this process",
            "Another metrics recorder was installed first",
        ),
    }
}
