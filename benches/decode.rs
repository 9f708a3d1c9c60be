//! Criterion benchmarks of the deterministic decoder on one thread: the reconstruction of a
//! 768 x 512 image (kodim01 at photo-q1, 96 patches of 64 x 64) from its weights, with the
//! baseline and the AVX2 instantiation, and the whole decode (prior file, weights, network).
//!
//! Run: `cargo bench -p combiner-core --bench decode`. `benches/decode_bench.py` measures the
//! PyTorch reconstruction it replaced, and peak memory, for the ratio.

use std::hint::black_box;
use std::path::PathBuf;

use combiner_core::container;
use combiner_core::decode::{self, Samples};
use combiner_core::kernels::Isa;
use combiner_core::prior::Prior;
use criterion::{Criterion, criterion_group, criterion_main};

fn read(path: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path),
    )
    .unwrap()
}

fn weights_of(data: &[u8], prior: &Prior, num_patches: usize) -> Vec<f32> {
    let (header, indices) = container::unpack(data).unwrap();
    let d = prior.num_params();
    let mut weights = vec![0.0f32; num_patches * d];
    if header.spread_blocks {
        return combiner_core::layout::spread_weights(
            header.generator(),
            prior,
            header.seed,
            num_patches,
            &indices,
        );
    }
    let parts = prior.part_members();
    for (p, w) in weights.chunks_mut(d).enumerate() {
        combiner_core::layout::patch_weights(
            header.generator(),
            prior,
            &parts,
            header.seed,
            p,
            &indices,
            w,
        );
    }
    weights
}

fn kodak(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let data = read("tests/data/kodim01.photo-q1.25311fac.spread.cmb");
    let prior_bytes = read("python/combiner/priors/retired/photo-q1.25311fac77ce50b7.safetensors");
    let prior = Prior::from_bytes(&prior_bytes).unwrap();
    let (header, indices) = container::unpack(&data).unwrap();
    let patches = decode::check_against_prior(&header, indices.len(), &prior).unwrap();
    let weights = weights_of(&data, &prior, patches);
    let mut g = c.benchmark_group("decode_768x512_one_thread");
    g.sample_size(20);
    let mut isas = vec![Isa::Portable];
    if Isa::avx2_available() {
        isas.push(Isa::Avx2);
    }
    for isa in isas {
        g.bench_function(format!("reconstruct_{isa:?}"), |b| {
            b.iter(|| {
                let out = pool.install(|| decode::reconstruct(&header, &prior, isa, &weights));
                assert!(matches!(out, Samples::Image(_)));
                black_box(out)
            })
        });
    }
    g.bench_function("whole_decode", |b| {
        b.iter(|| {
            pool.install(|| {
                let prior = Prior::from_bytes(&prior_bytes).unwrap();
                black_box(decode::decode(&data, &prior, Isa::detect()).unwrap())
            })
        })
    });
    g.finish();
}

criterion_group!(benches, kodak);
criterion_main!(benches);
