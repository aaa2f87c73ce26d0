//! Devices of an array written by a newer build (a superblock whose magic and crc are good but
//! whose format version this build does not read; docs/format.md, "Reading a copy"): the
//! open names the version, and nothing that would take a blank device writes over them
//! (format without force, open-or-format, a spare or replacement handed to a running engine);
//! format with force still may.

mod common;
use common::*;
use ectable::devices::{AlignedBuf, BackendKind, BlockDevice};
use ectable::{format, Engine, EngineOptions, Error};

const VERSION: u32 = 7;

/// Rewrites both superblock copies of `dev` with format version `version`, crc sealed again,
/// as a newer build would have left them; returns the first 8 KiB as they are then.
fn make_newer(dev: &dyn BlockDevice, version: u32) -> Vec<u8> {
    let mut buf = AlignedBuf::new(8192);
    dev.read_at(&mut buf, 0).unwrap();
    for copy in buf.chunks_mut(4096) {
        assert_eq!(&copy[..8], b"ECTSUPR1");
        copy[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32c::crc32c(&copy[..4092]);
        copy[4092..].copy_from_slice(&crc.to_le_bytes());
    }
    dev.write_at(&buf, 0).unwrap();
    dev.sync().unwrap();
    buf.to_vec()
}

fn first_8k(dev: &dyn BlockDevice) -> Vec<u8> {
    let mut buf = AlignedBuf::new(8192);
    dev.read_at(&mut buf, 0).unwrap();
    buf.to_vec()
}

fn is_unknown_version(e: &Error) -> bool {
    matches!(
        e,
        Error::UnknownFormat {
            version: VERSION,
            ..
        }
    )
}

#[test]
fn an_array_of_a_newer_format_is_named_and_never_taken_for_blank() {
    let (mems, faulty) = mem_devices(6, 16 << 20, 61);
    let io = io_of(&faulty);
    format(io.as_ref(), &fmt_opts(4, 2)).unwrap();
    {
        let e = open_engine_on(io.clone());
        e.put("t", b"k", b"v").unwrap();
        e.close().unwrap();
    }
    let before: Vec<Vec<u8>> = mems
        .iter()
        .map(|m| make_newer(m.as_ref(), VERSION))
        .collect();

    // The open names the version instead of "not an ectable device".
    let Err(err) = Engine::open(io_of(&wrap(&mems, 62)), EngineOptions::default()) else {
        panic!("opened an array of a newer format");
    };
    assert!(is_unknown_version(&err), "{err}");
    assert!(err.to_string().contains("format version 7"), "{err}");

    // Format without force refuses, as for any array, and writes nothing.
    let err = format(io_of(&wrap(&mems, 63)).as_ref(), &fmt_opts(4, 2)).unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyFormatted { array, .. } if array.contains("format version 7")),
        "{err}"
    );
    // examine says what it is.
    let err = ectable::examine_device(mems[0].as_ref()).unwrap_err();
    assert!(is_unknown_version(&err), "{err}");
    for (m, b) in mems.iter().zip(&before) {
        assert_eq!(&first_8k(m.as_ref()), b, "{} untouched", m.name());
    }

    // Format with force may.
    let forced = ectable::FormatOptions {
        force: true,
        ..fmt_opts(4, 2)
    };
    format(io_of(&wrap(&mems, 64)).as_ref(), &forced).unwrap();
    let e = open_engine_on(io_of(&wrap(&mems, 65)));
    assert_eq!(e.get("t", b"k").unwrap(), None, "a new array");
    e.close().unwrap();
}

/// The same devices as files: `Engine::open_or_format` refuses them rather than formatting,
/// and a device of a newer array handed to a running engine as a spare is refused untouched.
#[test]
fn open_or_format_and_a_spare_refuse_a_newer_array() {
    let dir = tempfile::tempdir().unwrap();
    let paths = file_paths(dir.path(), 6);
    format_files(&paths, 32 << 20, 4, 2, BackendKind::Psync);
    let before: Vec<Vec<u8>> = {
        let io = open_files(&paths, None, BackendKind::Psync);
        io.devices()
            .iter()
            .map(|d| make_newer(d.as_ref(), VERSION))
            .collect()
    };
    let Err(err) = Engine::open_or_format(
        &paths,
        &fmt_opts(4, 2),
        Some(32 << 20),
        EngineOptions::default(),
    ) else {
        panic!("open_or_format took an array of a newer format");
    };
    assert!(is_unknown_version(&err), "{err}");

    // A running array of its own, offered one of those devices as a spare.
    let other = file_paths(&dir.path().join("other"), 6);
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    format_files(&other, 32 << 20, 4, 2, BackendKind::Psync);
    let e = Engine::open_paths(&other, EngineOptions::default()).unwrap();
    let spare: std::sync::Arc<dyn BlockDevice> = std::sync::Arc::new(
        ectable::devices::FileDevice::open(&paths[0], &Default::default()).unwrap(),
    );
    let err = e.add_spare_device(spare).unwrap_err();
    assert!(is_unknown_version(&err), "{err}");
    e.close().unwrap();

    let io = open_files(&paths, None, BackendKind::Psync);
    for (d, b) in io.devices().iter().zip(&before) {
        assert_eq!(&first_8k(d.as_ref()), b, "{} untouched", d.name());
    }
}
