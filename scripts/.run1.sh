set -u
OUTD=$OUT; mkdir -p $OUTD/r
work=/tmp/kd && rm -rf $work && mkdir -p $work && tar -C $work -xzf .gpu/kerneldsl-gpu.tar.gz
export KERNELDSL_CACHE_DIR=$work/cache PATH=/usr/local/cuda/bin:$PATH
timeout 150 $work/tests/kdsl compile --arch sm_90a --only Wgmma > $OUTD/r/compile.log 2>&1; echo "compile rc=$?"
tail -30 $OUTD/r/compile.log | cut -c1-400
export KERNELDSL_REQUIRE_GPU=1 KERNELDSL_REQUIRE_NVRTC=1
timeout 300 $work/tests/KernelDsl.Gpu.Tests --progress off --filter-class "GpuTests.Hopper.TmaGpuTests" --filter-class "GpuTests.Hopper.RecipeDGpuTests" --filter-class "GpuTests.Attention.Int8AttentionGpuTests" > $OUTD/r/tests.log 2>&1; echo "tests rc=$?"
grep -E "^failed|total:|failed:|succeeded:|skipped:" $OUTD/r/tests.log | head -40
grep -E "wgmma|Wgmma" $OUTD/r/tests.log | grep -v "^   at" | cut -c1-300 | head -30
cd $OUTD && tar czf /tmp/results.tgz r && rm -rf $OUTD/r && mv /tmp/results.tgz $OUTD/
