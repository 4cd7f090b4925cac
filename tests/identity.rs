//! Credentials stay at the edge: the client's `Authorization` never reaches the service
//! behind the layer (by default), and with identity headers on, that service gets exactly
//! one header per configured name, set by the layer from the key, whatever copies (any case,
//! repeated) the client sent; on public routes and refused requests, none. Real servers
//! (axum, plain hyper) over TCP.

mod common;
mod echo;

use ark_auth::{
    key::KeyRecord, policy::RequestHead, service::IdentityHeaders, Access, ArkAuthLayer,
    Environment, MemoryKeyStore, Permission, Permissions,
};
use common::{bearer, request, send, FLAVORS};
use echo::{echoed, echoed_key, spawn};
use http::HeaderName;

fn policy(head: &RequestHead<'_>) -> Access {
    match head.uri.path() {
        "/health" => Access::Public,
        "/send" => Access::require(Permission::EmailsSend),
        _ => Access::any_key(),
    }
}

struct Key {
    token: String,
    id: String,
}

fn key(record: impl FnOnce(KeyRecord) -> KeyRecord) -> (Key, KeyRecord) {
    let k = ark_auth::generate_key(Environment::Test).unwrap();
    let token = k.plaintext.expose_secret().to_owned();
    let record = record(k.record);
    (
        Key {
            token,
            id: record.id().to_owned(),
        },
        record,
    )
}

