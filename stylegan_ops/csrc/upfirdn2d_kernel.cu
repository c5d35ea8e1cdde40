// upfirdn2d for stylegan_ops: one thread per output sample, visiting only the kernel taps that
// land on real (not zero-inserted) input samples, i.e. a polyphase evaluation of
//   out[o] = sum_t z[o * down + t - pad0] * k[kh - 1 - t]      (per axis; z = zero-inserted input)
// where z[m] = x[m / up] when up divides m and 0 <= m / up < in, and 0 otherwise.
// Accumulation is in float (double for double inputs); the kernel tensor has that type.
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <type_traits>

namespace {

struct Geometry {
  int in_h, in_w, out_h, out_w, kernel_h, kernel_w;
  int up_x, up_y, down_x, down_y, pad_x0, pad_y0;
};

__device__ __forceinline__ int positive_mod(int a, int m) {
  const int r = a % m;
  return r < 0 ? r + m : r;
}

template <typename scalar_t, typename acc_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x, const acc_t* __restrict__ kernel,
                                 scalar_t* __restrict__ out, int64_t total, Geometry g) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int ox = static_cast<int>(i % g.out_w);
    const int oy = static_cast<int>((i / g.out_w) % g.out_h);
    const int64_t plane = i / (static_cast<int64_t>(g.out_w) * g.out_h);
    const scalar_t* src = x + plane * g.in_h * g.in_w;
    // Zero-inserted coordinate of tap 0; tap t reads z[base + t], real only when up divides it.
    const int base_y = oy * g.down_y - g.pad_y0;
    const int base_x = ox * g.down_x - g.pad_x0;
    const int first_ty = positive_mod(-base_y, g.up_y);
    const int first_tx = positive_mod(-base_x, g.up_x);
    acc_t acc = acc_t(0);
    for (int ty = first_ty; ty < g.kernel_h; ty += g.up_y) {
      const int my = base_y + ty;
      if (my < 0) continue;
      const int iy = my / g.up_y;
      if (iy >= g.in_h) break;
      const acc_t* kernel_row = kernel + (g.kernel_h - 1 - ty) * g.kernel_w;
      for (int tx = first_tx; tx < g.kernel_w; tx += g.up_x) {
        const int mx = base_x + tx;
        if (mx < 0) continue;
        const int ix = mx / g.up_x;
        if (ix >= g.in_w) break;
        acc += static_cast<acc_t>(src[static_cast<int64_t>(iy) * g.in_w + ix]) * kernel_row[g.kernel_w - 1 - tx];
      }
    }
    out[i] = static_cast<scalar_t>(acc);
  }
}

}  // namespace

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x, int64_t up_y,
                          int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                          int64_t pad_y1) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  Geometry g;
  g.in_h = static_cast<int>(x.size(2));
  g.in_w = static_cast<int>(x.size(3));
  g.kernel_h = static_cast<int>(kernel.size(0));
  g.kernel_w = static_cast<int>(kernel.size(1));
  g.up_x = static_cast<int>(up_x);
  g.up_y = static_cast<int>(up_y);
  g.down_x = static_cast<int>(down_x);
  g.down_y = static_cast<int>(down_y);
  g.pad_x0 = static_cast<int>(pad_x0);
  g.pad_y0 = static_cast<int>(pad_y0);
  g.out_h = static_cast<int>((g.in_h * up_y + pad_y0 + pad_y1 - g.kernel_h + down_y) / down_y);
  g.out_w = static_cast<int>((g.in_w * up_x + pad_x0 + pad_x1 - g.kernel_w + down_x) / down_x);
  TORCH_CHECK(g.out_h >= 1 && g.out_w >= 1, "upfirdn2d: empty output (", g.out_h, "x", g.out_w, ")");
  auto out = at::empty({x.size(0), x.size(1), g.out_h, g.out_w}, x.options());
  const int64_t total = out.numel();
  if (total == 0) return out;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, int64_t(1) << 20);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cuda", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    upfirdn2d_kernel<scalar_t, acc_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), kernel.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(), total, g);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}
