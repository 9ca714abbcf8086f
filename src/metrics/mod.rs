//! Prometheus metrics on `GET /metrics`: HTTP requests and their latency (a middleware),
//! GraphQL operations by type and outcome with their latency (counted by the HTTP handler,
//! and by an async-graphql extension on the websocket schema),
//! storage calls (a wrapper around the object store), and — read at scrape time — active
//! subscriptions, realtime deliveries, listener reconnects and the request pool's use.
//!
//! Here the registry and what is read at scrape time; `graphql.rs` the extension that counts
//! websocket operations, `store.rs` the object store wrapper; the HTTP side (`GET /metrics`
//! and the request middleware) is `http/metrics.rs`.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client: a registry per
//! application (tests run many apps in one process, so no global recorder), and OpenMetrics
//! text, which Prometheus scrapes natively.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest, NextSubscribe,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response as GqlResponse, ServerResult, Variables};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sea_orm::DatabaseConnection;

use crate::auth::SharedSecret;
use crate::config::Secret;
use crate::realtime::Realtime;
use crate::storage::{ObjectInfo, ObjectPath, ObjectStore, SignedUpload, StorageError, Transform, UploadRules};

mod graphql;
mod store;

pub use graphql::GraphqlMetrics;
pub use store::MeteredStore;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    /// The route pattern (`/graphql`, `/storage/v1/object/{bucket}/{*path}`), never the raw path.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    /// `query`, `mutation`, `subscription`, or `unknown` (the document did not parse).
    operation: &'static str,
    /// `ok`, or the first error's `extensions.code` (`FORBIDDEN`, `INTERNAL`, …).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationTypeLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    call: &'static str,
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The application's metrics. Cheap to share; updating a metric takes no lock but the
/// label family's map.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    graphql_operations: Family<OperationLabels, Counter>,
    graphql_duration: HistogramFamily<OperationTypeLabels>,
    storage_calls: Family<StorageLabels, Counter>,
    storage_duration: HistogramFamily<StorageLabels>,
    /// `WARD_METRICS_TOKEN`: scrapes must present it as a bearer token.
    scrape_token: Option<SharedSecret>,
}

impl Metrics {
    /// Metrics for one application; `realtime` and `pool` are read at each scrape, which must
    /// present `scrape_token` when one is given.
    pub fn new(
        realtime: Realtime,
        pool: DatabaseConnection,
        pool_max: u32,
        scrape_token: Option<&Secret>,
    ) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("ward_http_requests", "HTTP requests answered, by route and status", http_requests.clone());
        let http_duration =
            HistogramFamily::<RouteLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "ward_http_request_duration_seconds",
            "Time to answer an HTTP request (for websockets: the upgrade)",
            http_duration.clone(),
        );
        let graphql_operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "ward_graphql_operations",
            "GraphQL operations (HTTP and websocket), by type and outcome; a subscription counts once, at its first response",
            graphql_operations.clone(),
        );
        let graphql_duration =
            HistogramFamily::<OperationTypeLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "ward_graphql_operation_duration_seconds",
            "Time to execute a query or mutation, from parsing to the response",
            graphql_duration.clone(),
        );
        let storage_calls = Family::<StorageLabels, Counter>::default();
        registry.register("ward_storage_calls", "Object storage calls, by call and outcome", storage_calls.clone());
        let storage_duration =
            HistogramFamily::<StorageLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "ward_storage_call_duration_seconds",
            "Time an object storage call took",
            storage_duration.clone(),
        );
        registry.register_collector(Box::new(Live { realtime, pool, pool_max }));
        Arc::new(Metrics {
            registry,
            http_requests,
            http_duration,
            graphql_operations,
            graphql_duration,
            storage_calls,
            storage_duration,
            scrape_token: scrape_token.and_then(SharedSecret::new),
        })
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Counts and times one answered HTTP request by its route pattern.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let (method, route) = (method.to_string(), route.to_string());
        self.http_duration
            .get_or_create(&RouteLabels { method: method.clone(), route: route.clone() })
            .observe(elapsed.as_secs_f64());
        self.http_requests.get_or_create(&HttpLabels { method, route, status }).inc();
    }

    pub fn observe_operation(&self, operation: &'static str, response: &GqlResponse, elapsed: Option<Duration>) {
        self.graphql_operations.get_or_create(&OperationLabels { operation, outcome: outcome(response) }).inc();
        if let Some(elapsed) = elapsed {
            self.graphql_duration.get_or_create(&OperationTypeLabels { operation }).observe(elapsed.as_secs_f64());
        }
    }

    /// A GraphQL request refused before it ran (a bad credential), by its error code.
    pub fn graphql_refused(&self, code: &str) {
        self.graphql_operations
            .get_or_create(&OperationLabels { operation: "unknown", outcome: code.to_string() })
            .inc();
    }

    fn observe_storage(&self, call: &'static str, ok: bool, elapsed: Duration) {
        let labels = StorageLabels { call, outcome: if ok { "ok" } else { "error" } };
        self.storage_calls.get_or_create(&labels).inc();
        self.storage_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// The GraphQL extension that counts operations into these metrics.
    pub fn graphql_extension(self: &Arc<Self>) -> GraphqlMetrics {
        GraphqlMetrics(self.clone())
    }
}

