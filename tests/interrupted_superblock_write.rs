//! A power cut in the middle of a superblock write: some members took the new epoch, the
//! others still hold the one before. Every acknowledged write must read back after the
//! reopen, however few members took it (docs/design.md invariant 1), and `rebuild` must
//! bring the members left behind (stale) back into service.

mod common;
use common::power_switch::{no_cleaner, session, Power};
use common::*;
use ectable::devices::{BlockDevice, MemDevice};
use ectable::{format, ArrayState, Engine, EngineOptions, RebuildOptions};
use std::sync::Arc;

const N: usize = 6;
const K: usize = 4;
const M: usize = 2;

/// The superblock area (both copies) of every device.
fn superblocks(mems: &[Arc<MemDevice>]) -> Vec<Vec<u8>> {
    mems.iter()
        .map(|m| {
            let mut b = vec![0u8; 8192];
            m.read_at(&mut b, 0).expect("read superblocks");
            b
        })
        .collect()
}

#[test]
fn a_superblock_write_cut_after_some_members_loses_nothing() {
    for took in 0..=N {
        let what = format!("{took} of {N} members took the new epoch");
        let mems = memory_devices(N, 16 << 20);
        format(io_of(&wrap(&mems, 1)).as_ref(), &fmt_opts(K, M)).expect("format");
        let (e, power) = session(&mems, 2, no_cleaner());
        let mut rows = Vec::new();
        for i in 0..200u64 {
            let key = format!("a{i:05}").into_bytes();
            let v = value_for(i, 3, 100 + (i as usize * 53) % 3000);
            e.put_sync("t", &key, &v).expect("put_sync");
            rows.push((key, v));
        }
        e.checkpoint().expect("checkpoint");
        for i in 0..200u64 {
            let key = format!("b{i:05}").into_bytes();
            let v = value_for(1000 + i, 3, 100 + (i as usize * 71) % 3000);
            e.put_sync("t", &key, &v).expect("put_sync");
            rows.push((key, v));
        }
        let before = superblocks(&mems);
        // A superblock write (a checkpoint's), then the power goes.
        e.checkpoint().expect("checkpoint");
        power.cut();
        drop(e);
        // Only the first `took` members' writes reached the media.
        for (d, m) in mems.iter().enumerate().skip(took) {
            m.write_at(&before[d], 0)
                .expect("put the old superblocks back");
        }
        let e = Engine::open(io_of(&wrap(&mems, 4)), EngineOptions::default())
            .unwrap_or_else(|err| panic!("{what}: reopen: {err}"));
        let st = e.status();
        let out: Vec<String> = st
            .devices
            .iter()
            .filter(|d| !d.in_service)
            .map(|d| format!("{} {}", d.slot, d.state.as_str()))
            .collect();
        eprintln!("{what}: not in service at the reopen: {out:?}");
        // The cut state is what was meant: the members left behind are stale (they count
        // as missing for redundancy until resynced, but their verified chunks are read),
        // unless more than m are: then the write was cut short (an old copy put back is
        // one device, or a few) and they missed nothing else: in sync.
        let behind = if took == 0 || N - took > M {
            0
        } else {
            N - took
        };
        assert_eq!(out.len(), behind, "{what}: {out:?}");
        for (k, v) in &rows {
            match e.get("t", k) {
                Ok(Some(got)) => assert!(got == *v, "{what}: wrong value"),
                other => panic!(
                    "{what}: {} not readable: {other:?}",
                    String::from_utf8_lossy(k)
                ),
            }
        }
        if !out.is_empty() {
            e.rebuild(&RebuildOptions::default(), &mut |_| {})
                .unwrap_or_else(|err| panic!("{what}: resync: {err}"));
        }
        assert!(
            e.status().devices.iter().all(|d| d.in_service),
            "{what}: not every member in service after the resync"
        );
    }
}

/// A key and its value.
type Row = (Vec<u8>, Vec<u8>);

/// Six memory members formatted RS(4,2) and a seventh blank device, open, with 100 rows
/// written each durable: the devices, the engine and the rows.
fn six_members_and_a_blank() -> (Vec<Arc<MemDevice>>, Engine, Arc<Power>, Vec<Row>) {
    let mems = memory_devices(N + 1, 16 << 20);
    format(io_of(&wrap(&mems[..N], 1)).as_ref(), &fmt_opts(K, M)).expect("format");
    let (e, power) = session(&mems, 2, EngineOptions::default());
    let mut rows = Vec::new();
    for i in 0..100u64 {
        let key = format!("a{i:05}").into_bytes();
        let v = value_for(i, 3, 100 + (i as usize * 53) % 3000);
        e.put_sync("t", &key, &v).expect("put_sync");
        rows.push((key, v));
    }
    (mems, e, power, rows)
}

/// A superblock write cut between the seventh device and the six members: the side that
/// did not take it (the members when `seventh_took`, else the seventh) gets `before` back.
fn cut_between(mems: &[Arc<MemDevice>], before: &[Vec<u8>], seventh_took: bool) {
    for (d, m) in mems.iter().enumerate() {
        if (d == N) != seventh_took {
            m.write_at(&before[d], 0)
                .expect("put the old superblocks back");
        }
    }
}

