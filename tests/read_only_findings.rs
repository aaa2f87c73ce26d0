//! `Engine::record_findings`: what a read-only session found (here a scrub) is written into
//! the health blocks of this array's members only. A handle whose device is not this array's
//! member of the slot it is given for (a blank device, another member: a path that names
//! another device by the time the command ends) is passed over and its bytes stay as they
//! were; the members' block keeps the scrub, which the next open reads back.

mod common;
use common::*;
use ectable::devices::{BlockDevice, MemDevice};
use ectable::{format, Engine, EngineOptions, RebuildOptions};
use std::sync::Arc;

const SIZE: u64 = 64 << 20;
const HEALTH_BLOCK: u64 = 8192;

fn health_block(dev: &dyn BlockDevice) -> Vec<u8> {
    let mut b = ectable::devices::AlignedBuf::new(4096);
    dev.read_at(&mut b, HEALTH_BLOCK)
        .expect("read the health block");
    b.to_vec()
}

fn open_read_only(faulty: &[Arc<ectable::devices::FaultyDevice>]) -> Engine {
    let opts = EngineOptions {
        read_only: true,
        ..Default::default()
    };
    Engine::open(io_of(faulty), opts).expect("read-only open")
}

#[test]
fn findings_are_recorded_only_onto_the_arrays_own_members() {
    let (mems, faulty) = mem_devices(6, SIZE, 3);
    format(io_of(&faulty).as_ref(), &fmt_opts(4, 2)).expect("format");
    {
        let e = open_engine_on(io_of(&faulty));
        for i in 0..200u64 {
            e.put("t", format!("k{i}").as_bytes(), &value_for(i, 3, 1000))
                .expect("put");
        }
        e.sync().expect("sync");
        e.close().expect("close");
    }
    let ro = open_read_only(&faulty);
    assert!(!ro.has_findings(), "nothing found yet");
    let report = ro
        .scrub(false, &RebuildOptions::default(), &mut |_| {})
        .expect("scrub");
    assert!(report.stripes_checked > 0);
    assert!(ro.has_findings(), "a scrub ran");

    let blank = Arc::new(MemDevice::new("blank", SIZE));
    let slot5_before = health_block(&*mems[5]);
    let writable: Vec<(usize, Arc<dyn BlockDevice>)> = vec![
        (2, mems[2].clone()),
        // Not a member at all.
        (3, blank.clone()),
        // A member, but of slot 5.
        (4, mems[5].clone()),
    ];
    assert_eq!(ro.record_findings(&writable), 1, "only slot 2 is written");
    assert!(
        health_block(&*blank).iter().all(|&b| b == 0),
        "the blank device was written"
    );
    assert_eq!(
        health_block(&*mems[5]),
        slot5_before,
        "slot 5's block was written as slot 4's"
    );
    drop(ro);

    // The next open reads the scrub back from slot 2's block.
    let e = open_read_only(&faulty);
    let s = e.status().last_scrub.expect("the scrub was recorded");
    assert!(!s.repair && s.bytes_scanned > 0, "{s:?}");
}
