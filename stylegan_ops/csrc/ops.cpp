// Python bindings for the stylegan_ops CUDA kernels, with the argument checks that keep the
// kernels' assumptions (device, dtype, contiguous layout, sizes) true.
#include <ATen/core/Tensor.h>
#include <torch/csrc/utils/pybind.h>

at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& grad, int64_t act,
                         double alpha, double gain, int64_t mode);

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x, int64_t up_y,
                          int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                          int64_t pad_y1);

namespace {

void check_same(const at::Tensor& t, const at::Tensor& x, const char* name) {
  TORCH_CHECK(t.device() == x.device(), "bias_act: ", name, " is on ", t.device(), " but x is on ", x.device());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), "bias_act: ", name, " is ", t.scalar_type(), " but x is ",
              x.scalar_type());
}

// mode 0: act(x + bias) * gain; mode 1: grad * act'(x + bias) * gain; mode 2: grad * act''(x + bias) * gain.
at::Tensor bias_act(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& grad, int64_t act,
                    double alpha, double gain, int64_t mode) {
  TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
  TORCH_CHECK(x.dim() >= 2, "bias_act: x must have a channel dimension 1, got ", x.dim(), " dims");
  TORCH_CHECK(act >= 0 && act <= 8, "bias_act: unknown activation index ", act);
  TORCH_CHECK(mode >= 0 && mode <= 2, "bias_act: mode must be 0, 1 or 2, got ", mode);
  if (bias.numel() > 0) {
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == x.size(1), "bias_act: bias must be [", x.size(1), "], got ",
                bias.sizes());
    check_same(bias, x, "bias");
  }
  if (mode > 0) {
    TORCH_CHECK(grad.sizes() == x.sizes(), "bias_act: grad must be shaped like x ", x.sizes(), ", got ",
                grad.sizes());
    check_same(grad, x, "grad");
  }
  return bias_act_cuda(x.contiguous(), bias.contiguous(), grad.contiguous(), act, alpha, gain, mode);
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x, int64_t up_y, int64_t down_x,
                     int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  TORCH_CHECK(x.is_cuda(), "upfirdn2d: x must be a CUDA tensor");
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(kernel.dim() == 2 && kernel.numel() > 0, "upfirdn2d: kernel must be 2-D, got ", kernel.sizes());
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up and down must be >= 1");
  TORCH_CHECK(x.size(2) * up_y <= INT32_MAX / 2 && x.size(3) * up_x <= INT32_MAX / 2,
              "upfirdn2d: the upsampled image is too large");
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return upfirdn2d_cuda(x.contiguous(), kernel.to(x.device(), acc_type).contiguous(), up_x, up_y, down_x, down_y,
                        pad_x0, pad_x1, pad_y0, pad_y1);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_act", &bias_act, "bias + activation (and its derivatives) in one elementwise pass",
        py::arg("x"), py::arg("bias"), py::arg("grad"), py::arg("act"), py::arg("alpha"), py::arg("gain"),
        py::arg("mode"));
  m.def("upfirdn2d", &upfirdn2d, "zero-insert upsample, pad, FIR filter, downsample", py::arg("x"),
        py::arg("kernel"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"), py::arg("down_y"),
        py::arg("pad_x0"), py::arg("pad_x1"), py::arg("pad_y0"), py::arg("pad_y1"));
}
