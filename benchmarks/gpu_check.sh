#!/usr/bin/env bash
# The GPU check on a lent machine, with the machine's own torch (never a pip-installed one):
#   bash benchmarks/gpu_check.sh            # writes $OUT/gpu_check.json (or benchmarks/results/)
# The machine cannot reach a package index. If its Python lacks reasoner's pure dependencies
# (transformers <5.20, tokenizers, safetensors, networkx, ...), build a wheelhouse here for its
# Python version first and carry it (runs/ is git-ignored; well under the 64 MiB a run may carry):
#   .venv/bin/pip download -d runs/gpu-wheels --only-binary=:all: --python-version 3.X \
#       --platform manylinux2014_x86_64 transformers==5.19.0 math-verify==0.9.0 networkx
# (about 53 MB for Python 3.11, numpy included; no torch: none of them needs it),
# then: run(command="bash benchmarks/gpu_check.sh", carry=["runs/gpu-wheels"]).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
py=python3
python3 -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
if ! python3 -c "import transformers, tokenizers, safetensors, networkx, huggingface_hub" 2>/dev/null; then
    if [ ! -d runs/gpu-wheels ]; then
        echo "gpu_check.sh: this Python lacks transformers/tokenizers/safetensors/networkx and no runs/gpu-wheels/ was carried (see the top of this file)" >&2
        exit 2
    fi
    python3 -m venv --system-site-packages /tmp/gpu-check-venv
    /tmp/gpu-check-venv/bin/pip install -q --no-index --find-links runs/gpu-wheels \
        transformers==5.19.0 math-verify==0.9.0 networkx
    py=/tmp/gpu-check-venv/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=PASSIVE
timeout 470 "$py" -m benchmarks.gpu_check --device cuda --out "$out/gpu_check.json" --time-budget 400
