#!/usr/bin/env bash
# `make test`'s pytest part: the suite in three pytest processes at once, then the 25 slowest
# tests of all (wall and CPU seconds). These machines have 2 cores; the lanes are cut by what
# `scripts/slowest_tests.py --by cpu` measured, so that the CPU-bound lanes keep both cores busy
# while the third one mostly waits:
#   lane 1: everything but the lane 2 and lane 3 files (the demo, CLI, core, defs, search)
#   lane 2: the model stages and the benchmark smoke runs (CPU-bound)
#   lane 3: tests that mostly wait on Ray, leases, killed processes, the Dagster daemon and a
#           browser (a simulated cluster, timeouts, kill -9, the UI), then the PaddleOCR tests
#           in their own environment (.venv-paddle)
# Each lane has its own temp folder (pytest's numbered folders are not safe to share) and JUnit
# file; lanes 2 and 3 print after lane 1; any lane failing fails the run.
# LANES_OUT=DIR keeps the logs and JUnit files there (`scripts/slowest_tests.py --by cpu DIR/*.xml`).
set -u
cd "$(dirname "$0")/.."
out=${LANES_OUT:-$(mktemp -d /tmp/lanes.XXXX)}
mkdir -p "$out"
T=archive_pipeline_tests
LANE2=("$T/stages" "$T/test_benchmarks.py")
LANE3=("$T/core/test_compute.py" "$T/core/test_lease.py" "$T/stages/test_checkpoint.py" "$T/ops/test_ui.py")
lane() {  # lane NAME PYTHON-ENV PYTEST-ARGS...: one pytest process with its own temp and JUnit file
  local name=$1 env=$2
  shift 2
  "$env/bin/pytest" -p no:cacheprovider --basetemp="$out/$name" --junitxml="$out/$name.xml" "$@"
}
lane lane2 .venv "${LANE2[@]}" --ignore="$T/stages/test_checkpoint.py" >"$out/lane2.log" 2>&1 &
pid2=$!
(
  lane lane3 .venv "${LANE3[@]}"
  rc=$?
  echo "--- PaddleOCR (.venv-paddle)"
  lane paddle .venv-paddle -m paddle "$T/stages/test_ocr_paddle.py" || rc=$?
  exit $rc
) >"$out/lane3.log" 2>&1 &
pid3=$!
lane lane1 .venv "${LANE2[@]/#/--ignore=}" "${LANE3[@]/#/--ignore=}"
rc1=$?
wait $pid2
rc2=$?
wait $pid3
rc3=$?
echo "--- lane 2: ${LANE2[*]} (run beside lane 1), exit $rc2"
cat "$out/lane2.log"
echo "--- lane 3: ${LANE3[*]}, then PaddleOCR (run beside lane 1), exit $rc3"
cat "$out/lane3.log"
.venv/bin/python scripts/slowest_tests.py "$out"/*.xml
[ -n "${LANES_OUT:-}" ] || rm -rf "$out"
echo "exit: lane 1 $rc1, lane 2 $rc2, lane 3 and PaddleOCR $rc3"
[ "$rc1" = 0 ] && [ "$rc2" = 0 ] && [ "$rc3" = 0 ]
