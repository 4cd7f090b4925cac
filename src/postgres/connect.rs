//! [`ConnectionSettings`]: a connection string resolved into tokio-postgres's settings and
//! the TLS its `sslmode` and `sslrootcert` ask for (see the module docs' TLS section).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

#[cfg(feature = "postgres-tls")]
use super::rustls::MakeRustls;
use super::sql::err;
use super::tls::{plan, split_tls_params, Plan, TlsConfigError};
use crate::store::StoreError;

/// A connection string resolved: tokio-postgres's [`Config`] and the TLS connector its
/// `sslmode` and `sslrootcert` ask for, with libpq's meaning (see [the module
/// docs](super#tls)). What [`PostgresKeyStore::connect`](super::PostgresKeyStore::connect)
/// and its revocation listener connect with; for a pool of your own, take
/// [`ConnectionSettings::manager`] and [`PostgresKeyStore::from_pool`](super::PostgresKeyStore::from_pool).
///
/// ```no_run
/// use ark_auth::postgres::ConnectionSettings;
///
/// # async fn run() -> Result<(), ark_auth::store::StoreError> {
/// let settings = ConnectionSettings::from_url(
///     "postgres://ark:secret@db.example.com/ark?sslmode=verify-full&sslrootcert=/etc/ark/db-ca.pem",
/// )?;
/// let client = settings.connect().await?;
/// client.simple_query("SELECT 1").await.map_err(ark_auth::store::StoreError::new)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ConnectionSettings {
    pub(super) config: Config,
    pub(super) tls: Tls,
}

/// The connector: none (plain connections only) or rustls.
#[derive(Clone)]
pub(super) enum Tls {
    Off,
    #[cfg(feature = "postgres-tls")]
    Rustls(MakeRustls),
}

impl fmt::Debug for ConnectionSettings {
    /// Hosts, ports, database and TLS mode; never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("dbname", &self.config.get_dbname())
            .field("ssl_mode", &self.config.get_ssl_mode())
            .finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// Parses `url` (`postgres://user:password@host:port/db?sslmode=…&sslrootcert=…`, or the
    /// key=value form) and prepares its TLS: reads the root certificates now, so a missing
    /// or unreadable `sslrootcert` fails here, naming the file. Errors never show the URL.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let params = split_tls_params(url);
        let default_root = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
            .filter(|path| path.is_file());
        let plan = plan(
            params.sslmode.as_deref(),
            params.sslrootcert.as_deref(),
            default_root,
        )
        .map_err(StoreError::new)?;
        let mut config = Config::from_str(&params.rest).map_err(err)?;
        let tls = tls_for(&plan).map_err(StoreError::new)?;
        config.ssl_mode(match tls {
            Tls::Off => SslMode::Disable,
            #[cfg(feature = "postgres-tls")]
            Tls::Rustls(_) => plan.ssl_mode(),
        });
        Ok(ConnectionSettings { config, tls })
    }

    /// tokio-postgres's settings (host, user, timeouts…).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The settings, to change (say, `connect_timeout`). Change the TLS through the URL.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// A deadpool manager making connections with these settings and their TLS.
    pub fn manager(&self, manager_config: ManagerConfig) -> Manager {
        match &self.tls {
            Tls::Off => Manager::from_config(self.config.clone(), NoTls, manager_config),
            #[cfg(feature = "postgres-tls")]
            Tls::Rustls(tls) => {
                Manager::from_config(self.config.clone(), tls.clone(), manager_config)
            }
        }
    }

    /// One connection, driven by a task of its own (it ends when the client is dropped or
    /// the connection fails). Must be called inside a tokio runtime.
    pub async fn connect(&self) -> Result<Client, StoreError> {
        match &self.tls {
            Tls::Off => {
                let (client, conn) = self.config.connect(NoTls).await.map_err(err)?;
                tokio::spawn(conn);
                Ok(client)
            }
            #[cfg(feature = "postgres-tls")]
            Tls::Rustls(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await.map_err(err)?;
                tokio::spawn(conn);
                Ok(client)
            }
        }
    }
}

#[cfg(feature = "postgres-tls")]
fn tls_for(plan: &Plan) -> Result<Tls, TlsConfigError> {
    match plan {
        Plan::Plain => Ok(Tls::Off),
        Plan::Prefer(verify, roots) | Plan::Require(verify, roots) => {
            Ok(Tls::Rustls(MakeRustls::new(*verify, roots.as_ref())?))
        }
    }
}

/// Without the `postgres-tls` feature: `prefer` is plain (what libpq does against a server
/// without TLS); anything that needs TLS is refused rather than sent in plain text.
#[cfg(not(feature = "postgres-tls"))]
fn tls_for(plan: &Plan) -> Result<Tls, TlsConfigError> {
    match plan {
        Plan::Plain | Plan::Prefer(..) => Ok(Tls::Off),
        Plan::Require(..) => Err(TlsConfigError(
            "this sslmode needs TLS: build ark-auth with the `postgres-tls` feature".into(),
        )),
    }
}
