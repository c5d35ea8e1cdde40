#!/usr/bin/env bash
# Check and time i2edit on a machine with a CUDA GPU, in at most 8 minutes; writes results/gpu.json.
#
#   bench/gpu_check.sh                    # on the GPU machine, from anywhere in the repository
#   GPU_CHECK_DRY=1 bench/gpu_check.sh    # CPU dry run of the whole script: tiny sizes and steps;
#                                         # writes gpu_dry.json in the logs folder (its figures mean nothing)
#
# Steps, in order, each under a time limit and all under one budget (GPU_CHECK_BUDGET_S, default 480 s):
#   machine         device name, compute capability, memory, torch/CUDA versions, driver
#   ops_build       i2edit ops build for this GPU's architecture (minutes the first time, cached after)
#   ops_check       i2edit ops check: the self-check verdict of the kernels on this GPU, every case
#   ops_selfcheck   bench/ops_selfcheck.py --device cuda: what the self-check adds to the first load
#   parity_tests    pytest tests/test_ops_cuda*.py (kernels against the reference; none may skip)
#   ops_bench       bench/ops.py --device cuda, forward and forward+backward: reference vs kernels
#   edit_turn       bench/edit_step.py: one 300-step turn at 1024 px (config-f generator, ViT-B/32 CLIP,
#                   IR-SE50 identity, random weights at the real sizes), paper settings and fast mode
#   dialogue_step   bench/dialogue_latency.py --device cuda: DialogueModel.step() p50/p95 over 60 turns
# A step that fails or runs out of time is recorded as such and the others still run (a step the budget
# leaves no time for is not run); the script then exits 1 with one line naming those steps. Without a GPU
# (and without GPU_CHECK_DRY=1) it exits 1 at once, saying so.
# Environment: PYTHON (default .venv/bin/python, else python3), GPU_CHECK_OUT (the JSON to write),
# GPU_CHECK_LOGS (where each step's full log goes; default a temporary folder), GPU_CHECK_BUDGET_S.
set -uo pipefail

cd "$(dirname "$0")/.."
DRY=${GPU_CHECK_DRY:-0}
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
LOGS=${GPU_CHECK_LOGS:-$(mktemp -d -t gpu-check-XXXXXX)}
if [ "$DRY" = 1 ]; then OUT=${GPU_CHECK_OUT:-$LOGS/gpu_dry.json}; else OUT=${GPU_CHECK_OUT:-results/gpu.json}; fi
mkdir -p "$LOGS" "$(dirname "$OUT")"
: > "$LOGS/steps.tsv"

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "gpu_check: $PYTHON cannot import torch; set PYTHON to the interpreter of the i2edit environment" >&2
  exit 1
fi
HAS_GPU='import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'
if [ "$DRY" != 1 ] && ! "$PYTHON" -c "$HAS_GPU" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU is visible to torch (torch.cuda.is_available() is False);" \
    "run it on a GPU machine, or set GPU_CHECK_DRY=1 for a CPU dry run" >&2
  exit 1
fi

START=$(date +%s)
DEADLINE=$((START + BUDGET_S))

# run_step NAME LIMIT_S COMMAND...: run COMMAND with its output in $LOGS/NAME.log, under min(LIMIT_S, the
# time left); appends "NAME status exit_code seconds" to $LOGS/steps.tsv.
run_step() {
  local name=$1 limit=$2
  shift 2
  local now left status code begin
  now=$(date +%s)
  left=$((DEADLINE - now))
  if [ "$left" -lt 15 ]; then
    printf '%s\tout_of_time\t-\t0\n' "$name" >> "$LOGS/steps.tsv"
    echo "[gpu_check] $name: not run, the ${BUDGET_S} s budget is spent"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "[gpu_check] $name (limit ${limit} s)..."
  begin=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  code=$?
  local seconds
  seconds=$(awk -v a="$begin" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $code in
    0) status=ok ;;
    124 | 137) status=timed_out ;;
    *) status=failed ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$code" "$seconds" >> "$LOGS/steps.tsv"
  echo "[gpu_check] $name: $status in ${seconds} s"
}

