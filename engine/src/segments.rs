//! Segments: groups of w device segments, and the allocator that picks them.
//!
//! Invariants:
//! - A device segment belongs to at most one live segment.
//! - New segments take the w online devices with the most free device segments (ties broken
//!   by rotation on the segment id), so chunks and parity spread evenly when n > w.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: u64,
    pub kind: crate::format::SegmentKind,
    /// (device_slot, device_segment_index) per member position.
    pub members: Vec<(u32, u32)>,
}

impl SegmentInfo {
    /// The segment header member `position` holds, as written in the session of
    /// `write_epoch` (docs/format.md, "Segment header").
    pub(crate) fn header(
        &self,
        array_uuid: [u8; 16],
        data_shards: usize,
        write_epoch: u64,
        position: usize,
    ) -> crate::format::SegmentHeader {
        crate::format::SegmentHeader {
            position: position as u16,
            array_uuid,
            segment_id: self.id,
            write_epoch,
            data_shards: data_shards as u16,
            kind: self.kind,
            members: self.members.clone(),
        }
    }
}

/// Free device segments per slot.
#[derive(Debug, Clone, Default)]
pub struct FreeSpace {
    pub free: Vec<BTreeSet<u32>>,
}

impl FreeSpace {
    pub fn new(slot_count: usize, segment_count: u32) -> FreeSpace {
        FreeSpace {
            free: (0..slot_count)
                .map(|_| (0..segment_count).collect())
                .collect(),
        }
    }

    pub fn mark_used(&mut self, slot: u32, dseg: u32) {
        if let Some(f) = self.free.get_mut(slot as usize) {
            f.remove(&dseg);
        }
    }

    pub fn release(&mut self, slot: u32, dseg: u32) {
        if let Some(f) = self.free.get_mut(slot as usize) {
            f.insert(dseg);
        }
    }

    pub fn free_count(&self) -> usize {
        self.free.iter().map(|f| f.len()).sum()
    }

    /// How many segments of `width` members (distinct slots) the free device segments still
    /// make: the largest t with sum over slots of min(free, t) >= width * t.
    pub fn allocatable(&self, width: usize) -> usize {
        if width == 0 {
            return 0;
        }
        let counts: Vec<usize> = self.free.iter().map(|f| f.len()).collect();
        let fits = |t: usize| counts.iter().map(|&c| c.min(t)).sum::<usize>() >= width * t;
        let (mut lo, mut hi) = (0usize, counts.iter().sum::<usize>() / width);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// Picks members for segment `id`: `width` distinct slots, preferring online ones, at
    /// least `min_online` of them online. None when there is no room.
    pub fn allocate(
        &mut self,
        id: u64,
        width: usize,
        online: &[bool],
        min_online: usize,
    ) -> Option<Vec<(u32, u32)>> {
        let n = self.free.len();
        let mut candidates: Vec<usize> = (0..n).filter(|&s| !self.free[s].is_empty()).collect();
        // Online first, then most free, then rotation.
        candidates.sort_by_key(|&s| {
            let rot = (s as u64 + n as u64 - id % n as u64) % n as u64;
            (!online[s], std::cmp::Reverse(self.free[s].len()), rot)
        });
        if candidates.len() < width {
            return None;
        }
        let chosen = &candidates[..width];
        if chosen.iter().filter(|&&s| online[s]).count() < min_online {
            return None;
        }
        let mut chosen = chosen.to_vec();
        // Keep slot order stable within the segment so the placement is easy to read.
        chosen.sort_unstable();
        let members = chosen
            .into_iter()
            .map(|s| {
                let dseg = *self.free[s].iter().next().expect("non-empty");
                self.free[s].remove(&dseg);
                (s as u32, dseg)
            })
            .collect();
        Some(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declustered_allocation_is_even() {
        let n = 8;
        let mut f = FreeSpace::new(n, 60);
        let online = vec![true; n];
        let mut per_slot = vec![0usize; n];
        for id in 1..=40u64 {
            let m = f.allocate(id, 6, &online, 6).unwrap();
            assert_eq!(m.len(), 6);
            for (s, _) in m {
                per_slot[s as usize] += 1;
            }
        }
        let (min, max) = (
            per_slot.iter().min().unwrap(),
            per_slot.iter().max().unwrap(),
        );
        assert!(max - min <= 1, "uneven: {per_slot:?}");
    }

    #[test]
    fn allocatable_matches_greedy_allocation() {
        for (n, w, seg) in [(6, 6, 10), (8, 6, 7), (5, 3, 4), (3, 3, 0)] {
            let mut f = FreeSpace::new(n, seg);
            // Uneven free space: take some device segments away.
            for slot in 0..n as u32 {
                for d in 0..(slot % 3).min(seg) {
                    f.mark_used(slot, d);
                }
            }
            let predicted = f.allocatable(w);
            let online = vec![true; n];
            let mut made = 0;
            while f.allocate(made as u64 + 1, w, &online, w).is_some() {
                made += 1;
            }
            assert_eq!(predicted, made, "n {n} w {w} seg {seg}");
        }
    }

    #[test]
    fn prefers_online_and_reports_full() {
        let mut f = FreeSpace::new(3, 1);
        let online = vec![true, false, true];
        assert!(f.allocate(1, 3, &online, 3).is_none());
        let m = f.allocate(1, 3, &online, 2).unwrap();
        assert_eq!(m.len(), 3);
        assert!(f.allocate(2, 3, &online, 2).is_none());
    }
}
