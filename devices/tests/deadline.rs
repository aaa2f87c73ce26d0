//! The I/O deadline (docs/design.md, "Devices that stop answering"): an operation a device
//! holds past it is given up with `DeviceError::TimedOut`, the rest of the batch and the
//! other devices go on, the given-up operation is counted until the device completes it, and
//! its late completion is dropped. On the psync engine over a device that hangs on command,
//! and on io_uring over a real file descriptor that never answers (a FIFO nobody writes).

use ectable_devices::{
    open_backend, AlignedBuf, BackendKind, BlockDevice, DeviceError, ErrorClass, FaultyDevice,
    FileDevice, Geometry, IoOp, MemDevice, OpenOptions,
};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(300);

/// Runs `f` on its own thread and fails the test when it has not finished within a minute:
/// without the deadline these tests hang rather than fail.
fn bounded(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => h.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(_) => panic!("hung: an operation was never given up"),
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn psync_gives_up_on_a_hung_device_and_keeps_the_pool_for_the_others() {
    bounded(psync_hung);
}

fn psync_hung() {
    let devs: Vec<Arc<FaultyDevice>> = (0..2)
        .map(|i| {
            Arc::new(FaultyDevice::new(
                Arc::new(MemDevice::new(&format!("m{i}"), 8 << 20)),
                i,
            ))
        })
        .collect();
    let io = open_backend(
        BackendKind::Psync,
        devs.iter()
            .map(|d| d.clone() as Arc<dyn BlockDevice>)
            .collect(),
    )
    .unwrap();
    assert_eq!(io.io_timeout(), None, "no deadline unless set");
    io.set_io_timeout(Some(TIMEOUT));
    assert_eq!(io.io_timeout(), Some(TIMEOUT));
    devs[1].set_hung(true);
    // More operations on the hung device than the pool has workers (eight for two
    // devices), and some on the healthy one in the same batch.
    let mut ops = Vec::new();
    for blk in 0..20u64 {
        ops.push(IoOp::write(
            1,
            blk * 4096,
            AlignedBuf::from_slice(&[7u8; 4096]),
        ));
    }
    for blk in 0..4u64 {
        ops.push(IoOp::write(
            0,
            blk * 4096,
            AlignedBuf::from_slice(&[5u8; 4096]),
        ));
    }
    let t = Instant::now();
    let done = io.execute(ops);
    let took = t.elapsed();
    for c in &done {
        if c.op.device_index == 0 {
            c.result
                .as_ref()
                .expect("the healthy device's writes succeed");
            continue;
        }
        let e = c
            .result
            .as_ref()
            .expect_err("the hung device's writes are given up");
        assert!(matches!(e, DeviceError::TimedOut { .. }), "{e}");
        assert_eq!(e.class(), ErrorClass::TimedOut);
        assert!(e.to_string().contains("m1: write at offset"), "{e}");
        assert!(e.to_string().contains("stopped answering"), "{e}");
        assert_eq!(
            c.op.buf.len(),
            4096,
            "a substitute buffer of the same length"
        );
    }
    // 20 operations through 8 workers, each round given up after the deadline, and the
    // replacements take the next: about three rounds, never all 20 in turn.
    assert!(took < TIMEOUT * 8, "took {took:?}");
    assert_eq!(io.stuck_ops(1), 20);
    assert_eq!(io.stuck_ops(0), 0);
    assert!(
        devs[1].held_ops() >= 8,
        "the workers are held by the device"
    );

    // The healthy device is served at once while the hung one holds its workers.
    let t = Instant::now();
    for c in io.execute((0..64u64).map(|b| IoOp::read(0, b * 4096, 4096)).collect()) {
        c.result.unwrap();
    }
    assert!(t.elapsed() < TIMEOUT, "{:?}", t.elapsed());

    // The device answers again: what it held completes, and is dropped.
    devs[1].set_hung(false);
    wait_until("the given-up writes complete", || io.stuck_ops(1) == 0);
    assert_eq!(devs[1].counters().hung_ops, 20, "the hang held all 20");
    let mut b = vec![0u8; 4096];
    devs[1].read_at(&mut b, 19 * 4096).unwrap();
    assert_eq!(b, vec![7u8; 4096], "the late writes landed");
    // New operations on it go through, and the backend drops without waiting on anyone.
    for c in io.execute(vec![IoOp::read(1, 0, 4096)]) {
        c.result.unwrap();
    }
}

#[test]
fn without_a_deadline_a_slow_operation_is_waited_for() {
    let d = Arc::new(FaultyDevice::new(Arc::new(MemDevice::new("m", 1 << 20)), 1));
    let io = open_backend(BackendKind::Psync, vec![d.clone() as Arc<dyn BlockDevice>]).unwrap();
    d.set_delay(TIMEOUT * 2);
    for c in io.execute(vec![IoOp::read(0, 0, 4096)]) {
        c.result.unwrap();
    }
    // With one longer than the delay, the same.
    io.set_io_timeout(Some(TIMEOUT * 4));
    for c in io.execute(vec![IoOp::read(0, 0, 4096)]) {
        c.result.unwrap();
    }
    assert_eq!(io.stuck_ops(0), 0);
}

/// A device whose reads never complete until something is written into its FIFO: a real
/// file descriptor io_uring waits on.
struct FifoDevice {
    read_end: OwnedFd,
}

impl BlockDevice for FifoDevice {
    fn name(&self) -> &str {
        "fifo"
    }
    fn geometry(&self) -> Geometry {
        Geometry {
            sector_size_bytes: 4096,
            capacity_bytes: 1 << 20,
        }
    }
    fn read_at(&self, _buf: &mut [u8], _offset_bytes: u64) -> Result<(), DeviceError> {
        unimplemented!("io_uring only")
    }
    fn write_at(&self, _buf: &[u8], _offset_bytes: u64) -> Result<(), DeviceError> {
        unimplemented!("io_uring only")
    }
    fn sync(&self) -> Result<(), DeviceError> {
        Ok(())
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.read_end.as_raw_fd())
    }
}

