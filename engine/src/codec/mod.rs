//! The stripe codec: Reed-Solomon parity behind one small trait, so the fastest correct
//! implementation can be chosen by measurement without a format change.
//!
//! Codec id 1 is GF(2^8) with polynomial 0x11D and the systematic `Vandermonde(w,k)·inv(top
//! k×k)` matrix (the klauspost/Backblaze construction, the same bytes as the
//! `reed-solomon-erasure` crate gives: its tests compare the two). The field and the
//! matrices are gf.rs; the inner loop is kernel.rs, chosen at run time for the CPU (AVX2,
//! SSSE3, or a portable loop), so one binary runs on every x86-64 CPU. With k = 1 every
//! parity shard is a copy of the data shard, which is K-replica mode.

mod gf;
pub mod kernel;

pub use kernel::Kernel;

/// Why the codec refused its input.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// k and m the codec cannot work with (k ≥ 1, m ≥ 1 and k + m ≤ 256 are needed).
    #[error("invalid geometry k={k} m={m}: {reason}")]
    Geometry {
        /// The data shards asked for.
        k: usize,
        /// The parity shards asked for.
        m: usize,
        /// What is wrong with them.
        reason: String,
    },
    /// A reconstruction with fewer than k shards present.
    #[error("too few shards to reconstruct: {present} present, {needed} needed")]
    TooFewShards {
        /// Shards present.
        present: usize,
        /// Shards needed (k).
        needed: usize,
    },
    /// Shards that do not fit the geometry (wrong count, different lengths), or a singular
    /// decoding matrix.
    #[error("codec: {0}")]
    Other(String),
}

/// An erasure code over the k data and m parity shards of a stripe.
pub trait StripeCodec: Send + Sync {
    /// k, the data shards per stripe.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    fn data_shard_count(&self) -> usize;
    /// m, the parity shards per stripe.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    fn parity_shard_count(&self) -> usize;
    /// Computes the m parity shards from the k data shards (all of equal length).
    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError>;
    /// Fills every shard whose `present` flag is false from the others (at least k present).
    fn reconstruct(&self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError>;
    /// True if the parity shards agree with the data shards.
    fn verify(&self, shards: &[&[u8]]) -> Result<bool, CodecError>;
}

/// Bytes of each shard worked on at once: k inputs and m outputs of this size stay in the
/// first-level cache while every coefficient is applied to them.
const BLOCK_BYTES: usize = 8 << 10;

/// Reed-Solomon over GF(2^8), codec id 1 (see the module documentation).
pub struct RsCodec {
    /// (k+m)×k; its top k rows are the identity.
    matrix: gf::Matrix,
    k: usize,
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    m: usize,
    kernel: Kernel,
}

impl RsCodec {
    /// The codec for k data and m parity shards, with the fastest kernel this CPU runs (or
    /// the one `ECTABLE_CODEC_KERNEL` names).
    pub fn new(k: usize, m: usize) -> Result<RsCodec, CodecError> {
        RsCodec::with_kernel(k, m, Kernel::selected())
    }

    /// The codec with a given inner loop (tests and benchmarks compare them); a kernel this
    /// CPU cannot run falls back to the portable one.
    pub fn with_kernel(k: usize, m: usize, kernel: Kernel) -> Result<RsCodec, CodecError> {
        if k == 0 || m == 0 || k + m > 256 {
            return Err(CodecError::Geometry {
                k,
                m,
                reason: "need k >= 1, m >= 1 and k + m <= 256".into(),
            });
        }
        let matrix = gf::encoding_matrix(k, m).ok_or_else(|| CodecError::Geometry {
            k,
            m,
            reason: "the encoding matrix is singular".into(),
        })?;
        let kernel = if kernel.available() {
            kernel
        } else {
            Kernel::Portable
        };
        Ok(RsCodec {
            matrix,
            k,
            m,
            kernel,
        })
    }

