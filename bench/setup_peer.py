"""Builds one of SageAttention2's CUDA extensions from its public source (thu-ml/SageAttention, Apache-2.0) for the
H100: the sm90 attention kernel or the fused quantizers. Its source lives in a git-ignored folder, never in ours.

  cd .peers/sage && python3 ../../bench/setup_peer.py sm90 build_ext --inplace --build-temp /tmp/b-sm90
  cd .peers/sage && python3 ../../bench/setup_peer.py fused build_ext --inplace --build-temp /tmp/b-fused

Each extension needs its own build folder: ninja writes one build file per folder.
"""
import sys

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

which = sys.argv.pop(1)
cxx = ["-O3", "-std=c++17", "-DENABLE_BF16"]
nvcc = ["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__", "--use_fast_math",
        "--threads=8", "-diag-suppress=174", "-gencode", "arch=compute_90a,code=sm_90a", "-DENABLE_BF16"]
extensions = {
    "sm90": lambda: CUDAExtension("sageattention._qattn_sm90",
                                  ["csrc/qattn/pybind_sm90.cpp", "csrc/qattn/qk_int_sv_f8_cuda_sm90.cu"],
                                  extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=["-lcuda"]),
    "fused": lambda: CUDAExtension("sageattention._fused", ["csrc/fused/pybind.cpp", "csrc/fused/fused.cu"],
                                   extra_compile_args={"cxx": cxx, "nvcc": nvcc}),
}
setup(name="peer_" + which, ext_modules=[extensions[which]()], cmdclass={"build_ext": BuildExtension})
