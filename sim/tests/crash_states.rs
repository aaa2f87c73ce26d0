//! Crash-state enumeration in CI: a recorded workload (puts, deletes, batches, syncs,
//! checkpoints, cleaning passes, full and incremental backups, a member that fails and is
//! brought back with `online` and resynced, a member replaced and rebuilt, a close) and at least 2,000 crash states its traces allow,
//! each opened and checked against what was acknowledged before the cut, and every other
//! state that lost in-doubt writes also given a second session whose open must read the same
//! (sim/src/crash_states.rs).

use ectable_sim::crash_states::{enumerate, CrashConfig};

#[test]
fn two_thousand_crash_states_recover_every_acknowledged_write() {
    let mut states = 0;
    let mut busy = 0;
    let (mut lost_some, mut second) = (0, 0);
    let (mut rebuild, mut backup, mut online) = (0, 0, 0);
    for seed in [11, 12, 13, 14] {
        let cfg = CrashConfig {
            seed,
            ops: 250,
            max_states: 600,
            ..Default::default()
        };
        let r = enumerate(&cfg).unwrap_or_else(|why| panic!("seed {seed}: {why}"));
        states += r.states;
        busy += r.during_checkpoint_or_cleaning;
        lost_some += r.in_doubt_lost;
        second += r.second_sessions;
        rebuild += r.during_rebuild;
        online += r.during_online;
        backup += r.during_backup;
        assert_eq!((r.acknowledged_lost, r.failed_recoveries), (0, 0));
    }
    assert!(states >= 2_000, "only {states} crash states");
    assert!(
        busy > 0,
        "no state was taken while a checkpoint or the cleaner wrote"
    );
    assert!(
        rebuild > 0,
        "no state was taken during the replace and rebuild"
    );
    assert!(backup > 0, "no state was taken during a backup");
    assert!(
        online > 0,
        "no state was taken during a member's online and resync"
    );
    assert!(
        lost_some > 0,
        "no crash state lost an in-doubt write: the cuts tested nothing"
    );
    assert!(
        second > 0,
        "no state was given a second session (writable open, close, open again)"
    );
}
