#!/usr/bin/env bash
# The CUDA path on a machine with an NVIDIA GPU, in under 8 minutes, ending with one Markdown
# table: set-up, nvidia-smi and torch's CUDA version, the CUDA tests (the shared algorithm
# checks on the device, and every test with a cuda variant), CPU-vs-device agreement of each
# algorithm, and rows/s of each algorithm from Parquet and from memory, on the device and on
# the CPU.  Run from anywhere; it works in the repository that holds it.
#
#   benchmarks/gpu.sh                        # on the GPU machine
#   benchmarks/gpu.sh --device cpu           # the same without a GPU (its test, on any machine)
#   benchmarks/gpu.sh --device cpu --quick   # tiny sizes: what tests/test_gpu_script.py runs
#   benchmarks/gpu.sh --out DIR              # logs and results there (default benchmarks/results/gpu)
#   benchmarks/gpu.sh --python PATH          # this interpreter, as it is (no set-up)
#   benchmarks/gpu.sh --wheels DIR           # install missing packages from DIR, not a registry
#   benchmarks/gpu.sh --download-wheels DIR  # where a registry is reachable: fill DIR for --wheels
#
# Python, the first that works: .venv (if it imports streamfit and, for cuda, its torch sees the
# GPU); else the machine's python3 if its torch does, with src/ on PYTHONPATH and the packages it
# lacks (pydantic, SQLAlchemy, Alembic on a bare CUDA image) installed into a scratch folder from
# --wheels DIR or a registry; else a new virtualenv made by `make` (needs a registry).
#
# The GPU machine may reach no registry: fetch the wheels beforehand, next to the checkout
# (ignored by git, so that they travel with the working tree):
#   echo /.whl/ >> .git/info/exclude; benchmarks/gpu.sh --download-wheels .whl
# then run `benchmarks/gpu.sh --wheels .whl` there.
#
# Every stage has a time limit, and all of them together BUDGET seconds (470): a stage that
# runs out is stopped and reported as timed out, and the table is printed regardless.  The
# exit status is 0 only when every stage passed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVICE=cuda
QUICK=0
OUT_DIR=$ROOT/benchmarks/results/gpu
WHEELS=
PYTHON=
BUDGET=${BUDGET:-470}
# The packages a bare CUDA image lacks, for --download-wheels (its python is 3.12).
GPU_PACKAGES=${GPU_PACKAGES:-"pydantic sqlalchemy alembic"}
GPU_PYTHON=${GPU_PYTHON:-3.12}

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --wheels) WHEELS=$(cd "$2" && pwd) || exit 2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --download-wheels)
            mkdir -p "$2" || exit 2
            # shellcheck disable=SC2086  # a list of names
            exec python3 -m pip download --only-binary=:all: --implementation cp \
                --python-version "$GPU_PYTHON" --platform manylinux_2_28_x86_64 \
                --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
                -d "$2" $GPU_PACKAGES ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $DEVICE in cpu|cuda|cuda:[0-9]*) ;; *) echo "gpu.sh: --device cpu or cuda[:N]" >&2; exit 2 ;; esac

cd "$ROOT" || exit 2
mkdir -p "$OUT_DIR" || exit 2
OUT_DIR=$(cd "$OUT_DIR" && pwd)
rm -f "$OUT_DIR"/stage-*.txt "$OUT_DIR"/agree.json "$OUT_DIR"/bench.json
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
STARTED=$SECONDS
FAILED=0
STAGE=0
PY=

if [ "$QUICK" = 1 ]; then AGREE_ROWS=3000; BENCH_ROWS=5000; else AGREE_ROWS=20000; BENCH_ROWS=1000000; fi

# run NAME LIMIT COMMAND...: the command under `timeout`, its output to the screen and
# NAME.log, and one line about it for the table (stage-N-NAME.txt).
run() {
    local name=$1 limit=$2 left rc began=$SECONDS
    shift 2
    STAGE=$((STAGE + 1))
    left=$((BUDGET - 15 - (SECONDS - STARTED)))  # 15 s stay for the table
    [ "$left" -lt "$limit" ] && limit=$left
    local note="$OUT_DIR/stage-$STAGE-$name.txt"
    if [ "$limit" -le 0 ]; then
        echo "- $name: not run (no time left)" > "$note"
        FAILED=1
        return 1
    fi
    echo "== $name (at most $limit s)"
    # In a child bash, so that `timeout` can stop a shell function too.
    timeout --kill-after=5 "$limit" bash -c '"$@"' "$name" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
    rc=${PIPESTATUS[0]}
    local took=$((SECONDS - began)) summary
    summary=$(grep -oE '[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s' "$OUT_DIR/$name.log" | tail -1)
    summary=${summary:+: $summary}
    case $rc in
        0) echo "- $name: ok ($took s)$summary" > "$note" ;;
        124|137) echo "- $name: TIMED OUT after $limit s$summary" > "$note"; FAILED=1 ;;
        *) echo "- $name: FAILED, exit status $rc ($took s)$summary" > "$note"; FAILED=1 ;;
    esac
    return "$rc"
}

