//! Codec throughput per core next to the memory-copy rate: RS encode, reconstruct of m lost
//! data shards, and crc32c, on one stripe of k data chunks.
//!
//! Run: `cargo bench --bench codec`. Throughput is reported per byte of data (k chunks).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ectable::codec::{RsCodec, StripeCodec};
use std::hint::black_box;

fn stripe(k: usize, m: usize, len: usize) -> Vec<Vec<u8>> {
    (0..k + m)
        .map(|i| (0..len).map(|j| (i * 131 + j * 7) as u8).collect())
        .collect()
}

fn bench_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for &(k, m) in &[(4usize, 2usize), (1, 2), (10, 4)] {
        for &chunk in &[4096usize, 65536, 1 << 20] {
            let codec = RsCodec::new(k, m).unwrap();
            let mut shards = stripe(k, m, chunk);
            group.throughput(Throughput::Bytes((k * chunk) as u64));
            let id = format!("rs{k}+{m}/{}K", chunk / 1024);
            group.bench_function(BenchmarkId::new("encode", &id), |b| {
                b.iter(|| {
                    let (d, p) = shards.split_at_mut(k);
                    let d: Vec<&[u8]> = d.iter().map(|s| s.as_slice()).collect();
                    let mut p: Vec<&mut [u8]> = p.iter_mut().map(|s| s.as_mut_slice()).collect();
                    codec.encode(&d, &mut p).unwrap();
                })
            });
            let mut present = vec![true; k + m];
            for p in present.iter_mut().take(m.min(k)) {
                *p = false;
            }
            group.bench_function(BenchmarkId::new("reconstruct", &id), |b| {
                b.iter(|| {
                    let mut refs: Vec<&mut [u8]> =
                        shards.iter_mut().map(|s| s.as_mut_slice()).collect();
                    codec.reconstruct(&mut refs, &present).unwrap();
                })
            });
            let src: Vec<u8> = vec![7u8; k * chunk];
            let mut dst: Vec<u8> = vec![0u8; k * chunk];
            group.bench_function(BenchmarkId::new("memcpy", &id), |b| {
                b.iter(|| {
                    dst.copy_from_slice(black_box(&src));
                    black_box(&dst);
                })
            });
            group.bench_function(BenchmarkId::new("crc32c", &id), |b| {
                b.iter(|| black_box(crc32c::crc32c(black_box(&src))))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench_codec
}
criterion_main!(benches);
