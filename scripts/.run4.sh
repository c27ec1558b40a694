set -u
OUTD=$OUT; mkdir -p $OUTD/r
work=/tmp/kd && rm -rf $work && mkdir -p $work && tar -C $work -xzf .gpu/kerneldsl-gpu.tar.gz
export KERNELDSL_CACHE_DIR=$work/cache PATH=/usr/local/cuda/bin:$PATH
COLUMNS=250 timeout 100 $work/tests/kdsl compile --arch sm_90a --only D128Wgmma > $OUTD/r/compile.log 2>&1; echo "compile rc=$?"
grep -v "^│\|^├\|^┌\|^└" $OUTD/r/compile.log | cut -c1-300 | head -20
OUT=$OUTD/r KERNELS="Int8AttentionD128Wgmma" HEAD_DIM=128 SEQ=4096 timeout 300 bash .gpu/gpu-profile > $OUTD/r/profile.log 2>&1; echo "profile rc=$?"
tail -45 $OUTD/r/profile.log | cut -c1-220
cd $OUTD && tar czf /tmp/results.tgz r && rm -rf $OUTD/r && mv /tmp/results.tgz $OUTD/
