//! The network of the reconstruction (docs/format.md sections 7.2 and 7.3): the configuration,
//! the coordinates and Fourier features of a patch's points, a patch's effective parameters and
//! the forward pass.
//!
//! Determinism: every value is binary32 and every sum is accumulated in the document's order.
//! The forward pass runs on tiles of `TILE` points, one SIMD lane per point: each lane performs
//! exactly the scalar sequence of operations of its point, so vectorising (or not) never
//! changes a bit. `Isa` picks the baseline or the AVX2 instantiation; tests compare both.

use crate::kernels::Isa;
use crate::sine;

/// Points per tile of the forward pass: 64 binary32 accumulators fit in AVX2's 16 registers
/// with room for the inputs.
pub const TILE: usize = 64;
const _: () = assert!(TILE % (VECTORS * LANES) == 0);
/// Bound on every integer field of a configuration (as in the reference encoder).
pub const MAX_CONFIG_INT: u64 = 4096;

/// The network configuration of a prior (section 7.2).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Coordinates per point: 1 (audio) or 2 (images).
    pub in_dim: usize,
    /// Output values per point (the channels).
    pub out_dim: usize,
    pub num_freqs: usize,
    pub max_freq: f64,
    pub width: usize,
    /// Hidden (sine-activated) layers.
    pub depth: usize,
    pub w0: f64,
}

impl NetworkConfig {
    /// Parse the prior's `config` JSON; `Err` names the offending key.
    pub fn from_json(text: &str) -> Result<NetworkConfig, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("config is not JSON: {e}"))?;
        let object = value.as_object().ok_or("config is not a JSON object")?;
        const KNOWN: [&str; 9] = [
            "in_dim",
            "out_dim",
            "num_freqs",
            "max_freq",
            "width",
            "depth",
            "w0",
            "latent_grid",
            "latent_channels",
        ];
        if let Some(key) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("config has an unknown key {key:?}"));
        }
        let int = |key: &str| -> Result<usize, String> {
            match object.get(key).and_then(serde_json::Value::as_u64) {
                Some(v) if (1..=MAX_CONFIG_INT).contains(&v) => Ok(v as usize),
                _ => Err(format!(
                    "config.{key} must be an integer in 1..={MAX_CONFIG_INT}"
                )),
            }
        };
        let number = |key: &str| -> Result<f64, String> {
            match object.get(key).and_then(serde_json::Value::as_f64) {
                Some(v) if v.is_finite() && v > 0.0 => Ok(v),
                _ => Err(format!("config.{key} must be a finite positive number")),
            }
        };
        for key in ["latent_grid", "latent_channels"] {
            if let Some(v) = object.get(key) {
                if v.as_u64() != Some(0) {
                    return Err(format!(
                        "config.{key}: per-patch latents are not part of this format version"
                    ));
                }
            }
        }
        let config = NetworkConfig {
            in_dim: int("in_dim")?,
            out_dim: int("out_dim")?,
            num_freqs: int("num_freqs")?,
            max_freq: number("max_freq")?,
            width: int("width")?,
            depth: int("depth")?,
            w0: number("w0")?,
        };
        if config.in_dim > 2 {
            return Err("config.in_dim must be 1 (audio) or 2 (images)".into());
        }
        if config.max_freq < 1.0 {
            return Err("config.max_freq must be >= 1".into());
        }
        Ok(config)
    }

    /// Fourier features per point, 2 n F.
    pub fn feature_dim(&self) -> usize {
        2 * self.in_dim * self.num_freqs
    }

    /// (in, out) of every linear layer, in layout order.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        let mut dims = vec![self.feature_dim()];
        dims.extend(std::iter::repeat_n(self.width, self.depth));
        dims.push(self.out_dim);
        dims.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// D, the coded parameters per patch (at most about 2^38 within the field bounds: no
    /// overflow in u64).
    pub fn num_params(&self) -> u64 {
        self.layer_shapes()
            .iter()
            .map(|&(i, o)| (i as u64 + 1) * o as u64)
            .sum()
    }

    /// K, the length of the flat mixing matrices.
    pub fn mix_size(&self) -> u64 {
        self.layer_shapes()
            .iter()
            .map(|&(i, o)| (i as u64 + 1).pow(2) + (o as u64).pow(2))
            .sum()
    }

    /// The frequencies f_k of section 7.2.
    pub fn frequencies(&self) -> Vec<f32> {
        let f = self.num_freqs;
        if f == 1 {
            return vec![1.0];
        }
        let a = libm::log(self.max_freq);
        (0..f)
            .map(|k| libm::exp((k as f64 * a) / (f - 1) as f64) as f32)
            .collect()
    }

    /// The largest layer width, inputs included: the size of an activation buffer.
    fn max_units(&self) -> usize {
        self.feature_dim().max(self.width).max(self.out_dim)
    }
}

