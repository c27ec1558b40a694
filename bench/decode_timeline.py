"""Where a paged decode call's time goes: every block's start, end and phases on the GPU's global timer, and the call's
steps timed apart (issue 16's small-batch rows; PERF_NOTES §20).

  kdsl cuda KernelDsl.Attention.KvCache.PagedDecodeD128 > k.cu
  python3 bench/decode_timeline.py k.cu --batch 1 --context 4096 --sq 1 --splits 16 [--runs 20]

The kernel is the generated CUDA with four stamps added as text (block start, Q quantized, page loop done, block end,
written by thread 0 with its SM's id into a __device__ array), compiled with the GPU's NVRTC, and launched here through
the driver API on random int8 pages (a shuffled page table), after an L2 flush as `kdsl bench --decode` does. Printed:
the spread of block starts and ends across the grid (µs after the first start), each phase's median over blocks, the
kernel's and the merge's event times, what a pinned upload of the table costs on the stream, and the decode kernel
reading the table from mapped pinned host memory instead (no upload).
Nothing of it enters the product: the stamps only exist in this script's copy of the source.
"""
import argparse
import ctypes
import re
import statistics
import sys

STAMPS = 4


def instrument(source):
    """The decode kernel with stamps: begin, Q done, loop done, end (thread 0), and the __device__ array they go to."""
    head = re.search(r'extern "C" __global__ void __launch_bounds__\(\d+(, \d+)?\)\n(\w+_decode)\(', source)
    if head is None:
        sys.exit("decode_timeline: no *_decode kernel in the source")
    body = source.index("\n{\n", head.end()) + 3
    depth, end = 1, body
    while depth:
        c = source[end]
        depth += c == "{"
        depth -= c == "}"
        end += 1
    kernel = source[body:end - 1]
    marks = [("__syncthreads();  // Q codes and floats from every warp", "after"),
             ("    // The block's warps merge", "before")]
    for i, (text, where) in enumerate(marks, start=1):
        at = kernel.find(text)
        if at < 0:
            sys.exit(f"decode_timeline: the kernel has no line '{text.strip()}' to stamp")
        stamp = f"    const unsigned long long kdsl_tl_{i} = kdsl_tl_now();\n"
        if where == "after":
            at = kernel.index("\n", at) + 1
        kernel = kernel[:at] + stamp + kernel[at:]
    kernel = ("    const unsigned long long kdsl_tl_0 = kdsl_tl_now();\n" + kernel +
              "    if (threadIdx.x == 0)\n    {\n"
              "        const unsigned long long id = blockIdx.x + (unsigned long long)gridDim.x * (blockIdx.y + (unsigned long long)gridDim.y * blockIdx.z);\n"
              "        unsigned sm; asm volatile(\"mov.u32 %0, %%smid;\" : \"=r\"(sm));\n"
              "        kdsl_tl[id][0] = kdsl_tl_0; kdsl_tl[id][1] = kdsl_tl_1; kdsl_tl[id][2] = kdsl_tl_2; kdsl_tl[id][3] = kdsl_tl_now(); kdsl_tl[id][4] = sm;\n"
              "    }\n")
    prelude = ("__device__ unsigned long long kdsl_tl[1 << 16][5];\n"
               "static __device__ __forceinline__ unsigned long long kdsl_tl_now()\n"
               "{ unsigned long long t; asm volatile(\"mov.u64 %0, %%globaltimer;\" : \"=l\"(t)); return t; }\n")
    return source[:head.start()] + prelude + source[head.start():body] + kernel + source[end - 1:], head.group(2)


class Driver:
    def __init__(self):
        self.cu = ctypes.CDLL("libcuda.so.1")

    def check(self, result, what):
        if result != 0:
            name = ctypes.c_char_p()
            self.cu.cuGetErrorName(result, ctypes.byref(name))
            sys.exit(f"decode_timeline: {what} failed: {name.value.decode() if name.value else result}")


