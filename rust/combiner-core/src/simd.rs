//! Eight-lane vectors for the version-3 candidate kernels, with two implementations of one
//! interface: `Portable` (arrays, one scalar operation per lane, any CPU) and `Avx2` (x86_64
//! AVX2 intrinsics). A kernel written once against [`Simd`] is instantiated for both.
//!
//! Bit-exactness: every floating-point method is one IEEE 754 binary32 operation per lane,
//! rounded to nearest even (`+ - * /`, `sqrt`, the exact i32 -> f32 conversion of values below
//! 2^24), never a fused multiply-add, and every integer method is exact. A lane's result therefore
//! does not depend on the implementation; `kernels32`'s tests check it bit for bit.
//!
//! Safety: the `Avx2` methods call AVX2 intrinsics. They may only run on a CPU with AVX2, which
//! the dispatchers in `kernels32` check (`Isa::avx2_available`) before entering code that uses
//! them; every method is `#[inline(always)]` so that it compiles inside those
//! `#[target_feature(enable = "avx2")]` functions.

/// Lanes per vector.
pub const LANES: usize = 8;

/// The operations the version-3 kernels need on eight lanes.
pub trait Simd: Copy {
    /// Eight binary32 values.
    type F: Copy;
    /// Eight u32 values.
    type U: Copy;
    /// Eight lane conditions.
    type M: Copy;

    fn splat_f(x: f32) -> Self::F;
    fn splat_u(x: u32) -> Self::U;
    fn load_u(x: &[u32; LANES]) -> Self::U;
    fn load_f(x: &[f32; LANES]) -> Self::F;
    fn store_f(x: Self::F, out: &mut [f32; LANES]);
    fn store_u(x: Self::U, out: &mut [u32; LANES]);
    fn add(a: Self::F, b: Self::F) -> Self::F;
    fn sub(a: Self::F, b: Self::F) -> Self::F;
    fn mul(a: Self::F, b: Self::F) -> Self::F;
    fn div(a: Self::F, b: Self::F) -> Self::F;
    fn sqrt(a: Self::F) -> Self::F;
    /// a < b (false for NaN).
    fn lt(a: Self::F, b: Self::F) -> Self::M;
    /// a > b for a and b below 2^31.
    fn gt_u(a: Self::U, b: Self::U) -> Self::M;
    /// a where `m`, else b.
    fn select_f(m: Self::M, a: Self::F, b: Self::F) -> Self::F;
    /// a where `m`, else b.
    fn select_u(m: Self::M, a: Self::U, b: Self::U) -> Self::U;
    fn xor(a: Self::U, b: Self::U) -> Self::U;
    fn and(a: Self::U, b: Self::U) -> Self::U;
    fn or(a: Self::U, b: Self::U) -> Self::U;
    /// Wrapping addition.
    fn add_u(a: Self::U, b: Self::U) -> Self::U;
    fn shr<const N: i32>(a: Self::U) -> Self::U;
    /// The lanes as i32, converted to binary32 (exact below 2^24 in magnitude).
    fn to_f(a: Self::U) -> Self::F;
    fn bits(a: Self::F) -> Self::U;
    fn from_bits(a: Self::U) -> Self::F;
    /// The high and low halves of the 64-bit products a * m.
    fn mulhilo(a: Self::U, m: u32) -> (Self::U, Self::U);
    /// Bit i set where lane i of `m` is.
    fn mask_bits(m: Self::M) -> u32;
    /// Write the lanes of `v` whose bit is set in `bits` to `dst[0..]` in lane order; returns
    /// their count. `dst` has room for all eight (lanes after the count get unspecified values).
    fn compress_store(bits: u32, v: Self::U, dst: &mut [u32; LANES]) -> usize;
}

/// Every lane computed by scalar code: the reference instantiation, valid on every CPU.
#[derive(Clone, Copy, Debug)]
pub struct Portable;