/// Coordinate of point `i` of an axis of `k` points (section 7.2).
pub fn coordinate(i: usize, k: usize) -> f32 {
    if k == 1 {
        return 0.0;
    }
    ((2 * i as i64 - (k as i64 - 1)) as f64 / (k - 1) as f64) as f32
}

/// The Fourier features of every point of a patch of `patch` points per axis, feature-major:
/// `[feature_dim][N]` (N = the product of `patch`), points row-major. Shared by all patches.
#[allow(clippy::needless_range_loop)] // d indexes coords and patch alike, as in the document
pub fn patch_features(config: &NetworkConfig, patch: &[usize]) -> Vec<f32> {
    assert_eq!(
        patch.len(),
        config.in_dim,
        "one patch size per coordinate axis"
    );
    let n: usize = patch.iter().product();
    let freqs = config.frequencies();
    let pi = std::f32::consts::PI;
    let half = config.in_dim * config.num_freqs;
    let mut out = vec![0.0f32; 2 * half * n];
    for point in 0..n {
        // Row-major point index -> per-axis index (the last axis fastest).
        let mut rest = point;
        let mut coords = [0.0f32; 2];
        for d in (0..config.in_dim).rev() {
            coords[d] = coordinate(rest % patch[d], patch[d]);
            rest /= patch[d];
        }
        for d in 0..config.in_dim {
            let scaled = pi * coords[d];
            for (k, &f) in freqs.iter().enumerate() {
                let phi = scaled * f;
                let feature = d * config.num_freqs + k;
                out[feature * n + point] = sine::cos(phi);
                out[(half + feature) * n + point] = sine::sin(phi);
            }
        }
    }
    out
}

/// Layer l's effective parameters `E_l` (section 7.3), row-major `[in + 1, out]`, for every
/// layer concatenated (the coded layout): `theta` when there are no mixing matrices, else
/// `(Lm Theta) Rm` with the document's summation order. `out` has the length of `theta`.
pub fn effective_params(
    config: &NetworkConfig,
    theta: &[f32],
    mix: Option<&[f32]>,
    out: &mut [f32],
) {
    assert_eq!(theta.len(), out.len());
    let Some(mix) = mix else {
        out.copy_from_slice(theta);
        return;
    };
    let (mut pos, mut mpos) = (0, 0);
    let mut t = Vec::new();
    for (i, o) in config.layer_shapes() {
        let rows = i + 1;
        let th = &theta[pos..pos + rows * o];
        let lm = &mix[mpos..mpos + rows * rows];
        let rm = &mix[mpos + rows * rows..mpos + rows * rows + o * o];
        // Loops ordered (row, inner index, column): each entry still sums its products in
        // increasing inner index from +0.0, and the column loop vectorises.
        t.clear();
        t.resize(rows * o, 0.0f32);
        for r in 0..rows {
            let t_row = &mut t[r * o..(r + 1) * o];
            for k in 0..rows {
                let l = lm[r * rows + k];
                for (acc, &v) in t_row.iter_mut().zip(&th[k * o..(k + 1) * o]) {
                    *acc += l * v;
                }
            }
        }
        let e = &mut out[pos..pos + rows * o];
        e.fill(0.0);
        for r in 0..rows {
            let e_row = &mut e[r * o..(r + 1) * o];
            for k in 0..o {
                let tv = t[r * o + k];
                for (acc, &v) in e_row.iter_mut().zip(&rm[k * o..(k + 1) * o]) {
                    *acc += tv * v;
                }
            }
        }
        pos += rows * o;
        mpos += rows * rows + o * o;
    }
}