    /// The inner loop this codec runs.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// outputs[o] = Σ_j rows[o][j] · inputs[j], block by block.
    fn apply(&self, rows: &[&[u8]], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        let len = inputs.first().map_or(0, |s| s.len());
        let mut at = 0;
        while at < len {
            let end = (at + BLOCK_BYTES).min(len);
            for (row, out) in rows.iter().zip(outputs.iter_mut()) {
                for (j, input) in inputs.iter().enumerate() {
                    self.kernel
                        .mul(row[j], &input[at..end], &mut out[at..end], j > 0);
                }
            }
            at = end;
        }
    }
}

fn same_lengths(mut lens: impl Iterator<Item = usize>) -> Result<usize, CodecError> {
    let first = lens.next().unwrap_or(0);
    if lens.all(|l| l == first) {
        Ok(first)
    } else {
        Err(CodecError::Other("shards of different lengths".into()))
    }
}

impl StripeCodec for RsCodec {
    fn data_shard_count(&self) -> usize {
        self.k
    }
    fn parity_shard_count(&self) -> usize {
        self.m
    }
    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError> {
        if data.len() != self.k || parity.len() != self.m {
            return Err(CodecError::Other(format!(
                "encode takes {} data and {} parity shards, got {} and {}",
                self.k,
                self.m,
                data.len(),
                parity.len()
            )));
        }
        same_lengths(
            data.iter()
                .map(|s| s.len())
                .chain(parity.iter().map(|s| s.len())),
        )?;
        let rows: Vec<&[u8]> = (self.k..self.k + self.m)
            .map(|r| self.matrix.row(r))
            .collect();
        self.apply(&rows, data, parity);
        Ok(())
    }
    fn reconstruct(&self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError> {
        let (k, w) = (self.k, self.k + self.m);
        if shards.len() != w || present.len() != w {
            return Err(CodecError::Other(format!(
                "reconstruct takes {w} shards, got {}",
                shards.len()
            )));
        }
        let have = present.iter().filter(|p| **p).count();
        if have < k {
            return Err(CodecError::TooFewShards {
                present: have,
                needed: k,
            });
        }
        same_lengths(shards.iter().map(|s| s.len()))?;
        let missing_data: Vec<usize> = (0..k).filter(|&i| !present[i]).collect();
        if !missing_data.is_empty() {
            // The first k shards present, and the inverse of their rows: it maps them back
            // to the data.
            let valid: Vec<usize> = (0..w).filter(|&i| present[i]).take(k).collect();
            let decode = self
                .matrix
                .select_rows(&valid)
                .invert()
                .ok_or_else(|| CodecError::Other("singular decoding matrix".into()))?;
            let mut slots: Vec<Option<&mut [u8]>> =
                shards.iter_mut().map(|s| Some(&mut **s)).collect();
            let inputs: Vec<&[u8]> = valid
                .iter()
                .map(|&i| &*slots[i].take().unwrap_or_default())
                .collect();
            let mut outputs: Vec<&mut [u8]> = missing_data
                .iter()
                .map(|&i| slots[i].take().unwrap_or_default())
                .collect();
            let rows: Vec<&[u8]> = missing_data.iter().map(|&i| decode.row(i)).collect();
            self.apply(&rows, &inputs, &mut outputs);
        }
        let missing_parity: Vec<usize> = (k..w).filter(|&i| !present[i]).collect();
        if !missing_parity.is_empty() {
            let mut slots: Vec<Option<&mut [u8]>> =
                shards.iter_mut().map(|s| Some(&mut **s)).collect();
            let inputs: Vec<&[u8]> = (0..k)
                .map(|i| &*slots[i].take().unwrap_or_default())
                .collect();
            let mut outputs: Vec<&mut [u8]> = missing_parity
                .iter()
                .map(|&i| slots[i].take().unwrap_or_default())
                .collect();
            let rows: Vec<&[u8]> = missing_parity.iter().map(|&i| self.matrix.row(i)).collect();
            self.apply(&rows, &inputs, &mut outputs);
        }
        Ok(())
    }
    fn verify(&self, shards: &[&[u8]]) -> Result<bool, CodecError> {
        let w = self.k + self.m;
        if shards.len() != w {
            return Err(CodecError::Other(format!(
                "verify takes {w} shards, got {}",
                shards.len()
            )));
        }
        let len = same_lengths(shards.iter().map(|s| s.len()))?;
        let mut parity: Vec<Vec<u8>> = vec![vec![0u8; len]; self.m];
        let mut refs: Vec<&mut [u8]> = parity.iter_mut().map(|p| p.as_mut_slice()).collect();
        self.encode(&shards[..self.k], &mut refs)?;
        Ok(parity.iter().zip(&shards[self.k..]).all(|(a, b)| a == b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_lose_m_reconstruct() {
        for (k, m) in [(4, 2), (1, 2), (3, 3), (10, 4)] {
            let c = RsCodec::new(k, m).unwrap();
            let len = 4096;
            let mut shards: Vec<Vec<u8>> = (0..k + m)
                .map(|i| (0..len).map(|j| (i * 31 + j * 7) as u8).collect())
                .collect();
            {
                let (d, p) = shards.split_at_mut(k);
                let dr: Vec<&[u8]> = d.iter().map(|s| s.as_slice()).collect();
                let mut pr: Vec<&mut [u8]> = p.iter_mut().map(|s| s.as_mut_slice()).collect();
                c.encode(&dr, &mut pr).unwrap();
            }
            if k == 1 {
                assert!(shards.iter().all(|s| s == &shards[0]), "k=1 must replicate");
            }
            let orig = shards.clone();
            // Lose the first m shards (data ones when possible).
            let mut present = vec![true; k + m];
            for p in present.iter_mut().take(m) {
                *p = false;
            }
            for (i, s) in shards.iter_mut().enumerate() {
                if !present[i] {
                    s.fill(0);
                }
            }
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|s| s.as_mut_slice()).collect();
            c.reconstruct(&mut refs, &present).unwrap();
            assert_eq!(shards, orig);
            let r: Vec<&[u8]> = shards.iter().map(|s| s.as_slice()).collect();
            assert!(c.verify(&r).unwrap());
        }
    }

    /// Every kernel gives the bytes of the reference implementation (the
    /// `reed-solomon-erasure` crate's portable build), for encoding and for rebuilding any
    /// m lost shards.
    #[test]
    fn every_kernel_matches_the_reference_implementation() {
        use reed_solomon_erasure::galois_8::ReedSolomon;
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (k, m) in [(4, 2), (1, 2), (3, 3), (10, 4), (6, 3), (17, 5)] {
            let reference = ReedSolomon::new(k, m).unwrap();
            for len in [1usize, 31, 4096, 65536 + 17] {
                let data: Vec<Vec<u8>> = (0..k)
                    .map(|_| (0..len).map(|_| next() as u8).collect())
                    .collect();
                let mut want: Vec<Vec<u8>> = data.clone();
                want.extend((0..m).map(|_| vec![0u8; len]));
                reference.encode(&mut want).unwrap();
                for kernel in [Kernel::Portable, Kernel::Ssse3, Kernel::Avx2] {
                    if !kernel.available() {
                        continue;
                    }
                    let c = RsCodec::with_kernel(k, m, kernel).unwrap();
                    let mut parity = vec![vec![0u8; len]; m];
                    let d: Vec<&[u8]> = data.iter().map(|s| s.as_slice()).collect();
                    let mut p: Vec<&mut [u8]> =
                        parity.iter_mut().map(|s| s.as_mut_slice()).collect();
                    c.encode(&d, &mut p).unwrap();
                    assert_eq!(parity, want[k..], "{} RS({k},{m}) len {len}", kernel.name());
                    // Lose m shards chosen at random; rebuild; the same bytes come back.
                    let mut shards = want.clone();
                    let mut present = vec![true; k + m];
                    let mut lost = 0;
                    while lost < m {
                        let i = (next() % (k + m) as u64) as usize;
                        if present[i] {
                            present[i] = false;
                            shards[i].fill(0xAA);
                            lost += 1;
                        }
                    }
                    let mut refs: Vec<&mut [u8]> =
                        shards.iter_mut().map(|s| s.as_mut_slice()).collect();
                    c.reconstruct(&mut refs, &present).unwrap();
                    assert_eq!(
                        shards,
                        want,
                        "{} RS({k},{m}) len {len} {present:?}",
                        kernel.name()
                    );
                    let r: Vec<&[u8]> = shards.iter().map(|s| s.as_slice()).collect();
                    assert!(c.verify(&r).unwrap());
                }
            }
        }
    }

    /// The parity format is frozen: a known input must give known parity bytes.
    #[test]
    fn parity_format_is_stable() {
        let c = RsCodec::new(2, 1).unwrap();
        let d0 = [1u8, 2, 3, 4];
        let d1 = [5u8, 6, 7, 8];
        let mut p = [0u8; 4];
        c.encode(&[&d0, &d1], &mut [&mut p]).unwrap();
        // Vandermonde rows [1,0],[1,1],[1,2]; inv(top) = [[1,0],[1,1]] in GF(2^8), so the
        // parity row is [1,2]·inv = [3,2]: p = 3·d0 ^ 2·d1 (e.g. 3·1 ^ 2·5 = 3 ^ 10 = 9).
        assert_eq!(p, [9, 10, 11, 28]);
    }
}