macro_rules! lanes {
    (|$i:ident| $e:expr) => {
        std::array::from_fn(|$i| $e)
    };
}

impl Simd for Portable {
    type F = [f32; LANES];
    type U = [u32; LANES];
    type M = [bool; LANES];

    #[inline(always)]
    fn splat_f(x: f32) -> Self::F {
        [x; LANES]
    }
    #[inline(always)]
    fn splat_u(x: u32) -> Self::U {
        [x; LANES]
    }
    #[inline(always)]
    fn load_u(x: &[u32; LANES]) -> Self::U {
        *x
    }
    #[inline(always)]
    fn load_f(x: &[f32; LANES]) -> Self::F {
        *x
    }
    #[inline(always)]
    fn store_f(x: Self::F, out: &mut [f32; LANES]) {
        *out = x;
    }
    #[inline(always)]
    fn store_u(x: Self::U, out: &mut [u32; LANES]) {
        *out = x;
    }
    #[inline(always)]
    fn add(a: Self::F, b: Self::F) -> Self::F {
        lanes!(|i| a[i] + b[i])
    }
    #[inline(always)]
    fn sub(a: Self::F, b: Self::F) -> Self::F {
        lanes!(|i| a[i] - b[i])
    }
    #[inline(always)]
    fn mul(a: Self::F, b: Self::F) -> Self::F {
        lanes!(|i| a[i] * b[i])
    }
    #[inline(always)]
    fn div(a: Self::F, b: Self::F) -> Self::F {
        lanes!(|i| a[i] / b[i])
    }
    #[inline(always)]
    fn sqrt(a: Self::F) -> Self::F {
        lanes!(|i| a[i].sqrt())
    }
    #[inline(always)]
    fn lt(a: Self::F, b: Self::F) -> Self::M {
        lanes!(|i| a[i] < b[i])
    }
    #[inline(always)]
    fn gt_u(a: Self::U, b: Self::U) -> Self::M {
        lanes!(|i| a[i] > b[i])
    }
    #[inline(always)]
    fn select_f(m: Self::M, a: Self::F, b: Self::F) -> Self::F {
        lanes!(|i| if m[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn select_u(m: Self::M, a: Self::U, b: Self::U) -> Self::U {
        lanes!(|i| if m[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn xor(a: Self::U, b: Self::U) -> Self::U {
        lanes!(|i| a[i] ^ b[i])
    }
    #[inline(always)]
    fn and(a: Self::U, b: Self::U) -> Self::U {
        lanes!(|i| a[i] & b[i])
    }
    #[inline(always)]
    fn or(a: Self::U, b: Self::U) -> Self::U {
        lanes!(|i| a[i] | b[i])
    }
    #[inline(always)]
    fn add_u(a: Self::U, b: Self::U) -> Self::U {
        lanes!(|i| a[i].wrapping_add(b[i]))
    }
    #[inline(always)]
    fn shr<const N: i32>(a: Self::U) -> Self::U {
        lanes!(|i| a[i] >> N)
    }
    #[inline(always)]
    fn to_f(a: Self::U) -> Self::F {
        lanes!(|i| a[i] as i32 as f32)
    }
    #[inline(always)]
    fn bits(a: Self::F) -> Self::U {
        lanes!(|i| a[i].to_bits())
    }
    #[inline(always)]
    fn from_bits(a: Self::U) -> Self::F {
        lanes!(|i| f32::from_bits(a[i]))
    }
    #[inline(always)]
    fn mulhilo(a: Self::U, m: u32) -> (Self::U, Self::U) {
        let p: [u64; LANES] = lanes!(|i| u64::from(a[i]) * u64::from(m));
        (lanes!(|i| (p[i] >> 32) as u32), lanes!(|i| p[i] as u32))
    }
    #[inline(always)]
    fn mask_bits(m: Self::M) -> u32 {
        m.iter()
            .enumerate()
            .fold(0, |acc, (i, &b)| acc | (u32::from(b) << i))
    }
    #[inline(always)]
    fn compress_store(bits: u32, v: Self::U, dst: &mut [u32; LANES]) -> usize {
        let mut n = 0;
        for (i, &x) in v.iter().enumerate() {
            dst[n] = x;
            n += ((bits >> i) & 1) as usize;
        }
        n
    }
}

/// AVX2 (x86_64): one instruction per operation on all eight lanes.
#[derive(Clone, Copy, Debug)]
pub struct Avx2;

/// For every 8-bit lane mask, the lane indices of its set bits in ascending order, then zeros:
/// the permutation that moves the selected lanes to the front.
#[cfg(target_arch = "x86_64")]
static COMPRESS: [[u32; LANES]; 256] = {
    let mut table = [[0u32; LANES]; 256];
    let mut bits = 0;
    while bits < 256 {
        let (mut lane, mut n) = (0, 0);
        while lane < LANES {
            if bits >> lane & 1 == 1 {
                table[bits][n] = lane as u32;
                n += 1;
            }
            lane += 1;
        }
        bits += 1;
    }
    table
};

/// The number of set bits of every 8-bit lane mask (a table: `count_ones` compiles to a long
/// sequence without the separate `popcnt` target feature).
#[cfg(target_arch = "x86_64")]
static COMPRESS_COUNT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut bits = 0;
    while bits < 256 {
        table[bits] = (bits as u32).count_ones() as u8;
        bits += 1;
    }
    table
};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Avx2, COMPRESS, COMPRESS_COUNT, LANES, Simd};

    // SAFETY (every method): AVX2 is available whenever this code runs (see the module docs);
    // loads and stores go through references to arrays of exactly eight 32-bit lanes.
    impl Simd for Avx2 {
        type F = __m256;
        type U = __m256i;
        type M = __m256i;

        #[inline(always)]
        fn splat_f(x: f32) -> Self::F {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        fn splat_u(x: u32) -> Self::U {
            unsafe { _mm256_set1_epi32(x as i32) }
        }
        #[inline(always)]
        fn load_u(x: &[u32; LANES]) -> Self::U {
            unsafe { _mm256_loadu_si256(x.as_ptr().cast()) }
        }
        #[inline(always)]
        fn load_f(x: &[f32; LANES]) -> Self::F {
            unsafe { _mm256_loadu_ps(x.as_ptr()) }
        }
        #[inline(always)]
        fn store_f(x: Self::F, out: &mut [f32; LANES]) {
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), x) }
        }
        #[inline(always)]
        fn store_u(x: Self::U, out: &mut [u32; LANES]) {
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), x) }
        }
        #[inline(always)]
        fn add(a: Self::F, b: Self::F) -> Self::F {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(a: Self::F, b: Self::F) -> Self::F {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(a: Self::F, b: Self::F) -> Self::F {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn div(a: Self::F, b: Self::F) -> Self::F {
            unsafe { _mm256_div_ps(a, b) }
        }
        #[inline(always)]
        fn sqrt(a: Self::F) -> Self::F {
            unsafe { _mm256_sqrt_ps(a) }
        }
        #[inline(always)]
        fn lt(a: Self::F, b: Self::F) -> Self::M {
            unsafe { _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(a, b)) }
        }
        #[inline(always)]
        fn gt_u(a: Self::U, b: Self::U) -> Self::M {
            unsafe { _mm256_cmpgt_epi32(a, b) }
        }
        #[inline(always)]
        fn select_f(m: Self::M, a: Self::F, b: Self::F) -> Self::F {
            unsafe { _mm256_blendv_ps(b, a, _mm256_castsi256_ps(m)) }
        }
        #[inline(always)]
        fn select_u(m: Self::M, a: Self::U, b: Self::U) -> Self::U {
            unsafe { _mm256_blendv_epi8(b, a, m) }
        }
        #[inline(always)]
        fn xor(a: Self::U, b: Self::U) -> Self::U {
            unsafe { _mm256_xor_si256(a, b) }
        }
        #[inline(always)]
        fn and(a: Self::U, b: Self::U) -> Self::U {
            unsafe { _mm256_and_si256(a, b) }
        }
        #[inline(always)]
        fn or(a: Self::U, b: Self::U) -> Self::U {
            unsafe { _mm256_or_si256(a, b) }
        }
        #[inline(always)]
        fn add_u(a: Self::U, b: Self::U) -> Self::U {
            unsafe { _mm256_add_epi32(a, b) }
        }
        #[inline(always)]
        fn shr<const N: i32>(a: Self::U) -> Self::U {
            unsafe { _mm256_srli_epi32::<N>(a) }
        }
        #[inline(always)]
        fn to_f(a: Self::U) -> Self::F {
            unsafe { _mm256_cvtepi32_ps(a) }
        }
        #[inline(always)]
        fn bits(a: Self::F) -> Self::U {
            unsafe { _mm256_castps_si256(a) }
        }
        #[inline(always)]
        fn from_bits(a: Self::U) -> Self::F {
            unsafe { _mm256_castsi256_ps(a) }
        }
        #[inline(always)]
        fn mulhilo(a: Self::U, m: u32) -> (Self::U, Self::U) {
            unsafe {
                let mm = _mm256_set1_epi32(m as i32);
                // The 64-bit products of the even lanes, then of the odd lanes moved down, four
                // at a time, split into halves by shifts and blends (a 32-bit `mullo` for the low
                // halves would cost a third multiply, and vector multiplies are the bottleneck).
                let even = _mm256_mul_epu32(a, mm);
                let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), mm);
                let hi = _mm256_blend_epi32::<0xAA>(_mm256_srli_epi64::<32>(even), odd);
                let lo = _mm256_blend_epi32::<0xAA>(even, _mm256_slli_epi64::<32>(odd));
                (hi, lo)
            }
        }
        #[inline(always)]
        fn mask_bits(m: Self::M) -> u32 {
            unsafe { _mm256_movemask_ps(_mm256_castsi256_ps(m)) as u32 }
        }
        #[inline(always)]
        fn compress_store(bits: u32, v: Self::U, dst: &mut [u32; LANES]) -> usize {
            let order = &COMPRESS[bits as usize & 0xFF];
            unsafe {
                let packed = _mm256_permutevar8x32_epi32(v, Self::load_u(order));
                Self::store_u(packed, dst);
            }
            usize::from(COMPRESS_COUNT[bits as usize & 0xFF])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_compress_keeps_the_selected_lanes_in_order() {
        let v: [u32; LANES] = std::array::from_fn(|i| 10 + i as u32);
        let mut dst = [0u32; LANES];
        let n = Portable::compress_store(0b1010_0110, v, &mut dst);
        assert_eq!(&dst[..n], &[11, 12, 15, 17]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_compress_and_mulhilo_match_portable() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let v: [u32; LANES] = std::array::from_fn(|i| 0x9E37_79B9u32.wrapping_mul(i as u32 + 1));
        for bits in 0..256u32 {
            let (mut a, mut b) = ([0u32; LANES], [0u32; LANES]);
            let n = Portable::compress_store(bits, v, &mut a);
            let m = Avx2::compress_store(bits, Avx2::load_u(&v), &mut b);
            assert_eq!((n, &a[..n]), (m, &b[..m]), "bits {bits:#x}");
        }
        let (hi, lo) = Avx2::mulhilo(Avx2::load_u(&v), 0xD251_1F53);
        let (mut h, mut l) = ([0u32; LANES], [0u32; LANES]);
        Avx2::store_u(hi, &mut h);
        Avx2::store_u(lo, &mut l);
        assert_eq!((h, l), Portable::mulhilo(v, 0xD251_1F53));
    }
}