/// A power cut in the middle of `add_spare`'s superblock write, each way: only the new
/// spare took the new epoch (it names itself in a member list the members never got), or
/// only the members did (they name a spare whose device holds nothing). Either way the
/// array reopens with every row, and says what became of the spare.
#[test]
fn a_superblock_write_of_add_spare_cut_half_way_loses_nothing() {
    for spare_took in [true, false] {
        let what = if spare_took {
            "only the spare took the new epoch"
        } else {
            "only the members took the new epoch"
        };
        let (mems, e, power, rows) = six_members_and_a_blank();
        let before = superblocks(&mems);
        e.add_spare(N).expect("add_spare");
        power.cut();
        drop(e);
        cut_between(&mems, &before, spare_took);
        let e = Engine::open(io_of(&wrap(&mems, 4)), EngineOptions::default())
            .unwrap_or_else(|err| panic!("{what}: reopen: {err}"));
        let st = e.status();
        eprintln!(
            "{what}: state {:?}, spares {:?}, missing {:?}, unrecognised {:?}, not in service {:?}",
            st.state(),
            st.spares,
            st.spares_missing,
            st.unrecognised,
            st.devices
                .iter()
                .filter(|d| !d.in_service)
                .map(|d| d.slot)
                .collect::<Vec<_>>()
        );
        assert!(
            st.devices.iter().all(|d| d.in_service),
            "{what}: a member is out of service"
        );
        for (k, v) in &rows {
            assert_eq!(
                e.get("t", k).expect("get").as_deref(),
                Some(&v[..]),
                "{what}"
            );
        }
        // Said: a spare not used (its adding cut short), or the spare the members name
        // missing; and added again, it is the spare.
        assert!(st.spares.is_empty(), "{what}: {:?}", st.spares);
        if spare_took {
            assert!(
                st.unrecognised
                    .iter()
                    .any(|(_, why)| why.contains("adding was cut short")),
                "{what}: {:?}",
                st.unrecognised
            );
            e.add_spare(N).expect("add the spare again");
        } else {
            assert_eq!(st.spares_missing.len(), 1, "{what}");
            e.add_spare_in_place_of_missing(N)
                .expect("add the spare again in the missing one's place");
        }
        e.close().expect("close");
        let e = Engine::open(io_of(&wrap(&mems, 5)), EngineOptions::default()).expect("open");
        let st = e.status();
        assert_eq!(st.spares.len(), 1, "{what}: {st:?}");
        assert!(st.spares_missing.is_empty(), "{what}: {st:?}");
    }
}

/// The same for `replace`: a cut after only the new device took the superblock write that
/// gives it the slot (it names itself the member, the others still name the old device:
/// the replace counts as made, the others as behind until the rebuild), or after only the
/// others did (they name a new device that holds nothing: the slot is missing until the
/// replace is made again). Either way the old device is refused as replaced when listed.
/// Every row reads back throughout, and the rebuild ends with every member in service.
#[test]
fn a_superblock_write_of_replace_cut_half_way_loses_nothing() {
    for new_took in [true, false] {
        let what = if new_took {
            "only the new device took the new epoch"
        } else {
            "only the old members took the new epoch"
        };
        let (mems, e, power, rows) = six_members_and_a_blank();
        let before = superblocks(&mems);
        e.replace(2, N).expect("replace");
        power.cut();
        drop(e);
        cut_between(&mems, &before, new_took);
        // The old device listed beside the new one: refused, named as replaced.
        let all = Engine::open(io_of(&wrap(&mems, 3)), EngineOptions::default());
        assert!(
            matches!(all, Err(ectable::Error::ReplacedDevice { slot: 2, .. })),
            "{what}: {:?}",
            all.err()
        );
        let listed: Vec<_> = (0..=N)
            .filter(|&d| d != 2)
            .map(|d| mems[d].clone())
            .collect();
        let e = Engine::open(io_of(&wrap(&listed, 4)), EngineOptions::default())
            .unwrap_or_else(|err| panic!("{what}: reopen: {err}"));
        let st = e.status();
        eprintln!(
            "{what}: state {:?}, unrecognised {:?}, devices {:?}",
            st.state(),
            st.unrecognised,
            st.devices
                .iter()
                .map(|d| format!("{} {} {:?}", d.slot, d.state.as_str(), d.path))
                .collect::<Vec<_>>()
        );
        for (k, v) in &rows {
            assert_eq!(
                e.get("t", k).expect("get").as_deref(),
                Some(&v[..]),
                "{what}"
            );
        }
        // Degraded by the one slot the replace left to rebuild (or without its device),
        // not unavailable: the other five missed no write but the cut one.
        assert_eq!(st.state(), ArrayState::Degraded, "{what}");
        let out: Vec<usize> = st
            .devices
            .iter()
            .filter(|d| !d.in_service)
            .map(|d| d.slot)
            .collect();
        assert_eq!(out, vec![2], "{what}");
        if !new_took {
            // The new device is the last one listed.
            e.replace(2, N - 1).expect("the replace made again");
        }
        e.rebuild(&RebuildOptions::default(), &mut |_| {})
            .unwrap_or_else(|err| panic!("{what}: rebuild: {err}"));
        let st = e.status();
        assert!(
            st.devices.iter().all(|d| d.in_service),
            "{what}: not every member in service after the rebuild: {:?}",
            st.devices
        );
        for (k, v) in &rows {
            assert_eq!(
                e.get("t", k).expect("get").as_deref(),
                Some(&v[..]),
                "{what}"
            );
        }
    }
}
