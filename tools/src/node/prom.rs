//! The engine's [`Metrics`] snapshot in the Prometheus text format (prometheus-client's
//! collector interface: the figures are the engine's own counters, copied at each scrape,
//! not a second set kept beside them). docs/node.md lists every family.

use ectable_engine::{bucket_upper_seconds, HistogramSnapshot, Metrics, LATENCY_BUCKETS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt::Error as FmtError;
use std::sync::Arc;

type Labels = Vec<(&'static str, String)>;

/// Renders `metrics` (and the node's own request counts) as Prometheus text.
pub fn render(metrics: Metrics, node: NodeFigures) -> String {
    let mut registry = Registry::with_prefix("ectable");
    registry.register_collector(Box::new(Snapshot(Arc::new((metrics, node)))));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// What the node counts itself.
#[derive(Debug, Clone, Default)]
pub struct NodeFigures {
    /// Requests answered, by outcome class: (class, count).
    pub requests: Vec<(&'static str, u64)>,
    /// Seconds since the node started.
    pub uptime_seconds: f64,
}

#[derive(Debug)]
struct Snapshot(Arc<(Metrics, NodeFigures)>);

struct Out<'a, 'b> {
    enc: &'a mut DescriptorEncoder<'b>,
}

impl Out<'_, '_> {
    fn gauge(&mut self, name: &str, help: &str, v: f64) -> Result<(), FmtError> {
        self.gauges(name, help, &[(Vec::new(), v)])
    }

    fn gauges(&mut self, name: &str, help: &str, rows: &[(Labels, f64)]) -> Result<(), FmtError> {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in rows {
            if labels.is_empty() {
                m.encode_gauge(v)?;
            } else {
                m.encode_family(labels)?.encode_gauge(v)?;
            }
        }
        Ok(())
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) -> Result<(), FmtError> {
        self.counters(name, help, &[(Vec::new(), v)])
    }

    fn counters(&mut self, name: &str, help: &str, rows: &[(Labels, u64)]) -> Result<(), FmtError> {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, v) in rows {
            if labels.is_empty() {
                m.encode_counter::<NoLabelSet, _, f64>(v, None)?;
            } else {
                m.encode_family(labels)?
                    .encode_counter::<NoLabelSet, _, f64>(v, None)?;
            }
        }
        Ok(())
    }

    fn histograms(
        &mut self,
        name: &str,
        help: &str,
        rows: &[(Labels, HistogramSnapshot)],
    ) -> Result<(), FmtError> {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, h) in rows {
            let buckets: Vec<(f64, u64)> = (0..LATENCY_BUCKETS)
                .map(|i| {
                    let upper = bucket_upper_seconds(i);
                    // prometheus-client writes f64::MAX as "+Inf".
                    (
                        if upper.is_finite() { upper } else { f64::MAX },
                        h.buckets[i],
                    )
                })
                .collect();
            let sum = h.sum_ns as f64 / 1e9;
            if labels.is_empty() {
                m.encode_histogram::<NoLabelSet>(sum, h.count(), &buckets, None)?;
            } else {
                m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
                    sum,
                    h.count(),
                    &buckets,
                    None,
                )?;
            }
        }
        Ok(())
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), FmtError> {
        let (m, node) = &*self.0;
        let st = &m.status;
        let mut o = Out { enc: &mut enc };
        let dev = |slot: usize, path: &Option<String>| -> Labels {
            vec![
                ("slot", slot.to_string()),
                ("device", path.clone().unwrap_or_else(|| "-".into())),
            ]
        };

        // The array.
        let state = st.state();
        o.gauges(
            "array_state",
            "1 for the array's state (online, degraded, unavailable), 0 for the others",
            &["online", "degraded", "unavailable"]
                .iter()
                .map(|s| {
                    (
                        vec![("state", s.to_string())],
                        f64::from(state.as_str().eq_ignore_ascii_case(s)),
                    )
                })
                .collect::<Vec<_>>(),
        )?;
        // Sparse member files: the room their file system has, and what they still need.
        let fs = |b: &ectable_engine::BackingFs| -> Labels {
            let slots: Vec<String> = b.slots.iter().map(|s| s.to_string()).collect();
            vec![("slots", slots.join(","))]
        };
        o.gauges(
            "backing_free_bytes",
            "room left on the file system under sparse member files (per file system, by the slots it holds)",
            &st.backing
                .iter()
                .map(|b| (fs(b), b.free_bytes as f64))
                .collect::<Vec<_>>(),
        )?;
        o.gauges(
            "backing_unallocated_bytes",
            "bytes those sparse member files still need to be written in full; more than backing_free_bytes: writes will fail with ENOSPC before the array is full",
            &st.backing
                .iter()
                .map(|b| (fs(b), b.unallocated_bytes as f64))
                .collect::<Vec<_>>(),
        )?;
        o.gauge(
            "writes_stopped",
            "1 when a write failed and the writer stopped (writes are refused until the array is reopened: POST /v1/admin/reopen)",
            f64::from(u8::from(st.writes_stopped.is_some())),
        )?;
        o.gauge(
            "redundancy_left",
            "devices that can still be lost before data is (the durability margin)",
            st.redundancy_left as f64,
        )?;
        o.gauge(
            "spares",
            "hot spares present and working",
            st.spares
                .len()
                .saturating_sub(st.spares_write_refused.len()) as f64,
        )?;
        o.gauge(
            "spares_write_refused",
            "hot spares present whose device refuses writes (set read-only): no replacement can use them",
            st.spares_write_refused.len() as f64,
        )?;
        o.gauge(
            "spares_missing",
            "hot spares the array names that are not present or failed (alert on it: a lost device has no spare to take its slot)",
            st.spares_missing.len() as f64,
        )?;
        if let Some(e) = crate::cmd::durability::status_durability(st) {
            o.gauge(
                "durability_nines_1y",
                "durability estimate as the array stands: nines of P(no data loss within a year), at the AFR and rebuild time status assumes",
                e.durability_nines_1y,
            )?;
            o.gauge(
                "loss_probability_1y",
                "estimated probability of losing data within a year, as the array stands",
                e.loss_probability_1y,
            )?;
        }
        o.gauge(
            "data_shards",
            "k: data chunks per stripe",
            st.data_shards as f64,
        )?;
        o.gauge(
            "parity_shards",
            "m: parity chunks per stripe",
            st.parity_shards as f64,
        )?;
        o.gauge(
            "durable_lsn",
            "every write up to this LSN is durable",
            st.durable_lsn as f64,
        )?;
        o.gauge(
            "next_lsn",
            "the LSN the next write gets",
            st.next_lsn as f64,
        )?;
        o.gauge("keys", "keys in all tables", st.keys as f64)?;

        // Space.
        o.gauge(
            "usable_bytes",
            "record bytes the array can hold",
            st.usable_capacity_bytes as f64,
        )?;
        o.gauge(
            "used_bytes",
            "usable bytes of the segments allocated",
            st.used_bytes as f64,
        )?;
        o.gauge(
            "live_bytes",
            "bytes of the records the index points at",
            st.live_bytes as f64,
        )?;
        o.gauge(
            "garbage_bytes",
            "log bytes no record needs any more (the cleaner reclaims them)",
            st.garbage_bytes as f64,
        )?;
        o.gauge(
            "free_bytes",
            "usable bytes of the segments not allocated",
            st.usable_capacity_bytes.saturating_sub(st.used_bytes) as f64,
        )?;
        o.gauge(
            "fillable_bytes",
            "record bytes the live data may fill at most (the reserve and the checkpoint left out)",
            st.fillable_bytes as f64,
        )?;
        o.gauge(
            "room_bytes",
            "record bytes of new data that still fit once the cleaner has reclaimed the garbage",
            st.fill().map_or(0, |f| f.1) as f64,
        )?;
        o.gauge(
            "free_segments",
            "segments that can still be allocated",
            st.free_segments as f64,
        )?;
        o.gauge(
            "total_segments",
            "segments the array holds",
            st.total_segments as f64,
        )?;

        // The write path.
        o.counter(
            "stripes_written",
            "stripes written since open",
            st.stripes_written,
        )?;
        o.counter(
            "short_stripes_written",
            "stripes sealed early for a waiting writer",
            st.short_stripes_written,
        )?;
        o.counter(
            "records_continued",
            "records that continued in the next stripe (format version 5)",
            st.records_continued,
        )?;
        o.counter(
            "journal_entries_written",
            "sync journal entries written",
            st.journal_entries_written,
        )?;
        o.counter(
            "journal_entries_by_caller",
            "sync journal entries a syncing caller wrote from its own thread",
            st.journal_entries_by_caller,
        )?;
        o.counter(
            "chunk_bytes_written",
            "chunk bytes written, parity and headers included",
            st.chunk_bytes_written,
        )?;
        o.counter(
            "payload_bytes_written",
            "record bytes written in stripes",
            st.payload_bytes_written,
        )?;
        o.counter(
            "degraded_writes",
            "stripes written with fewer than k + m chunks",
            st.degraded_writes,
        )?;
        o.counter(
            "degraded_reads",
            "record reads the fast path could not serve",
            st.degraded_reads,
        )?;
        o.counter(
            "read_repairs",
            "chunks rewritten by read-repair",
            st.read_repairs,
        )?;
        o.counter(
            "superblocks_rewritten",
            "probe rounds that found a spoiled superblock copy and rewrote the superblocks",
            st.superblocks_rewritten,
        )?;

        // The cleaner.
        let c = &st.cleaner;
        o.counter(
            "cleaner_segments_cleaned",
            "victim segments cleaned",
            c.segments_cleaned,
        )?;
        o.counter(
            "cleaner_bytes_relocated",
            "live record bytes the cleaner moved",
            c.bytes_relocated,
        )?;
        // What the callers wrote: every payload byte but the cleaner's moves and the index
        // checkpoints.
        let callers = st
            .payload_bytes_written
            .saturating_sub(c.bytes_relocated)
            .saturating_sub(st.checkpoint_bytes_written);
        let wa = if callers > 0 {
            st.payload_bytes_written as f64 / callers as f64
        } else {
            1.0
        };
        o.gauge(
            "cleaner_write_amplification",
            "record bytes written per record byte the callers wrote, since open",
            wa,
        )?;

        // Per device.
        o.gauges(
            "device_state",
            "1 for the member's state, with the state as a label",
            &st.devices
                .iter()
                .map(|d| {
                    let mut l = dev(d.slot, &d.path);
                    l.push(("state", d.state.as_str().to_string()));
                    (l, 1.0)
                })
                .collect::<Vec<_>>(),
        )?;
        let per = |f: &dyn Fn(&ectable_engine::DeviceIoSnapshot) -> u64| -> Vec<(Labels, u64)> {
            m.devices
                .iter()
                .map(|d| (dev(d.slot, &d.path), f(&d.io)))
                .collect()
        };
        o.counters(
            "device_reads",
            "reads completed on the device",
            &per(&|io| io.reads),
        )?;
        o.counters(
            "device_writes",
            "writes completed on the device",
            &per(&|io| io.writes),
        )?;
        o.counters(
            "device_flushes",
            "flushes completed on the device",
            &per(&|io| io.flushes),
        )?;
        o.counters(
            "device_read_bytes",
            "bytes read from the device",
            &per(&|io| io.read_bytes),
        )?;
        o.counters(
            "device_written_bytes",
            "bytes written to the device",
            &per(&|io| io.write_bytes),
        )?;
        o.counters(
            "device_io_errors",
            "operations the device failed",
            &per(&|io| io.errors),
        )?;
        let errs = |f: &dyn Fn(&ectable_engine::DeviceStatus) -> u64| -> Vec<(Labels, u64)> {
            st.devices
                .iter()
                .map(|d| (dev(d.slot, &d.path), f(d)))
                .collect()
        };
        o.counters(
            "device_read_errors",
            "read errors the engine counted on the member",
            &errs(&|d| d.read_errors),
        )?;
        o.counters(
            "device_write_errors",
            "write and flush errors the engine counted on the member",
            &errs(&|d| d.write_errors),
        )?;
        o.counters(
            "device_checksum_errors",
            "chunks from the member that failed their checksum or identity",
            &errs(&|d| d.checksum_errors),
        )?;
        o.histograms(
            "device_io_latency_seconds",
            "latency of the device's reads and writes",
            &m.devices
                .iter()
                .map(|d| (dev(d.slot, &d.path), d.io.latency))
                .collect::<Vec<_>>(),
        )?;

        // The calls.
        o.histograms(
            "op_latency_seconds",
            "latency of the engine's calls",
            &[
                (vec![("op", "put".to_string())], m.put),
                (vec![("op", "get".to_string())], m.get),
                (vec![("op", "sync".to_string())], m.sync),
                (vec![("op", "scan".to_string())], m.scan),
            ],
        )?;

        // Maintenance.
        let (kind, frac) = match &m.activity {
            Some(a) => (
                a.kind.as_str(),
                if a.progress.bytes_total > 0 {
                    a.progress.bytes_scanned as f64 / a.progress.bytes_total as f64
                } else {
                    0.0
                },
            ),
            None => ("", 0.0),
        };
        o.gauges(
            "maintenance_progress_ratio",
            "how far the scrub or rebuild in progress is (0..1); absent kinds are 0",
            &["scrub", "rebuild"]
                .iter()
                .map(|k| {
                    (
                        vec![("kind", k.to_string())],
                        if *k == kind { frac } else { 0.0 },
                    )
                })
                .collect::<Vec<_>>(),
        )?;
        o.gauge(
            "rebuild_pending",
            "1 when a rebuild is recorded as in progress (it resumes on 'rebuild')",
            f64::from(st.rebuild.is_some()),
        )?;
        // When the last scrub and the last rebuild or resync finished (0: none recorded), so
        // that an alert can ask "no scrub for 8 days", and what they could not rebuild.
        let by_kind = |scrub: f64, rebuild: f64| -> Vec<(Labels, f64)> {
            vec![
                (vec![("kind", "scrub".to_string())], scrub),
                (vec![("kind", "rebuild".to_string())], rebuild),
            ]
        };
        let (scrub, rebuild) = (st.last_scrub, st.last_rebuild);
        o.gauges(
            "last_scan_finished_timestamp_seconds",
            "when the last scrub, and the last rebuild or resync, finished (Unix time; 0: none recorded)",
            &by_kind(
                scrub.map_or(0.0, |s| s.finished_unix_nanos as f64 / 1e9),
                rebuild.map_or(0.0, |r| r.finished_unix_nanos as f64 / 1e9),
            ),
        )?;
        o.gauges(
            "last_scan_unrecoverable_stripes",
            "stripes holding live records the last scrub, or the last rebuild or resync, could not rebuild",
            &by_kind(
                scrub.map_or(0.0, |s| s.unrecoverable as f64),
                rebuild.map_or(0.0, |r| r.unrecoverable as f64),
            ),
        )?;

        // The node.
        if !node.requests.is_empty() {
            o.counters(
                "node_requests",
                "requests the node answered, by class of status code",
                &node
                    .requests
                    .iter()
                    .map(|(c, n)| (vec![("class", c.to_string())], *n))
                    .collect::<Vec<_>>(),
            )?;
        }
        o.gauge(
            "node_uptime_seconds",
            "seconds since the node started",
            node.uptime_seconds,
        )?;
        Ok(())
    }
}
