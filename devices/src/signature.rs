//! What else a device holds: the signatures of the file systems, volume managers, RAID sets,
//! encrypted volumes and partition tables an operator is likely to find on a disk, looked for
//! before a command writes an ectable array over it (`format`, `add-spare`, `replace`), as
//! `mkfs` and `mdadm --create` do. Reads the first 136 KiB and the last 64 KiB; writes
//! nothing. A signature found is a reason to ask for `--force`, not proof: a device can carry
//! the leftovers of an old use.

use crate::{AlignedBuf, BlockDevice, DeviceError, ALIGN_BYTES};

/// Bytes read from the start: up to the ZFS uberblock magic at 128 KiB.
const HEAD_BYTES: usize = 136 * 1024;
/// Bytes read from the end: the Linux md superblocks of versions 0.90 and 1.0.
const TAIL_BYTES: usize = 64 * 1024;

/// The md RAID superblock magic, little-endian.
const MD_MAGIC: [u8; 4] = [0xfc, 0x4e, 0x2b, 0xa9];

/// What the device seems to hold besides zeros or an ectable array ("an ext2/3/4 file
/// system"), or None.
pub fn foreign_signature(dev: &dyn BlockDevice) -> Result<Option<&'static str>, DeviceError> {
    let cap = dev.geometry().capacity_bytes;
    let head_len = (HEAD_BYTES as u64).min(cap - cap % ALIGN_BYTES as u64) as usize;
    if head_len == 0 {
        return Ok(None);
    }
    let mut head = AlignedBuf::new(head_len);
    dev.read_at(&mut head, 0)?;
    if let Some(what) = in_head(&head) {
        return Ok(Some(what));
    }
    let tail_start = cap.saturating_sub(TAIL_BYTES as u64) / 65536 * 65536;
    if tail_start >= head_len as u64 {
        let len = ((cap - tail_start) / ALIGN_BYTES as u64 * ALIGN_BYTES as u64) as usize;
        let mut tail = AlignedBuf::new(len);
        dev.read_at(&mut tail, tail_start)?;
        if in_tail(&tail, tail_start, cap) {
            return Ok(Some("a Linux md RAID member (superblock 0.90 or 1.0)"));
        }
    }
    Ok(None)
}

fn at(b: &[u8], offset: usize, magic: &[u8]) -> bool {
    b.get(offset..offset + magic.len()) == Some(magic)
}

/// The signatures in the first bytes of a device.
fn in_head(b: &[u8]) -> Option<&'static str> {
    if at(b, 0, b"LUKS\xba\xbe") {
        return Some("a LUKS encrypted volume");
    }
    if at(b, 0, b"XFSB") {
        return Some("an XFS file system");
    }
    if at(b, 1080, &[0x53, 0xef]) {
        return Some("an ext2/3/4 file system");
    }
    if at(b, 65600, b"_BHRfS_M") {
        return Some("a btrfs file system");
    }
    if at(b, 0, &MD_MAGIC) || at(b, 4096, &MD_MAGIC) {
        return Some("a Linux md RAID member (superblock 1.1 or 1.2)");
    }
    if (0..4).any(|s| at(b, s * 512, b"LABELONE")) {
        return Some("an LVM physical volume");
    }
    if at(b, 4086, b"SWAPSPACE2") || at(b, 4086, b"SWAP-SPACE") {
        return Some("a swap area");
    }
    if at(b, 512, b"EFI PART") {
        return Some("a GPT partition table");
    }
    if at(b, 32769, b"CD001") {
        return Some("an ISO 9660 image");
    }
    // The uberblock magic 0x00bab10c as a u64, in either byte order.
    let zfs_le = [0x0c, 0xb1, 0xba, 0, 0, 0, 0, 0];
    let zfs_be = [0, 0, 0, 0, 0, 0xba, 0xb1, 0x0c];
    if at(b, 128 * 1024, &zfs_le) || at(b, 128 * 1024, &zfs_be) {
        return Some("a ZFS pool member");
    }
    if at(b, 510, &[0x55, 0xaa]) {
        if at(b, 3, b"NTFS    ") || at(b, 3, b"EXFAT   ") {
            return Some("an NTFS or exFAT file system");
        }
        if at(b, 54, b"FAT") || at(b, 82, b"FAT") {
            return Some("a FAT file system");
        }
        // A partition table: an entry with a partition type.
        if (0..4).any(|i| b.get(446 + 16 * i + 4).is_some_and(|t| *t != 0)) {
            return Some("an MBR partition table");
        }
    }
    None
}

/// Whether the last bytes of a device (`tail`, read from `start`; the device is `cap` bytes)
/// hold an md superblock of version 0.90 (64 KiB-aligned, 64 KiB from the end) or 1.0
/// (4 KiB-aligned, at least 8 KiB from the end).
fn in_tail(tail: &[u8], start: u64, cap: u64) -> bool {
    let v090 = (cap / 65536).saturating_sub(1) * 65536;
    let v10 = (cap.saturating_sub(8192)) / 4096 * 4096;
    [v090, v10]
        .into_iter()
        .any(|o| o >= start && at(tail, (o - start) as usize, &MD_MAGIC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDevice;

    fn dev_with(at_offset: u64, bytes: &[u8]) -> MemDevice {
        let d = MemDevice::new("m", 1 << 20);
        let mut b = AlignedBuf::new(4096);
        let o = (at_offset % 4096) as usize;
        b[o..o + bytes.len()].copy_from_slice(bytes);
        d.write_at(&b, at_offset / 4096 * 4096).unwrap();
        d
    }

    #[test]
    fn each_signature_is_found_and_zeros_are_not() {
        let zero = MemDevice::new("z", 1 << 20);
        assert_eq!(foreign_signature(&zero).unwrap(), None);
        for (offset, magic, what) in [
            (1080, &[0x53, 0xef][..], "ext2/3/4"),
            (0, b"XFSB", "XFS"),
            (65600, b"_BHRfS_M", "btrfs"),
            (0, b"LUKS\xba\xbe", "LUKS"),
            (4096, &MD_MAGIC, "md RAID"),
            (512, b"LABELONE", "LVM"),
            (4086, b"SWAPSPACE2", "swap"),
            (512, b"EFI PART", "GPT"),
            (32769, b"CD001", "ISO"),
            (131072, &[0x0c, 0xb1, 0xba, 0, 0, 0, 0, 0], "ZFS"),
            ((1 << 20) - 65536, &MD_MAGIC, "md RAID"),
        ] {
            let d = dev_with(offset, magic);
            let got = foreign_signature(&d).unwrap();
            assert!(got.is_some_and(|g| g.contains(what)), "{what}: {got:?}");
        }
        // A boot signature alone (no partition, no file system) is not taken for one.
        let d = dev_with(510, &[0x55, 0xaa]);
        assert_eq!(foreign_signature(&d).unwrap(), None);
        let mut mbr = vec![0u8; 66];
        mbr[4] = 0x83;
        mbr[64] = 0x55;
        mbr[65] = 0xaa;
        let d = dev_with(446, &mbr);
        assert!(foreign_signature(&d)
            .unwrap()
            .is_some_and(|g| g.contains("MBR")));
    }
}