skip_step() {  # skip_step NAME WHY
  printf '%s\tskipped\t-\t0\n' "$1" >> "$LOGS/steps.tsv"
  echo "[gpu_check] $1: skipped ($2)"
}

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
run_step machine 60 "$PYTHON" - "$LOGS/machine.json" <<'EOF'
import json, os, platform, subprocess, sys
import torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "cpu_count": os.cpu_count()}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    info.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                memory_gib=round(props.total_memory / 2**30, 1), gpu_count=torch.cuda.device_count())
    try:
        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=20).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
else:
    info.update(device_name="cpu (dry run)", capability=None, memory_gib=None, gpu_count=0, driver=None)
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info))
EOF

if [ "$DRY" = 1 ]; then
  skip_step ops_build "dry run: no GPU to build for"
  skip_step ops_check "dry run: the kernels need a GPU"
  run_step ops_selfcheck 120 "$PYTHON" bench/ops_selfcheck.py --device cpu --repeat 1 --calls 1000 \
    --out "$LOGS/ops_selfcheck.json"
else
  CAPABILITY=$("$PYTHON" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))')
  run_step ops_build 300 env TORCH_CUDA_ARCH_LIST="$CAPABILITY" "$PYTHON" -m server.cli ops build
  run_step ops_check 90 "$PYTHON" -m server.cli ops check
  run_step ops_selfcheck 90 "$PYTHON" bench/ops_selfcheck.py --device cuda --repeat 3 --out "$LOGS/ops_selfcheck.json"
fi

run_step parity_tests 180 "$PYTHON" -m pytest -q -p no:cacheprovider --junitxml="$LOGS/parity.xml" \
  tests/test_ops_cuda*.py

if [ "$DRY" = 1 ]; then
  OPS_ARGS=(--tiny --repeat 2 --threads 1)
  EDIT_ARGS=(--sizes 64 --device cpu --steps 2 --fast --fast-size 32 --threads 1)
  DIALOGUE_ARGS=(--device cpu --turns 50 --threads 1)
else
  OPS_ARGS=(--device cuda --repeat 10)
  EDIT_ARGS=(--sizes 1024 --device cuda --steps 300 --fast)
  DIALOGUE_ARGS=(--device cuda --turns 60)
fi
run_step ops_bench 90 "$PYTHON" bench/ops.py "${OPS_ARGS[@]}" --json "$LOGS/ops_bench.json"
run_step ops_bench_backward 90 "$PYTHON" bench/ops.py "${OPS_ARGS[@]}" --backward --json "$LOGS/ops_bench_backward.json"
# bench/edit_step.py prints its JSON on stdout: $0 is the interpreter, $1 the output file, the rest its arguments.
run_step edit_turn 240 bash -c 'out=$1; shift; exec "$0" bench/edit_step.py "$@" --json > "$out"' \
  "$PYTHON" "$LOGS/edit_turn.json" "${EDIT_ARGS[@]}"
run_step dialogue_step 120 "$PYTHON" bench/dialogue_latency.py "${DIALOGUE_ARGS[@]}" --json "$LOGS/dialogue.json"

TOTAL=$(( $(date +%s) - START ))
"$PYTHON" - "$LOGS" "$OUT" "$DRY" "$TOTAL" "$BUDGET_S" <<'EOF'
"""Gather the steps' JSON files and statuses into one record; print one line per failed step."""
import json, re, sys, xml.etree.ElementTree as ET
from pathlib import Path

logs, out, dry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
total, budget = int(sys.argv[4]), int(sys.argv[5])


def load(name):
    path = logs / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(name, chars=1500):
    path = logs / f"{name}.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


