//! The inner loop of the codec, `y = c·x` and `y ^= c·x` over GF(2^8), chosen at run time:
//! AVX2 or SSSE3 (the split-nibble table lookup, 32 or 16 bytes per instruction) when the CPU
//! has them, a table lookup per byte otherwise. The same binary runs on any x86-64 CPU (and
//! any other architecture, through the portable loop); every kernel gives the same bytes.
//! `ECTABLE_CODEC_KERNEL=portable|ssse3|avx2` forces one (tests, benchmarks, and a CPU whose
//! feature flags cannot be trusted).

use super::gf::tables;
use std::sync::OnceLock;

/// The kernels this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// One table lookup per byte; any CPU.
    Portable,
    /// 16 bytes per step (x86-64 with SSSE3).
    Ssse3,
    /// 32 bytes per step (x86-64 with AVX2).
    Avx2,
}

impl Kernel {
    /// The kernel's name, as `status` and `ECTABLE_CODEC_KERNEL` spell it: "portable", "ssse3"
    /// or "avx2".
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Ssse3 => "ssse3",
            Kernel::Avx2 => "avx2",
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Ssse3 => std::arch::is_x86_feature_detected!("ssse3"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest kernel this CPU runs, unless ECTABLE_CODEC_KERNEL names another it can
    /// run (a name it cannot run is ignored, with a warning).
    pub fn selected() -> Kernel {
        static K: OnceLock<Kernel> = OnceLock::new();
        *K.get_or_init(|| {
            let best = [Kernel::Avx2, Kernel::Ssse3]
                .into_iter()
                .find(|k| k.available())
                .unwrap_or(Kernel::Portable);
            match std::env::var("ECTABLE_CODEC_KERNEL").ok().as_deref() {
                None | Some("") => best,
                Some(name) => match [Kernel::Portable, Kernel::Ssse3, Kernel::Avx2]
                    .into_iter()
                    .find(|k| k.name() == name)
                {
                    Some(k) if k.available() => k,
                    _ => {
                        tracing::warn!(
                            "ECTABLE_CODEC_KERNEL={name}: not a kernel this CPU runs \
                             (portable, ssse3, avx2); using {}",
                            best.name()
                        );
                        best
                    }
                },
            }
        })
    }

    /// `y = c·x` (`add`: `y ^= c·x`). `x` and `y` have the same length.
    pub fn mul(self, c: u8, x: &[u8], y: &mut [u8], add: bool) {
        debug_assert_eq!(x.len(), y.len());
        let n = x.len().min(y.len());
        let (x, y) = (&x[..n], &mut y[..n]);
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if Kernel::Avx2.available() => {
                // SAFETY: the CPU has AVX2 (checked just above; the check is cached by std).
                unsafe { x86::mul_avx2(c, x, y, add) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Ssse3 if Kernel::Ssse3.available() => {
                // SAFETY: the CPU has SSSE3 (checked just above).
                unsafe { x86::mul_ssse3(c, x, y, add) }
            }
            _ => mul_portable(c, x, y, add),
        }
    }
}

fn mul_portable(c: u8, x: &[u8], y: &mut [u8], add: bool) {
    let row = &tables().mul[c as usize];
    if add {
        for (o, i) in y.iter_mut().zip(x) {
            *o ^= row[*i as usize];
        }
    } else {
        for (o, i) in y.iter_mut().zip(x) {
            *o = row[*i as usize];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{mul_portable, tables};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX2; `x` and `y` have the same length.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mul_avx2(c: u8, x: &[u8], y: &mut [u8], add: bool) {
        let t = tables();
        let n = x.len() / 32 * 32;
        // SAFETY: the loads read 16 bytes from 16-byte tables; every vector load and store
        // below reads or writes 32 bytes at offset i with i + 32 <= n <= len of both slices;
        // the unaligned forms need no alignment.
        unsafe {
            let lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                t.low[c as usize].as_ptr().cast::<__m128i>(),
            ));
            let hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                t.high[c as usize].as_ptr().cast::<__m128i>(),
            ));
            let mask = _mm256_set1_epi8(0x0f);
            let mut i = 0;
            while i < n {
                let v = _mm256_loadu_si256(x.as_ptr().add(i).cast::<__m256i>());
                let l = _mm256_and_si256(v, mask);
                let h = _mm256_and_si256(_mm256_srli_epi64::<4>(v), mask);
                let mut p =
                    _mm256_xor_si256(_mm256_shuffle_epi8(lo, l), _mm256_shuffle_epi8(hi, h));
                let out = y.as_mut_ptr().add(i).cast::<__m256i>();
                if add {
                    p = _mm256_xor_si256(p, _mm256_loadu_si256(out));
                }
                _mm256_storeu_si256(out, p);
                i += 32;
            }
        }
        mul_portable(c, &x[n..], &mut y[n..], add);
    }

    /// # Safety
    /// The CPU must have SSSE3; `x` and `y` have the same length.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn mul_ssse3(c: u8, x: &[u8], y: &mut [u8], add: bool) {
        let t = tables();
        let n = x.len() / 16 * 16;
        // SAFETY: as in mul_avx2, with 16-byte vectors: i + 16 <= n <= len of both slices.
        unsafe {
            let lo = _mm_loadu_si128(t.low[c as usize].as_ptr().cast::<__m128i>());
            let hi = _mm_loadu_si128(t.high[c as usize].as_ptr().cast::<__m128i>());
            let mask = _mm_set1_epi8(0x0f);
            let mut i = 0;
            while i < n {
                let v = _mm_loadu_si128(x.as_ptr().add(i).cast::<__m128i>());
                let l = _mm_and_si128(v, mask);
                let h = _mm_and_si128(_mm_srli_epi64::<4>(v), mask);
                let mut p = _mm_xor_si128(_mm_shuffle_epi8(lo, l), _mm_shuffle_epi8(hi, h));
                let out = y.as_mut_ptr().add(i).cast::<__m128i>();
                if add {
                    p = _mm_xor_si128(p, _mm_loadu_si128(out));
                }
                _mm_storeu_si128(out, p);
                i += 16;
            }
        }
        mul_portable(c, &x[n..], &mut y[n..], add);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_gives_the_same_bytes() {
        let x: Vec<u8> = (0..1000u32).map(|i| (i * 151 + 7) as u8).collect();
        for c in [0u8, 1, 2, 3, 0x1d, 0x8e, 255] {
            for add in [false, true] {
                let start: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
                let mut want = start.clone();
                mul_portable(c, &x, &mut want, add);
                for k in [Kernel::Ssse3, Kernel::Avx2] {
                    if !k.available() {
                        eprintln!("{} not available here", k.name());
                        continue;
                    }
                    // Odd lengths exercise the tails.
                    for len in [0usize, 1, 15, 16, 31, 32, 33, 999, 1000] {
                        let mut got = start.clone();
                        k.mul(c, &x[..len], &mut got[..len], add);
                        assert_eq!(
                            got[..len],
                            want[..len],
                            "{} c={c} add={add} len={len}",
                            k.name()
                        );
                    }
                }
            }
        }
    }
}
