//! The stripe codec: Reed-Solomon parity behind one small trait, so the fastest correct
//! implementation can be chosen by measurement without a format change.
//!
//! Codec id 1 is GF(2^8) with polynomial 0x11D and the systematic `Vandermonde(w,k)·inv(top
//! k×k)` matrix (the klauspost/Backblaze construction), as implemented by
//! `reed-solomon-erasure`. With k = 1 every parity shard is a copy of the data shard, which
//! is K-replica mode.

use reed_solomon_erasure::galois_8::ReedSolomon;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("invalid geometry k={k} m={m}: {reason}")]
    Geometry { k: usize, m: usize, reason: String },
    #[error("too few shards to reconstruct: {present} present, {needed} needed")]
    TooFewShards { present: usize, needed: usize },
    #[error("codec: {0}")]
    Other(String),
}

pub trait StripeCodec: Send + Sync {
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    fn data_shard_count(&self) -> usize;
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    fn parity_shard_count(&self) -> usize;
    /// Computes the m parity shards from the k data shards (all of equal length).
    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError>;
    /// Fills every shard whose `present` flag is false from the others (at least k present).
    fn reconstruct(&self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError>;
    /// True if the parity shards agree with the data shards.
    fn verify(&self, shards: &[&[u8]]) -> Result<bool, CodecError>;
}

pub struct RsCodec {
    rs: ReedSolomon,
    k: usize,
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    m: usize,
}

impl RsCodec {
    pub fn new(k: usize, m: usize) -> Result<RsCodec, CodecError> {
        if k == 0 || m == 0 || k + m > 256 {
            return Err(CodecError::Geometry {
                k,
                m,
                reason: "need k >= 1, m >= 1 and k + m <= 256".into(),
            });
        }
        let rs = ReedSolomon::new(k, m).map_err(|e| CodecError::Geometry {
            k,
            m,
            reason: format!("{e:?}"),
        })?;
        Ok(RsCodec { rs, k, m })
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
        self.rs
            .encode_sep(data, parity)
            .map_err(|e| CodecError::Other(format!("{e:?}")))
    }
    fn reconstruct(&self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), CodecError> {
        let have = present.iter().filter(|p| **p).count();
        if have < self.k {
            return Err(CodecError::TooFewShards {
                present: have,
                needed: self.k,
            });
        }
        let mut v: Vec<(&mut [u8], bool)> = shards
            .iter_mut()
            .zip(present)
            .map(|(s, p)| (&mut **s, *p))
            .collect();
        self.rs
            .reconstruct(&mut v)
            .map_err(|e| CodecError::Other(format!("{e:?}")))
    }
    fn verify(&self, shards: &[&[u8]]) -> Result<bool, CodecError> {
        self.rs
            .verify(shards)
            .map_err(|e| CodecError::Other(format!("{e:?}")))
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
