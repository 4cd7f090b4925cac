//! Helpers for the tests on real PostgreSQL: the address from `DATABASE_URL` (skip with a
//! printed reason when unset, fail when `CI=true`), a migrated store, and a TCP proxy that a
//! test can cut to play "the database is down".

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ark_auth::postgres::{PostgresKeyStore, PostgresOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// An address of a service from the environment; `None` (after printing why) when unset
/// locally. Panics when unset under `CI=true`: CI must never skip these tests silently.
pub fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: CI=true but {var} is unset; .ci/run must start the service");
            }
            eprintln!("skipping {test}: {var} is unset (set it to run against a real server)");
            None
        }
    }
}

pub fn database_url(test: &str) -> Option<String> {
    service_url("DATABASE_URL", test)
}

/// A store on `url` with the schema applied.
pub async fn store_at(url: &str, options: PostgresOptions) -> PostgresKeyStore {
    let store = PostgresKeyStore::connect_with(url, options)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    store
}

/// A store on `DATABASE_URL` with the schema applied; `None` when skipping.
pub async fn store(test: &str) -> Option<PostgresKeyStore> {
    let url = database_url(test)?;
    Some(store_at(&url, PostgresOptions::default()).await)
}

/// A TCP proxy in front of `upstream`. `cut()` closes every connection and refuses new
/// ones (the service looks down); `restore()` lets connections through again.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    up: bool,
    conns: Vec<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState {
            up: true,
            conns: Vec::new(),
        }));
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut st = st.lock().unwrap();
                if !st.up {
                    drop(client);
                    continue;
                }
                st.conns.push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Proxy {
            addr,
            state,
            accept,
        }
    }

    pub fn cut(&self) {
        let mut st = self.state.lock().unwrap();
        st.up = false;
        for c in st.conns.drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.state.lock().unwrap().up = true;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `url` with its host and port replaced by `addr` (URL form `postgres://user:pw@host:port/db`).
pub fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL form of DATABASE_URL");
    let (auth, hostpath) = match rest.rsplit_once('@') {
        Some((a, h)) => (format!("{a}@"), h),
        None => (String::new(), rest),
    };
    let path = hostpath.find(['/', '?']).map_or("", |i| &hostpath[i..]);
    format!("{scheme}://{auth}{addr}{path}")
}

/// The host:port of a URL-form `DATABASE_URL` (default port 5432), resolved.
pub async fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("URL form").1;
    let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = hostpath.find(['/', '?']).unwrap_or(hostpath.len());
    let hostport = &hostpath[..end];
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    tokio::net::lookup_host(hostport)
        .await
        .unwrap()
        .next()
        .unwrap()
}