# python_ok PY: it runs streamfit's imports and the tests', and for cuda its torch sees a GPU.
python_ok() {
    "$1" - "$DEVICE" <<'EOF' >/dev/null 2>&1
import sys
import pytest, sklearn, torch
import streamfit, streamfit.cli.main
if sys.argv[1] != "cpu" and not torch.cuda.is_available():
    sys.exit(1)
EOF
}

# missing PY: the packages that streamfit and its tests need and PY cannot import.
missing() {
    "$1" - <<'EOF'
import importlib.util
wanted = {
    "numpy": "numpy", "pyarrow": "pyarrow", "safetensors": "safetensors",
    "pydantic": "pydantic", "sqlalchemy": "sqlalchemy", "click": "click", "rich": "rich",
    "fsspec": "fsspec", "yaml": "pyyaml", "alembic": "alembic", "pytest": "pytest",
    "pytest_timeout": "pytest-timeout", "sklearn": "scikit-learn", "hypothesis": "hypothesis",
}
print(" ".join(p for m, p in wanted.items() if importlib.util.find_spec(m) is None))
EOF
}

# setup: choose (or make) the python, and write PY and PYTHONPATH to python.env for the rest.
setup() {
    local env=$OUT_DIR/python.env
    if [ -n "$PYTHON" ]; then
        python_ok "$PYTHON" || { echo "--python $PYTHON cannot import what streamfit needs" >&2; return 1; }
        echo "python: $PYTHON"
        echo "PY=$PYTHON" > "$env"
        return 0
    fi
    if [ -x .venv/bin/python ] && python_ok .venv/bin/python; then
        echo "python: .venv/bin/python"
        echo "PY=$ROOT/.venv/bin/python" > "$env"
        return 0
    fi
    local sys_py
    sys_py=$(command -v python3 || true)
    if [ -n "$sys_py" ] && "$sys_py" -c "import torch, sys; sys.exit(0 if '$DEVICE' == 'cpu' or torch.cuda.is_available() else 1)" 2>/dev/null; then
        local site=/tmp/streamfit-gpu-site need
        export PYTHONPATH=$site:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
        need=$(missing "$sys_py")
        if [ -n "$need" ]; then
            echo "installing into $site: $need"
            # shellcheck disable=SC2086  # a list of names
            if [ -n "$WHEELS" ]; then
                "$sys_py" -m pip install -q --no-index --find-links "$WHEELS" --target "$site" $need
            else
                PIP_DEFAULT_TIMEOUT=20 "$sys_py" -m pip install -q --retries 1 --target "$site" $need
            fi
        fi
        if python_ok "$sys_py"; then
            echo "python: $sys_py, with $ROOT/src on PYTHONPATH"
            printf 'PY=%q\nexport PYTHONPATH=%q\n' "$sys_py" "$PYTHONPATH" > "$env"
            return 0
        fi
        echo "$sys_py cannot import what streamfit needs (missing: $(missing "$sys_py"))" >&2
    fi
    echo "no usable python: making a virtualenv (needs a package registry)"
    local venv=/tmp/streamfit-gpu-venv torch_spec=torch
    [ "$DEVICE" = cpu ] && torch_spec="torch==2.13.0"
    make -s VENV="$venv" TORCH_SPEC="$torch_spec" "$venv/.installed" || return 1
    python_ok "$venv/bin/python" || return 1
    echo "PY=$venv/bin/python" > "$env"
}

info() {
    if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not on this machine"; fi
    "$PY" - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
EOF
}

cuda_tests() {
    # Every test with a cuda variant (they skip without a GPU), and the shared checks on DEVICE.
    local variants checks=tests/core/test_algorithm_checks.py filter=()
    variants=$(grep -rHoE 'def test_[A-Za-z0-9_]*cuda[A-Za-z0-9_]*' tests --include='test_*.py' \
        | grep -v '^tests/test_gpu_script.py' | sed 's/:def /::/' | sort -u)
    [ "$QUICK" = 1 ] && filter=(-k "round_trip or has_a_case or cuda")
    # shellcheck disable=SC2086  # one node id a word
    STREAMFIT_TEST_DEVICE=$DEVICE "$PY" -m pytest -q -p no:cacheprovider -m "not slow" \
        "${filter[@]}" "$checks" $variants
}

export -f python_ok missing setup info cuda_tests
export ROOT DEVICE QUICK OUT_DIR WHEELS PYTHON
rm -f "$OUT_DIR/python.env"
run setup 150 setup
# shellcheck disable=SC1091  # written by setup
[ -f "$OUT_DIR/python.env" ] && . "$OUT_DIR/python.env"
export PY
if [ -n "$PY" ]; then
    run info 30 info
    run tests 150 cuda_tests
    run agree 90 "$PY" benchmarks/gpu.py agree --device "$DEVICE" --rows "$AGREE_ROWS" --out "$OUT_DIR"
    run bench 150 "$PY" benchmarks/gpu.py bench --device "$DEVICE" --rows "$BENCH_ROWS" --out "$OUT_DIR"
fi
echo
echo "## benchmarks/gpu.sh --device $DEVICE$([ "$QUICK" = 1 ] && echo " --quick"): $((SECONDS - STARTED)) s"
echo
if [ -n "$PY" ]; then
    timeout 15 "$PY" benchmarks/gpu.py table "$OUT_DIR" || FAILED=1
else
    cat "$OUT_DIR"/stage-*.txt
fi
exit "$FAILED"
