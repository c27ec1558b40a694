set -u
OUTD=$OUT; mkdir -p $OUTD/r
work=/tmp/kd && rm -rf $work && mkdir -p $work && tar -C $work -xzf .gpu/kerneldsl-gpu.tar.gz
export KERNELDSL_CACHE_DIR=$work/cache PATH=/usr/local/cuda/bin:$PATH KERNELDSL_REQUIRE_GPU=1 KERNELDSL_REQUIRE_NVRTC=1
timeout 150 $work/tests/kdsl compile --arch sm_90a --only Wgmma > $OUTD/r/compile.log 2>&1; echo "compile rc=$?"
grep -E "sm_90a|spill|failed|error" $OUTD/r/compile.log | cut -c1-200 | head -20
timeout 200 $work/tests/KernelDsl.Gpu.Tests --progress off --show-live-output on --filter-class "GpuTests.Attention.Int8AttentionGpuTests" > $OUTD/r/tests.log 2>&1; echo "tests rc=$?"
grep -E "S=4097|total:|failed:|^failed" $OUTD/r/tests.log | cut -c1-250
if grep -q "failed: 0" $OUTD/r/tests.log; then
OUT=$OUTD/r timeout 300 bash .gpu/gpu-bench --quick > $OUTD/r/bench.log 2>&1; echo "bench rc=$?"
grep -E "wgmma" $OUTD/r/ratios.md | cut -c1-200
fi
cd $OUTD && tar czf /tmp/results.tgz r && rm -rf $OUTD/r && mv /tmp/results.tgz $OUTD/
