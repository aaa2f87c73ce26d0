//! `ectable reopen`: makes a running node close the array and open it again, once a failure
//! that stopped its writes has been put right (more than m devices failed at once and came
//! back, the file system under sparse member files was given room). Without a node there
//! is nothing to do: every other command opens the array anew.

use crate::cmd::common::DevicesArg;
use anyhow::Result;
use serde_json::json;

/// `ectable reopen`.
pub fn reopen(dev: &DevicesArg) -> Result<i32> {
    let Some(node) = crate::node::client::find(dev)? else {
        // Bad input still gets an error: devices that are not there, or not an array.
        let paths = crate::cmd::common::devices(dev)?;
        if !paths.iter().any(|p| p.exists()) {
            crate::fail!(
                crate::exit::NO_INPUT,
                "none of the devices exists: {}",
                dev.devices
            );
        }
        if crate::cmd::examine::examine(&paths).arrays.is_empty() {
            crate::fail!(
                crate::exit::CONFIG,
                "no ectable array on these devices: {}",
                dev.devices
            );
        }
        println!(
            "reopen: no running node holds these devices; every ectable command opens the array anew, so there is nothing to reopen"
        );
        return Ok(crate::exit::OK);
    };
    let v = node.post_long("/v1/admin/reopen", &json!({}))?;
    println!(
        "reopen: the node reopened the array: {} before, {} now (replayed {} stripes in {:.2} s; durable to LSN {})",
        v["state_before"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        v["replayed_stripes"].as_u64().unwrap_or(0),
        v["elapsed_ns"].as_u64().unwrap_or(0) as f64 / 1e9,
        v["durable_lsn"].as_u64().unwrap_or(0)
    );
    Ok(crate::exit::OK)
}