steps = {}
for line in (logs / "steps.tsv").read_text().splitlines():
    name, status, code, seconds = line.split("\t")
    steps[name] = {"status": status, "exit_code": None if code == "-" else int(code), "seconds": float(seconds)}
    if status in ("failed", "timed_out"):
        steps[name]["log_tail"] = tail(name)

record = {"command": ("GPU_CHECK_DRY=1 " if dry else "") + "bench/gpu_check.sh", "dry_run": dry,
          "total_s": total, "budget_s": budget, "machine": load("machine.json"), "steps": steps}
problems = [f"{n} ({s['status']})" for n, s in steps.items() if s["status"] in ("failed", "timed_out", "out_of_time")]

build_log = tail("ops_build", 4000)
match = re.search(r"built in ([\d.]+) s|reused the earlier build", build_log)
record["ops_build"] = {"compiled": bool(match and match.group(1)),
                       "build_s": float(match.group(1)) if match and match.group(1) else None} if match else None
check_log = tail("ops_check", 100_000)
stored = re.search(r"stored in (\S+\.json)", check_log)
verdict_file = Path(stored.group(1)) if stored else None
record["ops_check"] = json.loads(verdict_file.read_text()) if verdict_file and verdict_file.exists() else None
record["ops_selfcheck_timing"] = load("ops_selfcheck.json")

parity = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "not_passed": []}
try:
    for case in ET.parse(logs / "parity.xml").getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        key = {"failure": "failed", "error": "errors"}.get(outcome, outcome)
        parity[key] += 1
        if outcome != "passed":
            parity["not_passed"].append(f"{outcome}: {name}")
except (OSError, ET.ParseError):
    parity = None
record["parity_tests"] = parity
if parity and not dry and parity["skipped"]:
    problems.append(f"parity_tests ({parity['skipped']} skipped on a GPU machine)")

record["ops_bench"] = {"forward": load("ops_bench.json"), "forward_backward": load("ops_bench_backward.json")}
turns = load("edit_turn.json") or []
record["edit_turn"] = {("fast" if r["fast"] else "paper"): r for r in turns}
expected = {"paper", "fast"}
if steps.get("edit_turn", {}).get("status") == "ok" and set(record["edit_turn"]) != expected:
    problems.append(f"edit_turn (no record for {', '.join(sorted(expected - set(record['edit_turn'])))})")
record["dialogue_step"] = load("dialogue.json")

verdict = record["ops_check"]
targets = {"paper_turn_s": 10.0, "fast_turn_s": 3.0, "selfcheck_first_load_s": 2.0}
met = {}
if "paper" in record["edit_turn"]:
    met["paper_turn_s"] = record["edit_turn"]["paper"]["turn_300_s"] <= targets["paper_turn_s"]
if "fast" in record["edit_turn"]:
    met["fast_turn_s"] = record["edit_turn"]["fast"]["turn_300_s"] <= targets["fast_turn_s"]
if record["ops_selfcheck_timing"]:
    first_load = record["ops_selfcheck_timing"]["first_load_s"]["max"]
    met["selfcheck_first_load_s"] = first_load <= targets["selfcheck_first_load_s"]
record["targets"] = {"values": targets, "met": met,
                     "note": "targets for one H100 (a dry run's figures say nothing about them)"}
if not dry and not (verdict and all(verdict["passed"].values())):
    record["note"] = ("the compiled ops did not build or did not pass their self-check: impl='auto' ran the "
                      "pure-PyTorch reference for the failed op(s) in the timings above")
if total > budget:
    problems.append(f"total {total} s over the {budget} s budget")
record["problems"] = problems
out.write_text(json.dumps(record, indent=2) + "\n")
print(f"[gpu_check] wrote {out} ({total} s in all)")
if problems:
    print("gpu_check: failed: " + "; ".join(problems) + f"; see {out} and the logs in {logs}", file=sys.stderr)
    sys.exit(1)
EOF