/// Scratch space of the forward pass, reused across patches.
pub struct Scratch {
    a: Vec<[f32; TILE]>,
    b: Vec<[f32; TILE]>,
}

impl Scratch {
    pub fn new(config: &NetworkConfig) -> Scratch {
        let units = config.max_units();
        Scratch {
            a: vec![[0.0; TILE]; units],
            b: vec![[0.0; TILE]; units],
        }
    }
}

/// The network's outputs at the `n` points of one patch: `features` is `[feature_dim][n]`
/// (from `patch_features`), `params` the patch's effective parameters, and `out` receives the
/// outputs point-major, `[n][out_dim]`.
pub fn forward(
    isa: Isa,
    config: &NetworkConfig,
    params: &[f32],
    features: &[f32],
    n: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    assert_eq!(features.len(), config.feature_dim() * n);
    assert_eq!(out.len(), config.out_dim * n);
    assert_eq!(params.len() as u64, config.num_params());
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(
            config: &NetworkConfig,
            params: &[f32],
            features: &[f32],
            n: usize,
            scratch: &mut Scratch,
            out: &mut [f32],
        ) {
            forward_body(config, params, features, n, scratch, out)
        }
        if isa == Isa::Avx2 {
            assert!(
                Isa::avx2_available(),
                "AVX2 kernel requested on a CPU without AVX2"
            );
            // SAFETY: the CPU supports AVX2 (checked above).
            return unsafe { avx2(config, params, features, n, scratch, out) };
        }
    }
    let _ = isa;
    forward_body(config, params, features, n, scratch, out)
}

#[inline(always)]
fn forward_body(
    config: &NetworkConfig,
    params: &[f32],
    features: &[f32],
    n: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let shapes = config.layer_shapes();
    let w0 = config.w0 as f32;
    let c = config.out_dim;
    for start in (0..n).step_by(TILE) {
        let len = TILE.min(n - start);
        // The tile's inputs; lanes past the last point compute on zeros and are discarded.
        for (f, lane) in scratch.a[..config.feature_dim()].iter_mut().enumerate() {
            lane[..len].copy_from_slice(&features[f * n + start..f * n + start + len]);
            lane[len..].fill(0.0);
        }
        let (mut x, mut y) = (&mut scratch.a, &mut scratch.b);
        let mut pos = 0;
        for (l, &(i, o)) in shapes.iter().enumerate() {
            let e = &params[pos..pos + (i + 1) * o];
            let hidden = l + 1 < shapes.len();
            layer(
                &x[..i],
                e,
                o,
                if hidden { Some(w0) } else { None },
                &mut y[..o],
            );
            pos += (i + 1) * o;
            std::mem::swap(&mut x, &mut y);
        }
        for (p, point) in out[start * c..(start + len) * c]
            .chunks_exact_mut(c)
            .enumerate()
        {
            for (ch, v) in point.iter_mut().enumerate() {
                *v = x[ch][p];
            }
        }
    }
}

/// One layer on a tile: `y[o] = act(bias_o + sum_i x[i] * e[i][o])`, the sum from the bias in
/// increasing i, one lane per point.
#[inline(always)]
fn layer(x: &[[f32; TILE]], e: &[f32], out: usize, w0: Option<f32>, y: &mut [[f32; TILE]]) {
    let mut o = 0;
    while o + OUT_BLOCK <= out {
        units::<OUT_BLOCK>(x, e, out, o, y);
        o += OUT_BLOCK;
    }
    while o < out {
        units::<1>(x, e, out, o, y);
        o += 1;
    }
    if let Some(w0) = w0 {
        for y_o in y.iter_mut() {
            for a in y_o.iter_mut() {
                *a = sine::sin(w0 * *a);
            }
        }
    }
}

