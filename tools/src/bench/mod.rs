//! The `ecbench` workloads, one module per workload, and what they share: the command line
//! (`args`), the checks before anything is written (`checks`), the one setup path of the
//! measured workloads (`setup`), measuring (`measure`), the raw pass (`raw`) and the report
//! (`report`, in fio's layout with `units`). The binary (`src/bin/ecbench.rs`) parses the
//! command line and calls `kv::run`, `tables::run` or `space::run`.
//! `chart` draws a run as one SVG file: throughput over time and latency by percentile.

pub mod args;
pub mod chart;
pub mod checks;
pub mod jobfile;
pub mod kv;
pub mod logs;
pub mod measure;
pub mod raw;
pub mod report;
pub mod setup;
pub mod space;
pub mod tables;
pub mod units;
