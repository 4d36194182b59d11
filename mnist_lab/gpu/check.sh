#!/usr/bin/env bash
# The GPU check in one call, on a machine that reaches no package index:
#   bash mnist_lab/gpu/check.sh OUT_FOLDER [--device cpu] [--smoke] [--workers N]
# from the repository's root (or anywhere: it goes there), with the kit that `make gpu-kit` built beside it
# (.gpu-kit, or $GPU_KIT). It installs the kit's wheels into a temporary folder (the machine's own packages
# stay as they are), unpacks MNIST into a temporary data folder, then runs python -m mnist_lab.gpu.check with
# what is left of $BUDGET seconds (default 480). Figures: OUT_FOLDER/gpu_check.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: bash mnist_lab/gpu/check.sh OUT_FOLDER [--device cpu] [--smoke] [--workers N]}
shift
KIT=${GPU_KIT:-.gpu-kit}
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-480}
if [ ! -d "$KIT/wheels" ] || [ ! -d "$KIT/MNIST/raw" ]; then
  echo "gpu-check: no kit in $KIT; build it with 'make gpu-kit' on a machine that reaches the package index" >&2
  exit 2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "gpu-check: installing $(ls "$KIT"/wheels/*.whl | wc -l) wheels from $KIT into $WORK/site"
"$PY" -m pip install --quiet --no-index --no-deps --disable-pip-version-check --target "$WORK/site" "$KIT"/wheels/*.whl \
  || { echo "gpu-check: the kit's wheels did not install with $("$PY" --version 2>&1); rebuild the kit" >&2; exit 2; }
mkdir -p "$WORK/data/MNIST/raw"
for f in "$KIT"/MNIST/raw/*.gz; do
  gunzip -c "$f" > "$WORK/data/MNIST/raw/$(basename "$f" .gz)" || { echo "gpu-check: $f is damaged; rebuild the kit" >&2; exit 2; }
done
export PYTHONPATH="$PWD:$WORK/site${PYTHONPATH:+:$PYTHONPATH}" MNIST_LAB_DATA="$WORK/data" PYTHONUNBUFFERED=1
export PATH="$WORK/site/bin:$PATH"
LEFT=$((BUDGET - SECONDS))
echo "gpu-check: set up in ${SECONDS} s; ${LEFT} s left for the check"
"$PY" -m mnist_lab.gpu.check --out "$OUT" --budget "$LEFT" "$@"
