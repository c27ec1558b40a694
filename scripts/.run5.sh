set -u
OUTD=$OUT; mkdir -p $OUTD/r
work=/tmp/kd && rm -rf $work && mkdir -p $work && tar -C $work -xzf .gpu/kerneldsl-gpu.tar.gz
export KERNELDSL_CACHE_DIR=$work/cache PATH=/usr/local/cuda/bin:$PATH KERNELDSL_REQUIRE_GPU=1 KERNELDSL_REQUIRE_NVRTC=1
COLUMNS=250 timeout 100 $work/tests/kdsl compile --arch sm_90a --only Wgmma > $OUTD/r/compile.log 2>&1; echo "compile rc=$?"
grep -c "C7513" $OUTD/r/compile.log
timeout 150 $work/tests/KernelDsl.Gpu.Tests --progress off --show-live-output on --filter-method "*The_wgmma_form*" > $OUTD/r/tests.log 2>&1; echo "tests rc=$?"
grep -E "total:|failed:" $OUTD/r/tests.log
for s in 4096 16384; do COLUMNS=200 timeout 120 $work/tests/kdsl bench --head-dim 128 --seq $s --csv $OUTD/r/b$s.csv > $OUTD/r/b$s.log 2>&1; done
cat $OUTD/r/b4096.csv $OUTD/r/b16384.csv | cut -d, -f1,3,4,9,10 | grep -E "wgmma|Pretransposed,|TransPrmt,"
cd $OUTD && tar czf /tmp/results.tgz r && rm -rf $OUTD/r && mv /tmp/results.tgz $OUTD/
