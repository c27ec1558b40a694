set -u
OUTD=$OUT; mkdir -p $OUTD/r
work=/tmp/kd && rm -rf $work && mkdir -p $work && tar -C $work -xzf .gpu/kerneldsl-gpu.tar.gz
export KERNELDSL_CACHE_DIR=$work/cache PATH=/usr/local/cuda/bin:$PATH KERNELDSL_REQUIRE_GPU=1 KERNELDSL_REQUIRE_NVRTC=1
timeout 200 $work/tests/KernelDsl.Gpu.Tests --progress off --show-live-output on --filter-method "*The_wgmma_form*" > $OUTD/r/tests.log 2>&1; echo "tests rc=$?"
grep -E "S=4097|total:|failed:" $OUTD/r/tests.log | cut -c1-250
OUT=$OUTD/r timeout 330 bash .gpu/gpu-bench --quick > $OUTD/r/bench.log 2>&1; echo "bench rc=$?"
cat $OUTD/r/ratios.md 2>/dev/null | head -60
cd $OUTD && tar czf /tmp/results.tgz r && rm -rf $OUTD/r && mv /tmp/results.tgz $OUTD/
