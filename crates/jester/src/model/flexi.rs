//! FlexiViT's resizing (Beyer et al. 2023; docs/ALGORITHM.md §5): the patch-embedding kernel is stored at one
//! base patch size and resampled to another with the pseudo-inverse of the bilinear resize
//! ("PI-resize"); position embeddings are resized bilinearly to the token grid.
//!
//! With A `[q², p²]` the bilinear resize of a p×p patch to q×q (x' = A·x), PI-resize picks the kernel
//! w' = pinv(Aᵀ)·w, so that ⟨A·x, w'⟩ = ⟨x, Aᵀ·pinv(Aᵀ)·w⟩ = ⟨x, w⟩ whenever q ≥ p (Aᵀ then has full
//! row rank): an upsampled patch meets the resized kernel and gives the original token.
use tch::{Device, Kind, Tensor};

/// The bilinear resize matrix A `[new², old²]` (f64, CPU): column k is the k-th basis patch
/// resized from old×old to new×new (half-pixel centres, antialiased when shrinking, as
/// `jax.image.resize` and `tf.image.resize(..., antialias=True)`).
pub fn bilinear_resize_matrix(old: usize, new: usize) -> Tensor {
    let (o, n) = (old as i64, new as i64);
    let basis = Tensor::eye(o * o, (Kind::Double, Device::Cpu)).reshape([o * o, 1, o, o]);
    let resized = resize_bilinear(&basis, new);
    resized.reshape([o * o, n * n]).transpose(0, 1).contiguous()
}

/// The matrix M `[old², new²]` that maps flattened kernels: w'_flat = w_flat · M, i.e. Mᵀ =
/// pinv(Aᵀ) (FlexiViT's `resize_mat_pinv`). f64 on the CPU; cast it once where it is used.
pub fn pi_resize_matrix(old: usize, new: usize) -> Tensor {
    if old == new {
        let o = (old * old) as i64;
        return Tensor::eye(o, (Kind::Double, Device::Cpu));
    }
    let a = bilinear_resize_matrix(old, new);
    a.transpose(0, 1)
        .linalg_pinv(1e-10, false)
        .transpose(0, 1)
        .contiguous()
}

/// Resamples a kernel `[out, in, p, p]` to `[out, in, q, q]` with `matrix` = [`pi_resize_matrix`]
/// (p, q) (on the kernel's device and dtype). Differentiable in the kernel.
pub fn resample_kernel(kernel: &Tensor, matrix: &Tensor, new: usize) -> Tensor {
    let size = kernel.size();
    let (out, inp) = (size[0], size[1]);
    kernel
        .reshape([out * inp, size[2] * size[3]])
        .matmul(matrix)
        .reshape([out, inp, new as i64, new as i64])
}

/// Resizes position embeddings `[1, g², W]` on a g×g grid to `[1, n², W]` on an n×n grid
/// (bilinear, antialiased when shrinking). Differentiable.
pub fn resize_positions(positions: &Tensor, old_grid: usize, new_grid: usize) -> Tensor {
    if old_grid == new_grid {
        return positions.shallow_clone();
    }
    let (g, n) = (old_grid as i64, new_grid as i64);
    let width = positions.size()[2];
    let grid = positions.reshape([1, g, g, width]).permute([0, 3, 1, 2]);
    resize_bilinear(&grid, new_grid)
        .permute([0, 2, 3, 1])
        .reshape([1, n * n, width])
}

/// Bilinear resize of `[N, C, h, w]` images to `size × size`.
fn resize_bilinear(images: &Tensor, size: usize) -> Tensor {
    let s = size as i64;
    images.internal_upsample_bilinear2d_aa([s, s], false, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_abs(t: &Tensor) -> f64 {
        t.abs().max().double_value(&[])
    }

    #[test]
    fn resizing_to_the_same_size_is_the_identity() {
        for p in [2, 4, 7] {
            let m = pi_resize_matrix(p, p);
            let eye = Tensor::eye((p * p) as i64, (Kind::Double, Device::Cpu));
            assert!(max_abs(&(m - &eye)) < 1e-12);
            // And the resize matrix itself, computed the long way round, is the identity too.
            let a = bilinear_resize_matrix(p, p);
            assert!(max_abs(&(a - eye)) < 1e-12, "p = {p}");
        }
    }

    #[test]
    fn resize_matrix_preserves_constants() {
        // Bilinear resizing keeps a constant patch constant: every row of A sums to 1.
        for (p, q) in [(4, 8), (8, 4), (3, 7)] {
            let a = bilinear_resize_matrix(p, q);
            let rows = a.sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
            assert!(max_abs(&(rows - 1.0)) < 1e-9, "{p} -> {q}");
        }
    }

    #[test]
    fn upsampled_patches_meet_the_resized_kernel_in_the_original_token() {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(3);
        for (p, q) in [(4, 8), (4, 6), (3, 9)] {
            let kernel = Tensor::randn([5, 3, p as i64, p as i64], (Kind::Double, Device::Cpu));
            let patches = Tensor::randn([11, 3, p as i64, p as i64], (Kind::Double, Device::Cpu));
            let tokens = patches
                .reshape([11, -1])
                .matmul(&kernel.reshape([5, -1]).tr());
            let up = resize_bilinear(&patches, q);
            let wide = resample_kernel(&kernel, &pi_resize_matrix(p, q), q);
            let up_tokens = up.reshape([11, -1]).matmul(&wide.reshape([5, -1]).tr());
            let err = max_abs(&(up_tokens - &tokens)) / max_abs(&tokens);
            assert!(err < 1e-9, "{p} -> {q}: relative error {err}");
        }
    }

    #[test]
    fn a_plain_bilinear_kernel_resize_does_not_preserve_tokens() {
        // The property above is PI-resize's, not any resize's: resizing the kernel itself with
        // bilinear interpolation changes the tokens by O(1) (this is what FlexiViT fixes).
        let _guard = tch::no_grad_guard();
        tch::manual_seed(4);
        let kernel = Tensor::randn([5, 3, 4, 4], (Kind::Double, Device::Cpu));
        let patches = Tensor::randn([11, 3, 4, 4], (Kind::Double, Device::Cpu));
        let tokens = patches
            .reshape([11, -1])
            .matmul(&kernel.reshape([5, -1]).tr());
        let up = resize_bilinear(&patches, 8);
        let naive = resize_bilinear(&kernel, 8);
        let up_tokens = up.reshape([11, -1]).matmul(&naive.reshape([5, -1]).tr());
        assert!(max_abs(&(up_tokens - &tokens)) / max_abs(&tokens) > 0.1);
    }

    #[test]
    fn position_embeddings_resize_to_the_grid_and_back_at_the_same_size() {
        let pos = Tensor::randn([1, 64, 6], (Kind::Float, Device::Cpu));
        assert_eq!(resize_positions(&pos, 8, 4).size(), [1, 16, 6]);
        assert!(max_abs(&(resize_positions(&pos, 8, 8) - &pos)) == 0.0);
        // A constant field stays constant at any grid.
        let flat = Tensor::ones([1, 64, 6], (Kind::Float, Device::Cpu)) * 0.5;
        assert!(max_abs(&(resize_positions(&flat, 8, 4) - 0.5)) < 1e-6);
    }
}