#[test]
fn io_uring_gives_up_on_a_descriptor_that_never_answers() {
    bounded(uring_fifo);
}

fn uring_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Read and write ends, both non-blocking to open; the read end stays open for writing
    // too, so a read waits instead of seeing an end of file.
    let read_end: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap()
        .into();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let file = Arc::new(
        FileDevice::open(
            &dir.path().join("f"),
            &OpenOptions {
                create_size_bytes: Some(1 << 20),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let io = open_backend(
        BackendKind::Uring,
        vec![
            Arc::new(FifoDevice { read_end }) as Arc<dyn BlockDevice>,
            file as Arc<dyn BlockDevice>,
        ],
    )
    .unwrap();
    io.set_io_timeout(Some(TIMEOUT));
    let t = Instant::now();
    let done = io.execute(vec![
        IoOp::read(0, 0, 4096),
        IoOp::write(1, 0, AlignedBuf::from_slice(&[9u8; 4096])),
    ]);
    assert!(
        t.elapsed() >= TIMEOUT && t.elapsed() < TIMEOUT * 4,
        "{:?}",
        t.elapsed()
    );
    let e = done[0].result.as_ref().expect_err("given up");
    assert!(matches!(e, DeviceError::TimedOut { .. }), "{e}");
    assert!(e.to_string().starts_with("fifo: read at offset 0"), "{e}");
    done[1].result.as_ref().expect("the file's write succeeds");
    assert_eq!(io.stuck_ops(0), 1);

    // The descriptor answers: the late completion is reaped at the next turn of the ring
    // and dropped.
    use std::io::Write;
    writer.write_all(&[1u8; 4096]).unwrap();
    wait_until("the late read is reaped", || {
        for c in io.execute(vec![IoOp::read(1, 0, 4096)]) {
            c.result.unwrap();
            assert_eq!(&c.op.buf[..], &[9u8; 4096][..]);
        }
        io.stuck_ops(0) == 0
    });

    // Given up on a thread that then ends: its ring goes with it, and what it gave up is no
    // longer counted (nothing could see it end; the kernel finishes or cancels it as the
    // thread exits). Counted for ever, it would keep `online` refusing the device.
    // With a log subscriber of the kind the CLI and the node install: its thread-locals are
    // destroyed before the ring's (the thread logged "given up" after its first I/O), and an
    // event from the ring's drop then would panic inside a thread-local destructor, which
    // aborts the process.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .try_init();
    let io2 = io.clone();
    std::thread::spawn(move || {
        let done = io2.execute(vec![IoOp::read(0, 0, 4096)]);
        assert!(done[0].result.is_err());
        assert_eq!(io2.stuck_ops(0), 1);
    })
    .join()
    .unwrap();
    assert_eq!(io.stuck_ops(0), 0, "counted out when its thread ended");

    // Given up again, and this time the engine is dropped with the read still out: the
    // drop must not wait for it.
    let done = io.execute(vec![IoOp::read(0, 0, 4096)]);
    assert!(done[0].result.is_err());
    assert_eq!(io.stuck_ops(0), 1);
    let t = Instant::now();
    drop(io);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}
