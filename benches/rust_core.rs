//! Criterion benchmarks of the core: the raw ChaCha20 keystream, the portable normal transform,
//! candidate generation of both generators and the A* coding search (kappa = 16, d in
//! {8, 25, 64}; one thread).
//!
//! Run: `cargo bench -p combiner-core --bench core`. The keystream and candidate-normal groups use
//! the same element count, so criterion's throughput lines compare directly: candidate normals
//! per second vs keystream u64 words per second, measured in the same run. The search groups
//! report candidate normals of the whole search per second (2^16 d per block), for the version-2
//! search (ChaCha20, binary64) and the version-3 search (Philox, binary32) under each pruning.

use std::hint::black_box;

use combiner_core::kernels::{Isa, normals_from_words};
use combiner_core::kernels32::{self, Batch, Workspace};
use combiner_core::normal::inverse_normal_cdf;
use combiner_core::philox::key_of;
use combiner_core::rng::{CANDIDATE_DOMAIN, WordStream, word_to_open_uniform};
use combiner_core::sampler::{CandidateReader, Generator};
use combiner_core::search::{Block, Pruning, encode_block_pruned};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const WORDS: usize = 1 << 16;

fn keystream_and_normals(c: &mut Criterion) {
    let mut g = c.benchmark_group("rng");
    g.throughput(Throughput::Elements(WORDS as u64));
    let mut words = vec![0u64; WORDS];
    // Real keystream words up front: the kernels below must not see the zeros a filtered run
    // (where the keystream bench does not execute) would leave (all far-tail entries).
    WordStream::new(CANDIDATE_DOMAIN, 1, 2, 0).fill_words(&mut words);
    g.bench_function("chacha20_u64_words", |b| {
        b.iter(|| {
            let mut s = WordStream::new(CANDIDATE_DOMAIN, 1, 2, 0);
            s.fill_words(&mut words);
            black_box(&words);
        })
    });
    let uniforms: Vec<f64> = words.iter().map(|&w| word_to_open_uniform(w)).collect();
    g.bench_function("inverse_normal_cdf_only", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for &u in &uniforms {
                acc += inverse_normal_cdf(u);
            }
            black_box(acc)
        })
    });
    let mut z = vec![0.0f64; WORDS];
    let mut isas = vec![Isa::Portable];
    if Isa::avx2_available() {
        isas.push(Isa::Avx2);
    }
    for isa in isas {
        g.bench_function(format!("normals_from_words_only_{isa:?}"), |b| {
            b.iter(|| {
                normals_from_words(isa, &words, &mut z);
                black_box(&z);
            })
        });
    }
    g.bench_function("candidate_normals", |b| {
        b.iter(|| {
            CandidateReader::new(Generator::ChaCha20, 1, 2, 16, 0).next_normals(WORDS / 16, &mut z);
            black_box(&z);
        })
    });
    // Version 3: Philox words and binary32 normals of 2^16 / 16 candidates of 16 dimensions,
    // eight candidates per vector, in batches of 32 groups.
    let mut isas = vec![Isa::Portable];
    if Isa::avx2_available() {
        isas.push(Isa::Avx2);
    }
    for isa in isas {
        let mut ws = Workspace::default();
        g.bench_function(format!("philox_normals_v3_{isa:?}"), |b| {
            b.iter(|| {
                for first in (0..WORDS / 16).step_by(256) {
                    let starts: Vec<u32> =
                        (first..first + 256).step_by(8).map(|k| k as u32).collect();
                    let batch = Batch {
                        key: key_of(1),
                        block_id: 2,
                        starts: &starts,
                        j0: 0,
                        j1: 16,
                    };
                    kernels32::normals(isa, &mut ws, &batch);
                    black_box(&ws.z);
                }
            })
        });
    }
    g.finish();
}

fn search(c: &mut Criterion) {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("search_kappa16_one_thread");
    g.sample_size(20);
    for d in [8usize, 25, 64] {
        // A block with KL of about 11 nats: sigma_q = 0.1 * exp(-11 / d), mu_q near the prior mean.
        let mu_p = vec![0.0f32; d];
        let sigma_p = vec![0.1f32; d];
        let sigma_q = vec![0.1 * (-11.0f32 / d as f32).exp(); d];
        let mu_q: Vec<f32> = (0..d).map(|j| 0.01 * ((j as f32 * 0.7).sin())).collect();
        let block = Block {
            mu_q: &mu_q,
            sigma_q: &sigma_q,
            mu_p: &mu_p,
            sigma_p: &sigma_p,
        };
        g.throughput(Throughput::Elements((d as u64) << 16));
        for (name, generator, pruning) in [
            ("v2_exhaustive", Generator::ChaCha20, Pruning::Exhaustive),
            ("v2_stop", Generator::ChaCha20, Pruning::Stop),
            ("v3_exhaustive", Generator::Philox, Pruning::Exhaustive),
            ("v3_stop", Generator::Philox, Pruning::Stop),
            ("v3_stop_skip", Generator::Philox, Pruning::StopAndSkip),
        ] {
            g.bench_with_input(BenchmarkId::new(name, d), &block, |b, blk| {
                b.iter(|| {
                    one_thread.install(|| {
                        black_box(encode_block_pruned(blk, 7, 3, 16, generator, pruning).unwrap())
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, keystream_and_normals, search);
criterion_main!(benches);