def compile_cubin(source, arch, library=None):
    import glob
    import os
    library = library or (sorted(glob.glob("/usr/local/cuda/lib64/libnvrtc.so*")) + ["libnvrtc.so"])[0]
    for builtins in glob.glob(os.path.join(os.path.dirname(library), "libnvrtc-builtins.so*")):
        ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)  # NVRTC opens it by name, which the loader finds once it is loaded
    nvrtc = ctypes.CDLL(library)
    program = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"k.cu", 0, None, None) == 0
    options = [f"-arch={arch}".encode(), b"--std=c++17"]
    array = (ctypes.c_char_p * len(options))(*options)
    result = nvrtc.nvrtcCompileProgram(program, len(options), array)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    if result != 0:
        sys.exit("decode_timeline: NVRTC failed:\n" + log.value.decode(errors="replace")[-4000:])
    nvrtc.nvrtcGetCUBINSize(program, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetCUBIN(program, cubin)
    return cubin


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--sq", type=int, default=1)
    parser.add_argument("--splits", type=int, default=16)
    parser.add_argument("--heads-q", type=int, default=64)
    parser.add_argument("--heads-kv", type=int, default=8)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mapped", action="store_true", help="the block timeline with the table read from mapped pinned host memory")
    parser.add_argument("--nvrtc", help="libnvrtc.so to compile with (default: the CUDA toolkit's)")
    parser.add_argument("--compile-only", metavar="ARCH", help="instrument and compile for ARCH (e.g. sm_90), then stop: no GPU needed")
    args = parser.parse_args(argv)

    source = open(args.source).read()
    d = int(re.search(r"head dim (\d+)", source).group(1))
    page = int(re.search(r"pages of (\d+) tokens", source).group(1))
    shared = int(re.search(r"; (\d+) bytes of shared memory", source).group(1))
    threads = int(re.search(r'__launch_bounds__\((\d+), 1\)\n\w+_decode', source).group(1))
    instrumented, name = instrument(source)
    merge_name = name[: -len("_decode")] + "_merge"
    if args.compile_only:
        print(f"{name}: instrumented and compiled for {args.compile_only}, {len(compile_cubin(instrumented, args.compile_only, args.nvrtc))} bytes of cubin")
        return

    import torch
    torch.cuda.init()
    torch.empty(1, device="cuda")  # the primary context, current on this thread
    drv = Driver()
    cubin = compile_cubin(instrumented, "sm_%d%d" % torch.cuda.get_device_capability(), args.nvrtc)
    module, kernel, merge = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    drv.check(drv.cu.cuModuleLoadData(ctypes.byref(module), cubin), "cuModuleLoadData")
    drv.check(drv.cu.cuModuleGetFunction(ctypes.byref(kernel), module, name.encode()), "cuModuleGetFunction")
    drv.check(drv.cu.cuModuleGetFunction(ctypes.byref(merge), module, merge_name.encode()), "cuModuleGetFunction (merge)")
    drv.check(drv.cu.cuFuncSetAttribute(kernel, 8, shared), "cuFuncSetAttribute")  # MAX_DYNAMIC_SHARED_SIZE_BYTES
    stamps_ptr, stamps_size = ctypes.c_uint64(), ctypes.c_size_t()
    drv.check(drv.cu.cuModuleGetGlobal_v2(ctypes.byref(stamps_ptr), ctypes.byref(stamps_size), module, b"kdsl_tl"), "cuModuleGetGlobal")

    b, hq, hkv, sq = args.batch, args.heads_q, args.heads_kv, args.sq
    seq_pages = (args.context + page - 1) // page
    pages = b * seq_pages
    g = torch.Generator(device="cuda").manual_seed(20261208)
    k_codes = torch.randint(-127, 128, (pages, hkv, page, d), device="cuda", dtype=torch.int8, generator=g)
    v_codes = torch.randint(-127, 128, (pages, hkv, page, d), device="cuda", dtype=torch.int8, generator=g)
    k_scale = torch.rand(pages, hkv, device="cuda", generator=g) * 0.02 + 0.01
    k_mean = torch.randn(pages, hkv, d, device="cuda", generator=g) * 0.1
    v_scale = torch.rand(pages, hkv, d, device="cuda", generator=g) * 0.02 + 0.01
    table = torch.randperm(pages, generator=torch.Generator().manual_seed(7)).to(torch.int32).reshape(b, seq_pages)
    lengths = torch.full((b,), args.context, dtype=torch.int32)
    cu_q = torch.arange(b + 1, dtype=torch.int32) * sq
    work_host = torch.cat([table.flatten(), lengths, cu_q]).pin_memory()
    work = work_host.to("cuda")
    rows = b * sq * hq
    queries = torch.randn(rows, d, device="cuda", generator=g).half()
    partial_o = torch.empty(args.splits, rows, d, device="cuda")
    partial_lse = torch.empty(args.splits, rows, device="cuda")
    output = torch.empty(rows, d, device="cuda", dtype=torch.float16)
    row_tiles = (sq * (hq // hkv) + 15) // 16
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    stream = torch.cuda.current_stream()

    def pointer(t):
        return ctypes.c_uint64(t.data_ptr())

    kernel_args = [pointer(queries), pointer(k_codes), pointer(k_scale), pointer(k_mean), pointer(v_codes), pointer(v_scale),
                   pointer(work), pointer(partial_o), pointer(partial_lse), pointer(output), ctypes.c_uint64(0),
                   ctypes.c_int(hq), ctypes.c_int(hkv), ctypes.c_int(seq_pages), ctypes.c_float(d ** -0.5)]
    kernel_array = (ctypes.c_void_p * len(kernel_args))(*[ctypes.cast(ctypes.byref(a), ctypes.c_void_p) for a in kernel_args])
    # The same table in mapped pinned host memory: the kernel reads it over PCIe, with no upload on the stream.
    host_table, mapped_table = ctypes.c_void_p(), ctypes.c_uint64()
    drv.check(drv.cu.cuMemHostAlloc(ctypes.byref(host_table), work_host.numel() * 4, 0x02), "cuMemHostAlloc")  # DEVICEMAP
    ctypes.memmove(host_table, work_host.data_ptr(), work_host.numel() * 4)
    drv.check(drv.cu.cuMemHostGetDevicePointer_v2(ctypes.byref(mapped_table), host_table, 0), "cuMemHostGetDevicePointer")
    mapped_args = list(kernel_args)
    mapped_args[6] = mapped_table
    mapped_array = (ctypes.c_void_p * len(mapped_args))(*[ctypes.cast(ctypes.byref(a), ctypes.c_void_p) for a in mapped_args])
    merge_args = [pointer(partial_o), pointer(partial_lse), pointer(output), ctypes.c_uint64(0), ctypes.c_int(rows), ctypes.c_int(args.splits)]
    merge_array = (ctypes.c_void_p * len(merge_args))(*[ctypes.cast(ctypes.byref(a), ctypes.c_void_p) for a in merge_args])
    grid = (hkv * row_tiles, args.splits, b)
    blocks = grid[0] * grid[1] * grid[2]

    def launch_decode(array=kernel_array):
        drv.check(drv.cu.cuLaunchKernel(kernel, *grid, threads, 1, 1, shared, ctypes.c_void_p(stream.cuda_stream), array, None), "decode launch")

    def launch_decode_mapped():
        launch_decode(mapped_array)

    def launch_merge():
        if args.splits > 1:
            drv.check(drv.cu.cuLaunchKernel(merge, (rows + 3) // 4, 1, 1, 128, 1, 1, 0, ctypes.c_void_p(stream.cuda_stream), merge_array, None), "merge launch")

    def upload():
        work.copy_(work_host, non_blocking=True)

    def timed(steps):
        times = []
        for i in range(3 + args.runs):
            for _ in range(8):  # the host queues the timed steps while the device still flushes
                flush.fill_(i & 255)
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for step in steps:
                step()
            stop.record()
            stop.synchronize()
            if i >= 3:
                times.append(start.elapsed_time(stop) * 1e3)
        return statistics.median(times)

    starts, ends, phases = [], [], [[], [], []]
    for i in range(args.runs):
        flush.fill_(i & 255)
        launch_decode(mapped_array if args.mapped else kernel_array)
        torch.cuda.synchronize()
        raw = (ctypes.c_uint64 * (blocks * 5))()
        drv.check(drv.cu.cuMemcpyDtoH_v2(raw, stamps_ptr, blocks * 5 * 8), "stamps copy")
        t = [raw[j * 5:j * 5 + 5] for j in range(blocks) if raw[j * 5]]  # a block that returned at once left no stamps
        drv.check(drv.cu.cuMemsetD8_v2(stamps_ptr, 0, blocks * 5 * 8), "stamps reset")
        first = min(x[0] for x in t)
        starts += [(x[0] - first) / 1e3 for x in t]
        ends += [(x[3] - first) / 1e3 for x in t]
        for p in range(3):
            phases[p] += [(x[p + 1] - x[p]) / 1e3 for x in t]
    sms = len({x[4] for x in t})

    def spread(values):
        values = sorted(values)
        at = lambda q: values[min(len(values) - 1, int(q * len(values)))]
        return f"{at(0):.2f} / {at(0.5):.2f} / {at(0.9):.2f} / {values[-1]:.2f}"

    print(f"{name}: B = {b}, context {args.context}, Sq = {sq}, {args.splits} splits, grid {grid} = {blocks} blocks on {sms} SMs, "
          f"{shared} bytes of shared memory, {args.runs} runs (global timer, µs after the run's first block start)"
          + (", the table in mapped host memory" if args.mapped else ""))
    print("| what | min / median / p90 / max µs |")
    print("| --- | --- |")
    print(f"| block start | {spread(starts)} |")
    print(f"| block end | {spread(ends)} |")
    for label, values in zip(("start → Q quantized", "Q → page loop done", "loop → block end (block merge, O written)"), phases):
        print(f"| {label} | {spread(values)} |")
    print()
    print("| steps on the stream (events, L2 flushed ahead) | median µs |")
    print("| --- | --- |")
    print(f"| decode kernel | {timed([launch_decode]):.1f} |")
    if args.splits > 1:
        print(f"| merge kernel | {timed([launch_merge]):.1f} |")
        print(f"| decode + merge | {timed([launch_decode, launch_merge]):.1f} |")
    print(f"| table upload ({work_host.numel() * 4} bytes, pinned) | {timed([upload]):.1f} |")
    print(f"| upload + decode{' + merge' if args.splits > 1 else ''} (the call's device steps) | {timed([upload, launch_decode, launch_merge]):.1f} |")
    print(f"| decode{' + merge' if args.splits > 1 else ''}, the table read from mapped pinned host memory (no upload) | {timed([launch_decode_mapped, launch_merge]):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