/// `ok`, or the first error's code.
fn outcome(response: &GqlResponse) -> String {
    match response.errors.first() {
        None => "ok".to_string(),
        Some(error) => match error.extensions.as_ref().and_then(|x| x.get("code")) {
            Some(async_graphql::Value::String(code)) if is_code(code) => code.clone(),
            _ => "error".to_string(),
        },
    }
}

/// Error codes are SCREAMING_SNAKE words; anything else must not become a label value.
fn is_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 40 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
}

/// What is read when Prometheus scrapes, rather than counted as it happens.
#[derive(Debug)]
struct Live {
    realtime: Realtime,
    pool: DatabaseConnection,
    pool_max: u32,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let active = i64::try_from(self.realtime.subscriber_count()).unwrap_or(i64::MAX);
        gauge(&mut encoder, "ward_subscriptions_active", "ticketUpdates subscriptions open in this process", active)?;
        let stats = self.realtime.stats();
        let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        counter(
            &mut encoder,
            "ward_realtime_events",
            "Ticket events the listener fanned out",
            read(&stats.events_fanned_out),
        )?;
        counter(
            &mut encoder,
            "ward_realtime_deliveries",
            "Ticket updates delivered to subscribers",
            read(&stats.deliveries),
        )?;
        counter(
            &mut encoder,
            "ward_realtime_group_renders",
            "Ticket updates rendered once for a group of subscribers of the same document",
            read(&stats.group_renders),
        )?;
        counter(
            &mut encoder,
            "ward_realtime_group_deliveries",
            "Ticket updates sent as their group's rendered payload",
            read(&stats.group_deliveries),
        )?;
        counter(
            &mut encoder,
            "ward_realtime_slow_consumers",
            "Subscriptions ended because they fell behind",
            read(&stats.slow_consumers),
        )?;
        counter(
            &mut encoder,
            "ward_realtime_listener_reconnects",
            "Times the LISTEN connection was lost and re-established",
            read(&stats.listener_reconnects),
        )?;
        let pool = self.pool.get_postgres_connection_pool();
        let (size, idle) = (i64::from(pool.size()), i64::try_from(pool.num_idle()).unwrap_or(0));
        let mut family = encoder.encode_descriptor(
            "ward_db_pool_connections",
            "Connections of the request pool, by state",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        ConstGauge::new(size - idle).encode(family.encode_family(&[("state", "in_use")])?)?;
        ConstGauge::new(idle).encode(family.encode_family(&[("state", "idle")])?)?;
        gauge(&mut encoder, "ward_db_pool_max_connections", "The request pool's size limit", i64::from(self.pool_max))
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Metrics {
    /// The token scrapes must present, when `WARD_METRICS_TOKEN` is set.
    pub fn scrape_token(&self) -> Option<&SharedSecret> {
        self.scrape_token.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_code_shaped_outcomes_become_labels() {
        assert!(is_code("FORBIDDEN") && is_code("GRAPHQL_PARSE_FAILED"));
        assert!(!is_code("") && !is_code("drop table") && !is_code("Forbidden"));
    }
}
