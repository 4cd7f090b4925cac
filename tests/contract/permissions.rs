//! Contract section 5 (permissions): required permissions and tenants (403).

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permission_403_names_it_carries_scope_and_rate_headers_and_uses_no_quota() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let k = &keys.read_only; // emails:read, 5 per second
    for srv in &servers {
        let res = send_req(srv, &get("/v1/emails").bearer(&k.token), &keys).await;
        ok_for(srv, &res, k);
        assert_rate(srv, &res, 5, 4);
        for _ in 0..3 {
            let res = send_req(srv, &post("/v1/emails").bearer(&k.token), &keys).await;
            let v = rejection(srv, &res, 403, "permission_denied");
            assert!(message(&v).contains("emails:send"), "{v}");
            assert!(suggestion(&v).contains("emails:send"), "{v}");
            www_scope(srv, &res, "emails:send");
            // The key's current state, unchanged by the 403.
            assert_rate(srv, &res, 5, 4);
        }
        let res = send_req(srv, &get("/v1/emails").bearer(&k.token), &keys).await;
        ok_for(srv, &res, k);
        assert_rate(srv, &res, 5, 3);
        assert_eq!(srv.calls(), 2, "[{:?}]", srv.flavor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_must_hold_every_required_permission_and_full_access_holds_all() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let all = "emails:send emails:read domains:manage webhooks:manage suppressions:manage";
    for srv in &servers {
        // Holds one of two.
        let res = send_req(
            srv,
            &get("/v1/read-and-send").bearer(&keys.send_only.token),
            &keys,
        )
        .await;
        let v = rejection(srv, &res, 403, "permission_denied");
        www_scope(srv, &res, "emails:send emails:read");
        assert!(message(&v).contains("emails:read"), "{v}");
        assert!(
            !message(&v).contains("emails:send"),
            "names only what is missing: {v}"
        );
        assert!(rate(&res).is_some());

        // Holds one of five.
        let res = send_req(srv, &get("/v1/all").bearer(&keys.send_only.token), &keys).await;
        let v = rejection(srv, &res, 403, "permission_denied");
        www_scope(srv, &res, all);
        for p in [
            "emails:read",
            "domains:manage",
            "webhooks:manage",
            "suppressions:manage",
        ] {
            assert!(message(&v).contains(p), "{p}: {v}");
            assert!(suggestion(&v).contains(p), "{p}: {v}");
        }

        // Holds none.
        let res = send_req(srv, &post("/v1/emails").bearer(&keys.none.token), &keys).await;
        rejection(srv, &res, 403, "permission_denied");
        www_scope(srv, &res, "emails:send");
        // But any valid key passes a route that requires no permission.
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.none.token), &keys).await;
        ok_for(srv, &res, &keys.none);

        for path in ["/v1/all", "/v1/read-and-send", "/v1/emails"] {
            let res = send_req(srv, &get(path).bearer(&keys.full.token), &keys).await;
            ok_for(srv, &res, &keys.full);
        }
        let res = send_req(srv, &post("/v1/emails").bearer(&keys.full.token), &keys).await;
        ok_for(srv, &res, &keys.full);
        assert_eq!(srv.calls(), 5, "[{:?}]", srv.flavor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_scoped_key_refused_on_another_tenant_org_key_allowed_everywhere() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    for srv in &servers {
        for path in [
            "/v1/tenants/tn_b/domains",
            "/v1/tenants/tn_ab/webhooks/wh_1",
            "/v1/tenants/TN_A/domains",
        ] {
            let res = send_req(srv, &get(path).bearer(&keys.tenant_a.token), &keys).await;
            let v = rejection(srv, &res, 403, "permission_denied");
            assert!(message(&v).to_ascii_lowercase().contains("tenant"), "{v}");
            let scope = if path.contains("webhooks") {
                "webhooks:manage"
            } else {
                "domains:manage"
            };
            www_scope(srv, &res, scope);
            assert_rate(srv, &res, 10, 10);
        }
        for path in ["/v1/tenants/tn_a/domains", "/v1/tenants/tn_a/webhooks/wh_1"] {
            let res = send_req(srv, &post(path).bearer(&keys.tenant_a.token), &keys).await;
            let v = ok_for(srv, &res, &keys.tenant_a);
            assert_eq!(v["path"], json!(path));
        }
        for tenant in ["tn_a", "tn_b", "tn_zzz"] {
            let path = format!("/v1/tenants/{tenant}/domains");
            let res = send_req(srv, &get(&path).bearer(&keys.full.token), &keys).await;
            ok_for(srv, &res, &keys.full);
        }
        assert_eq!(srv.calls(), 5, "[{:?}]", srv.flavor);
    }
}
