#!/usr/bin/env bash
# go.sh OUT "bin:cfg ..." ROUNDS DEADLINE_S [BLOCKS]
OUT=$1; PAIRS=$2; ROUNDS=$3; DEADLINE=$4; BLOCKS=${5:-10}
D=$(cd "$(dirname "$0")" && pwd)
start=$(date +%s)
for f in $D/supervm-*.gz; do b=$(basename $f .gz); zcat $f > /tmp/$b && chmod +x /tmp/$b; done
rm -rf /tmp/bench; mkdir -p /tmp/bench; cp $D/data/* /tmp/bench/
for f in $D/c*.toml; do cp $f /tmp/; done
nproc; nvidia-smi --query-gpu=name --format=csv,noheader
for r in $(seq 1 $ROUNDS); do
  for p in $PAIRS; do
    now=$(date +%s); if [ $((now-start)) -gt $DEADLINE ]; then echo "deadline at round $r"; break 2; fi
    b=${p%%:*}; c=${p##*:}
    echo "=== round $r $b $c $(date +%T)" >> $OUT/node.log
    SUPERVM_BENCH_VERBOSE=1 /tmp/supervm-$b -c /tmp/$c.toml bench node --blocks $BLOCKS --txs 10000 --privacy-percent 5 >> $OUT/node.log 2>&1
    echo "round $r $b $c rc=$?"; grep -E "^node " $OUT/node.log | tail -3
  done
done
