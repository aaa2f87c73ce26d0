//! ectable: an embeddable table store on Reed-Solomon coded stripes over raw block devices.
//!
//! This facade re-exports the engine API ([`ectable_engine`]) and the device layer
//! ([`devices`]) so that an embedding storage node depends on one crate.

pub use ectable_devices as devices;
pub use ectable_engine::*;
