#!/usr/bin/env bash
# `make test`'s pytest part: the suite in two pytest processes at once, then the 25 slowest tests
# of both (wall and CPU seconds). These machines have 2 cores and one pytest process keeps them
# about half busy: many tests wait on a subprocess, Ray or a server while the other core idles.
# A third lane was tried: the suite is CPU-bound (about 52 CPU-minutes in /proc/stat, both
# cores 1.9 busy), so it only stretched every test (the demo past its 15-minute guard) without
# ending sooner.
#   lane 1: everything but the lane 2 files (the demo, CLI, UI, core, defs, search)
#   lane 2: the model stages, the benchmark smoke runs and the Ray placement tests
#           (core/test_compute.py: a simulated cluster, timeouts), cut by measured time
# then the PaddleOCR tests in their own environment (.venv-paddle), started as soon as either
# lane ends (their 1.5 minutes beside the lane still running, not after both).
# FAST=1 (`make test-fast`): the fast lane (not slow, not paddle) in the same two processes, cut
# by its own measured times (lane 2: core/, stages/, the cluster file, the search page); no
# PaddleOCR.
# Each lane has its own temp folder (pytest's numbered folders are not safe to share) and JUnit
# file; lane 2's output is printed after lane 1's; any lane failing fails the run.
# LANES_OUT=DIR keeps the logs and JUnit files there (`scripts/slowest_tests.py --by cpu DIR/*.xml`).
set -u
cd "$(dirname "$0")/.."
out=${LANES_OUT:-$(mktemp -d /tmp/lanes.XXXX)}
mkdir -p "$out"
T=archive_pipeline_tests
LANE2=("$T/stages" "$T/test_benchmarks.py" "$T/core/test_compute.py")
MARK=()
if [ -n "${FAST:-}" ]; then
  LANE2=("$T/core" "$T/stages" "$T/test_ray_cluster_yaml.py" "$T/search/test_service_page.py")
  MARK=(-m "not slow and not paddle")
fi
lane() {  # lane NAME PYTHON-ENV PYTEST-ARGS...: one pytest process with its own temp and JUnit file
  local name=$1 env=$2
  shift 2
  "$env/bin/pytest" -p no:cacheprovider --basetemp="$out/$name" --junitxml="$out/$name.xml" "$@"
}
lane lane2 .venv "${MARK[@]}" "${LANE2[@]}" >"$out/lane2.log" 2>&1 &
pid2=$!
lane lane1 .venv "${MARK[@]}" "${LANE2[@]/#/--ignore=}" &
pid1=$!
rc3=0
if [ -z "${FAST:-}" ]; then
  wait -n "$pid1" "$pid2"  # whichever lane ends first (its exit status is kept: wait below)
  lane paddle .venv-paddle -m paddle "$T/stages/test_ocr_paddle.py" >"$out/paddle.log" 2>&1
  rc3=$?
fi
wait $pid1
rc1=$?
wait $pid2
rc2=$?
echo "--- lane 2: ${LANE2[*]} (run beside lane 1), exit $rc2"
cat "$out/lane2.log"
if [ -z "${FAST:-}" ]; then
  echo "--- PaddleOCR (.venv-paddle, after the first lane to end), exit $rc3"
  cat "$out/paddle.log"
fi
.venv/bin/python scripts/slowest_tests.py "$out"/*.xml
[ -n "${LANES_OUT:-}" ] || rm -rf "$out"
echo "exit: lane 1 $rc1, PaddleOCR $rc3, lane 2 $rc2"
[ "$rc1" = 0 ] && [ "$rc2" = 0 ] && [ "$rc3" = 0 ]
