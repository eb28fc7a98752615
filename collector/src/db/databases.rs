//! Connection pools, one per Odoo database, built from the URL template
//! (`{db}` is replaced by the database name, which ingest has validated).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::{Error, Result};

/// PostgreSQL's port when the URL names none.
const DEFAULT_PORT: u16 = 5432;

pub struct Databases {
    template: String,
    pool_size: usize,
    pools: Mutex<HashMap<String, Pool>>,
}

/// Refused names never get near a connection string: proto's one rule.
pub use egress_proto::database::valid_database_name;

/// The connection settings for one database.
pub fn config_for(template: &str, database: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = template
        .replace("{db}", database)
        .parse()
        .map_err(|e| Error::Config(format!("database URL does not parse: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.application_name("egress-collector");
    pin_search_path(&mut config);
    Ok(config)
}

/// Every egress session resolves names in `pg_catalog` only (and its own
/// temporary schema last): a function or operator that Odoo's role puts in
/// `public` can never stand in for a built-in in our statements, which name
/// every relation with its schema.
pub fn pin_search_path(config: &mut tokio_postgres::Config) {
    let options = match config.get_options() {
        Some(given) if !given.is_empty() => format!("-c search_path=pg_catalog,pg_temp {given}"),
        _ => "-c search_path=pg_catalog,pg_temp".to_owned(),
    };
    config.options(&options);
}

impl Databases {
    /// Checks the template once, at start-up, with a sample name.
    pub fn new(template: &str, pool_size: usize) -> Result<Self> {
        config_for(template, "sample")?;
        Ok(Databases {
            template: template.to_owned(),
            pool_size,
            pools: Mutex::new(HashMap::new()),
        })
    }

    /// The TCP hosts of the database URL with their ports (none for a Unix
    /// socket): the database's own endpoint is `local`, whatever its name
    /// (DESIGN §4); another port of that host is another service.
    pub fn tcp_endpoints(&self) -> Vec<(String, u16)> {
        config_for(&self.template, "sample")
            .map(|c| {
                // One port for every host, one per host, or none (5432).
                let ports = c.get_ports();
                c.get_hosts()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| match h {
                        tokio_postgres::config::Host::Tcp(name) => {
                            let port = match ports {
                                [] => DEFAULT_PORT,
                                [one] => *one,
                                many => many.get(i).copied().unwrap_or(DEFAULT_PORT),
                            };
                            Some((name.clone(), port))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A pooled connection to `database`, or an error that says why not.
    pub async fn client(&self, database: &str) -> Result<Object> {
        connect(self.pool(database), database).await
    }

    /// A connection of its own to `database`, outside the pool, named
    /// `application_name` in `pg_stat_activity`: for work that holds a
    /// connection for minutes (an export), which must not take one of the
    /// few pooled connections that the appenders write through.
    pub async fn dedicated(
        &self,
        database: &str,
        application_name: &str,
    ) -> Result<tokio_postgres::Client> {
        let (client, connection) = self.unpooled(database, application_name).await?;
        // Ends when the client is dropped (and with it any open transaction).
        actix_rt::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "Dedicated database connection ended.");
            }
        });
        Ok(client)
    }

    /// A connection outside the pool whose driving is left to the caller
    /// (to receive its notifications with `poll_message`).
    pub async fn unpooled(
        &self,
        database: &str,
        application_name: &str,
    ) -> Result<(
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    )> {
        let mut config = config_for(&self.template, database)?;
        config.application_name(application_name);
        config.connect(NoTls).await.map_err(|e| Error::Pool {
            database: database.to_owned(),
            reason: crate::error::chain_text(&e),
        })
    }

    pub fn pool(&self, database: &str) -> Result<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(database) {
            return Ok(pool.clone());
        }
        let manager = Manager::from_config(
            config_for(&self.template, database)?,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::Pool {
                database: database.to_owned(),
                reason: e.to_string(),
            })?;
        pools.insert(database.to_owned(), pool.clone());
        Ok(pool)
    }
}

impl Databases {
    /// Drops the pool of a name that is no database (those who hold a
    /// clone keep it until they are done).
    pub fn forget(&self, database: &str) {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(database);
    }
}

/// A connection from `pool` (taken before a future that must own it).
pub async fn connect(pool: Result<Pool>, database: &str) -> Result<Object> {
    pool?.get().await.map_err(|e| match &e {
        // The server answered: no such database. Not an outage to spool for.
        deadpool_postgres::PoolError::Backend(pg)
            if pg.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) =>
        {
            Error::NoSuchDatabase {
                database: database.to_owned(),
            }
        }
        _ => Error::Pool {
            database: database.to_owned(),
            reason: crate::error::chain_text(&e),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_its_tcp_endpoints_but_not_sockets() {
        let tcp = Databases::new("host=db.internal.example,10.0.0.7 dbname={db}", 1).unwrap();
        let endpoints = |e: &[(&str, u16)]| -> Vec<(String, u16)> {
            e.iter().map(|(h, p)| (h.to_string(), *p)).collect()
        };
        assert_eq!(
            tcp.tcp_endpoints(),
            endpoints(&[("db.internal.example", 5432), ("10.0.0.7", 5432)])
        );
        let ports = Databases::new("host=a,b port=5433,6432 dbname={db}", 1).unwrap();
        assert_eq!(
            ports.tcp_endpoints(),
            endpoints(&[("a", 5433), ("b", 6432)])
        );
        let url = Databases::new("postgres://egress@127.0.0.1:6543/{db}", 1).unwrap();
        assert_eq!(url.tcp_endpoints(), endpoints(&[("127.0.0.1", 6543)]));
        let socket = Databases::new("host=/var/run/postgresql dbname={db}", 1).unwrap();
        assert!(socket.tcp_endpoints().is_empty());
    }

    #[test]
    fn fills_the_database_into_both_url_styles() {
        let kv = config_for("host=/var/run/postgresql user=c dbname={db}", "x").unwrap();
        assert_eq!(kv.get_dbname(), Some("x"));
        let url = config_for("postgres://c@%2Fvar%2Frun%2Fpostgresql/{db}", "y").unwrap();
        assert_eq!(url.get_dbname(), Some("y"));
    }
}
