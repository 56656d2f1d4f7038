//! Prometheus metrics, served on `/metrics` of the HTTP port.
//!
//! Counters are updated on the request path (an atomic add per partition
//! per request, never per record); log sizes are sampled when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// gRPC method, e.g. `Produce`.
    pub api: &'static str,
    /// gRPC status code name, `OK` on success.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeniedLabels {
    /// `Read`, `Write`, ... (the ACL operation).
    pub operation: String,
    /// `topic`, `group` or `cluster`.
    pub resource_type: String,
}

/// Every metric the broker exports.
pub struct Metrics {
    registry: Registry,
    pub bytes_in: Family<TopicLabels, Counter>,
    pub messages_in: Family<TopicLabels, Counter>,
    pub bytes_out: Family<TopicLabels, Counter>,
    pub messages_out: Family<TopicLabels, Counter>,
    pub requests: Family<RequestLabels, Histogram>,
    pub log_size: Family<PartitionLabels, Gauge>,
    pub log_end_offset: Family<PartitionLabels, Gauge>,
    pub log_start_offset: Family<PartitionLabels, Gauge>,
    pub high_watermark: Family<PartitionLabels, Gauge>,
    /// Partitions this broker leads.
    pub leader_partitions: Gauge,
    /// Led partitions whose ISR is smaller than their replica set (Kafka's
    /// `UnderReplicatedPartitions`): what a safe rolling restart waits on.
    pub under_replicated_partitions: Gauge,
    /// Led partitions whose ISR is below `min.insync.replicas`: acks=all
    /// writes to them fail.
    pub under_min_isr_partitions: Gauge,
    /// Requests refused by the authorizer.
    pub authorization_denied: Family<DeniedLabels, Counter>,
    /// Requests with credentials that did not authenticate.
    pub authentication_failed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("runnel");
        let bytes_in = Family::default();
        registry.register(
            "bytes_in",
            "Record batch bytes appended, by topic",
            bytes_in.clone(),
        );
        let messages_in = Family::default();
        registry.register(
            "messages_in",
            "Records appended, by topic",
            messages_in.clone(),
        );
        let bytes_out = Family::default();
        registry.register(
            "bytes_out",
            "Record batch bytes returned by fetches, by topic",
            bytes_out.clone(),
        );
        let messages_out = Family::default();
        registry.register(
            "messages_out",
            "Records in batches returned by fetches, by topic",
            messages_out.clone(),
        );
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~26 s
            Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
        });
        registry.register(
            "request_duration_seconds",
            "gRPC request latency by API and status code (fetch includes long-poll waits)",
            requests.clone(),
        );
        let log_size = Family::default();
        registry.register(
            "log_size_bytes",
            "Bytes on disk per partition",
            log_size.clone(),
        );
        let log_end_offset = Family::default();
        registry.register(
            "log_end_offset",
            "Next offset to be written per partition",
            log_end_offset.clone(),
        );
        let log_start_offset = Family::default();
        registry.register(
            "log_start_offset",
            "First offset still stored per partition",
            log_start_offset.clone(),
        );
        let high_watermark = Family::default();
        registry.register(
            "high_watermark",
            "High watermark per led partition: consumers see offsets below it",
            high_watermark.clone(),
        );
        let leader_partitions = Gauge::default();
        registry.register(
            "leader_partitions",
            "Partitions this broker leads",
            leader_partitions.clone(),
        );
        let under_replicated_partitions = Gauge::default();
        registry.register(
            "under_replicated_partitions",
            "Led partitions whose ISR is smaller than their replica set",
            under_replicated_partitions.clone(),
        );
        let under_min_isr_partitions = Gauge::default();
        registry.register(
            "under_min_isr_partitions",
            "Led partitions whose ISR is below min.insync.replicas (acks=all fails)",
            under_min_isr_partitions.clone(),
        );
        let authorization_denied = Family::default();
        registry.register(
            "authorization_denied",
            "Requests refused by the authorizer, by ACL operation and resource type",
            authorization_denied.clone(),
        );
        let authentication_failed = Counter::default();
        registry.register(
            "authentication_failed",
            "Requests whose bearer token is unknown",
            authentication_failed.clone(),
        );
        Metrics {
            registry,
            authorization_denied,
            authentication_failed,
            high_watermark,
            leader_partitions,
            under_replicated_partitions,
            under_min_isr_partitions,
            bytes_in,
            messages_in,
            bytes_out,
            messages_out,
            requests,
            log_size,
            log_end_offset,
            log_start_offset,
        }
    }

    /// Record one request's outcome and latency.
    pub fn observe_request(&self, api: &'static str, code: tonic::Code, seconds: f64) {
        let code = format!("{code:?}");
        self.requests
            .get_or_create(&RequestLabels { api, code })
            .observe(seconds);
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