/// Headers a client makes up, in several spellings and repeated.
fn spoofs() -> Vec<Vec<u8>> {
    [
        "X-Ark-Key-Id: key_admin",
        "x-ark-key-id: key_admin_2",
        "X-ARK-KEY-NAME: admin",
        "x-ark-environment: live",
        "X-Ark-Permissions: *",
        "x-ark-tenant: tn_victim",
        "X-Ark-Tenant: tn_victim_2",
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .collect()
}

#[tokio::test]
async fn by_default_the_key_stays_at_the_edge_and_other_headers_pass() {
    let (k, record) = key(|r| r.with_permissions(Permissions::ALL));
    let store = MemoryKeyStore::from_records([record]).unwrap();
    for flavor in FLAVORS {
        let server = spawn(flavor, ArkAuthLayer::new(store.clone()).policy(policy)).await;
        for path in ["/send", "/health"] {
            let raw = request("GET", path, &[bearer(&k.token), b"x-custom: kept".to_vec()]);
            let res = send(server.addr, &raw).await;
            let body = res.body_text();
            assert_eq!(res.status, 200, "{flavor:?} {path}: {body}");
            assert!(
                echoed(&body, "authorization").is_empty(),
                "{flavor:?} {path}: {body}"
            );
            assert!(!body.contains(&k.token[9..]), "{flavor:?} {path}");
            assert_eq!(echoed(&body, "x-custom"), ["kept"]);
        }
        // Identity headers are off by default: the layer neither sets nor removes them.
        let mut lines = vec![bearer(&k.token)];
        lines.push(b"x-ark-key-id: key_admin".to_vec());
        let body = send(server.addr, &request("GET", "/send", &lines))
            .await
            .body_text();
        assert_eq!(echoed(&body, "x-ark-key-id"), ["key_admin"]);
        assert_eq!(echoed_key(&body), k.id, "the extension is the truth");
    }
}

#[tokio::test]
async fn hide_credentials_off_passes_authorization_on() {
    let (k, record) = key(|r| r);
    let store = MemoryKeyStore::from_records([record]).unwrap();
    for flavor in FLAVORS {
        let layer = ArkAuthLayer::new(store.clone()).hide_credentials(false);
        let server = spawn(flavor, layer).await;
        let body = send(server.addr, &request("GET", "/x", &[bearer(&k.token)]))
            .await
            .body_text();
        assert_eq!(
            echoed(&body, "authorization"),
            [format!("Bearer {}", k.token)]
        );
    }
}

#[tokio::test]
async fn identity_headers_replace_every_client_copy() {
    let (k, record) = key(|r| {
        r.with_name("CI bot\r\nx-ark-key-id: key_admin Zoë")
            .with_tenant("tn_42")
            .with_permissions(Permission::EmailsSend | Permission::EmailsRead)
    });
    let (plain, plain_record) = key(|r| r.with_name("ops").with_permissions(Permissions::NONE));
    let store = MemoryKeyStore::from_records([record, plain_record]).unwrap();
    for flavor in FLAVORS {
        let layer = ArkAuthLayer::new(store.clone())
            .policy(policy)
            .identity_headers(IdentityHeaders::default());
        let server = spawn(flavor, layer).await;

        let mut lines = spoofs();
        lines.push(bearer(&k.token));
        let res = send(server.addr, &request("GET", "/send", &lines)).await;
        let body = res.body_text();
        assert_eq!(res.status, 200, "{flavor:?}: {body}");
        assert_eq!(echoed(&body, "x-ark-key-id"), [k.id.as_str()], "{flavor:?}");
        assert_eq!(
            echoed(&body, "x-ark-key-name"),
            ["CI%20bot%0D%0Ax-ark-key-id:%20key_admin%20Zo%C3%AB"]
        );
        assert_eq!(echoed(&body, "x-ark-environment"), ["test"]);
        assert_eq!(
            echoed(&body, "x-ark-permissions"),
            ["emails:send emails:read"]
        );
        assert_eq!(echoed(&body, "x-ark-tenant"), ["tn_42"]);
        assert!(echoed(&body, "authorization").is_empty());

        // An organisation key: no tenant header at all, even though the client sent two.
        let mut lines = spoofs();
        lines.push(bearer(&plain.token));
        let body = send(server.addr, &request("GET", "/any", &lines))
            .await
            .body_text();
        assert_eq!(echoed(&body, "x-ark-key-id"), [plain.id.as_str()]);
        assert_eq!(echoed(&body, "x-ark-key-name"), ["ops"]);
        assert_eq!(echoed(&body, "x-ark-permissions"), [""]);
        assert!(echoed(&body, "x-ark-tenant").is_empty(), "{body}");

        // A public route: the client's copies are removed, nothing is set.
        let mut lines = spoofs();
        lines.push(bearer(&k.token));
        let body = send(server.addr, &request("GET", "/health", &lines))
            .await
            .body_text();
        assert!(!body.contains("x-ark-"), "{flavor:?}: {body}");
        assert_eq!(echoed_key(&body), "none");

        // Refused: the handler never runs.
        let before = server.calls();
        let mut lines = spoofs();
        lines.push(bearer(&plain.token));
        let res = send(server.addr, &request("GET", "/send", &lines)).await;
        assert_eq!(res.status, 403);
        let res = send(server.addr, &request("GET", "/send", &spoofs())).await;
        assert_eq!(res.status, 401);
        assert_eq!(server.calls(), before);
    }
}

#[tokio::test]
async fn identity_header_names_are_configurable() {
    let (k, record) = key(|r| r.with_name("billing"));
    let store = MemoryKeyStore::from_records([record]).unwrap();
    let names = IdentityHeaders::default()
        .key_id(HeaderName::from_static("x-consumer-id"))
        .name(HeaderName::from_static("x-consumer-username"))
        .environment(None)
        .permissions(None)
        .tenant(None);
    for flavor in FLAVORS {
        let layer = ArkAuthLayer::new(store.clone()).identity_headers(names.clone());
        let server = spawn(flavor, layer).await;
        let lines = [
            bearer(&k.token),
            b"X-Consumer-Id: key_admin".to_vec(),
            b"x-ark-environment: live".to_vec(),
        ];
        let body = send(server.addr, &request("GET", "/", &lines))
            .await
            .body_text();
        assert_eq!(echoed(&body, "x-consumer-id"), [k.id.as_str()]);
        assert_eq!(echoed(&body, "x-consumer-username"), ["billing"]);
        assert!(echoed(&body, "x-ark-key-id").is_empty());
        // Not configured: not the layer's to touch.
        assert_eq!(echoed(&body, "x-ark-environment"), ["live"]);
    }
}