/// Output units computed together: their accumulators (K units x VECTORS vectors of 8 lanes) stay in
/// registers while the inputs stream past, each input load serving K units.
const OUT_BLOCK: usize = 4;
/// Lanes per vector, and vectors of lanes per accumulator group.
const LANES: usize = 8;
const VECTORS: usize = 2;

/// Eight lanes, passed by value so that the compiler keeps them in a vector register.
#[derive(Clone, Copy)]
struct Lanes([f32; LANES]);

impl Lanes {
    #[inline(always)]
    fn load(x: &[f32]) -> Lanes {
        Lanes(x[..LANES].try_into().expect("8 lanes"))
    }

    /// `self + x * w` in every lane: the multiply rounded, then the add (never fused).
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // an index loop over a fixed lane count vectorises
    fn add_product(self, x: Lanes, w: f32) -> Lanes {
        let mut r = self.0;
        for l in 0..LANES {
            r[l] = self.0[l] + x.0[l] * w;
        }
        Lanes(r)
    }
}

/// Pre-activations of units `o0 .. o0 + K` on the tile (no activation).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // fixed-size index loops keep the accumulators in registers
fn units<const K: usize>(
    x: &[[f32; TILE]],
    e: &[f32],
    out: usize,
    o0: usize,
    y: &mut [[f32; TILE]],
) {
    let inputs = x.len();
    for start in (0..TILE).step_by(VECTORS * LANES) {
        let mut acc: [[Lanes; VECTORS]; K] =
            std::array::from_fn(|k| [Lanes([e[inputs * out + o0 + k]; LANES]); VECTORS]);
        for (i, x_i) in x.iter().enumerate() {
            let v: [Lanes; VECTORS] =
                std::array::from_fn(|j| Lanes::load(&x_i[start + j * LANES..]));
            let w = &e[i * out + o0..i * out + o0 + K];
            for k in 0..K {
                for j in 0..VECTORS {
                    acc[k][j] = acc[k][j].add_product(v[j], w[k]);
                }
            }
        }
        for k in 0..K {
            for j in 0..VECTORS {
                let at = start + j * LANES;
                y[o0 + k][at..at + LANES].copy_from_slice(&acc[k][j].0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mixed_dims: (usize, usize)) -> NetworkConfig {
        NetworkConfig {
            in_dim: mixed_dims.0,
            out_dim: mixed_dims.1,
            num_freqs: 4,
            max_freq: 8.0,
            width: 6,
            depth: 2,
            w0: 30.0,
        }
    }

    fn pseudo_random(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32 - 0.5) * scale
            })
            .collect()
    }

    /// The forward pass written point by point from section 7.2, with no tiles and no lanes.
    fn reference_point(config: &NetworkConfig, params: &[f32], feats: &[f32]) -> Vec<f32> {
        let mut v = feats.to_vec();
        let mut pos = 0;
        let shapes = config.layer_shapes();
        for (l, &(i, o)) in shapes.iter().enumerate() {
            let e = &params[pos..pos + (i + 1) * o];
            let mut next = Vec::with_capacity(o);
            for unit in 0..o {
                let mut acc = e[i * o + unit];
                for k in 0..i {
                    acc += v[k] * e[k * o + unit];
                }
                next.push(if l + 1 < shapes.len() {
                    sine::sin(config.w0 as f32 * acc)
                } else {
                    acc
                });
            }
            v = next;
            pos += (i + 1) * o;
        }
        v
    }

    #[test]
    fn tiles_and_every_isa_give_the_pointwise_reference_bits() {
        for (dims, patch) in [((2, 3), vec![9usize, 11]), ((1, 1), vec![150usize])] {
            let cfg = config(dims);
            let d = cfg.num_params() as usize;
            let params = pseudo_random(d, 7, 0.6);
            let feats = patch_features(&cfg, &patch);
            let n: usize = patch.iter().product();
            let mut isas = vec![Isa::Portable];
            if Isa::avx2_available() {
                isas.push(Isa::Avx2);
            }
            for isa in isas {
                let mut out = vec![0.0; n * cfg.out_dim];
                forward(
                    isa,
                    &cfg,
                    &params,
                    &feats,
                    n,
                    &mut Scratch::new(&cfg),
                    &mut out,
                );
                for p in 0..n {
                    let point: Vec<f32> =
                        (0..cfg.feature_dim()).map(|f| feats[f * n + p]).collect();
                    let expect = reference_point(&cfg, &params, &point);
                    for ch in 0..cfg.out_dim {
                        assert_eq!(out[p * cfg.out_dim + ch].to_bits(), expect[ch].to_bits());
                    }
                }
            }
        }
    }

    #[test]
    fn coordinates_span_minus_one_to_one() {
        assert_eq!(coordinate(0, 1), 0.0);
        assert_eq!((coordinate(0, 64), coordinate(63, 64)), (-1.0, 1.0));
        assert_eq!(coordinate(2, 5), 0.0);
        assert_eq!(coordinate(1, 3), 0.0);
    }

    #[test]
    fn frequencies_run_from_one_to_max_freq() {
        let f = config((2, 3)).frequencies();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0], 1.0);
        assert_eq!(f[3], 8.0);
        assert!(f.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn identity_mixing_leaves_the_parameters_unchanged() {
        let cfg = config((2, 3));
        let theta = pseudo_random(cfg.num_params() as usize, 3, 1.0);
        let mut mix = Vec::new();
        for (i, o) in cfg.layer_shapes() {
            for (n, _) in [(i + 1, ()), (o, ())] {
                for r in 0..n {
                    for c in 0..n {
                        mix.push(if r == c { 1.0 } else { 0.0 });
                    }
                }
            }
        }
        assert_eq!(mix.len() as u64, cfg.mix_size());
        let mut out = vec![0.0; theta.len()];
        effective_params(&cfg, &theta, Some(&mix), &mut out);
        assert_eq!(out, theta);
    }

    #[test]
    fn config_json_is_read_strictly() {
        let ok = r#"{"depth":3,"in_dim":2,"max_freq":32.0,"num_freqs":8,"out_dim":3,"w0":30.0,"width":32}"#;
        let cfg = NetworkConfig::from_json(ok).unwrap();
        assert_eq!(cfg.num_params(), 3267);
        for bad in [
            r#"{"depth":3,"in_dim":2,"max_freq":32.0,"num_freqs":8,"out_dim":3,"w0":30.0}"#,
            r#"{"depth":3.5,"in_dim":2,"max_freq":32.0,"num_freqs":8,"out_dim":3,"w0":30.0,"width":32}"#,
            r#"{"depth":3,"in_dim":3,"max_freq":32.0,"num_freqs":8,"out_dim":3,"w0":30.0,"width":32}"#,
            r#"{"depth":3,"in_dim":2,"max_freq":0.5,"num_freqs":8,"out_dim":3,"w0":30.0,"width":32}"#,
            r#"{"depth":3,"in_dim":2,"max_freq":32.0,"num_freqs":8,"out_dim":3,"w0":30.0,"width":32,"latent_grid":9,"latent_channels":4}"#,
            r#"{"depth":3,"in_dim":2,"max_freq":32.0,"num_freqs":8,"out_dim":3,"w0":30.0,"width":32,"extra":1}"#,
            r#"[1, 2]"#,
        ] {
            assert!(NetworkConfig::from_json(bad).is_err(), "{bad}");
        }
    }
}
