# Sourced (not run) by the GPU scripts, from the repository root, on the lent GPU machine:
#   source scripts/gpu_setup.sh
# Installs the carried wheels (.whl/*.whl: diffusers, nerfacc) into /tmp/site, and with
# NOTEBOOK_WHEELS=1 also .whl/notebook/*.whl (papermill, ipykernel and the dependencies the GPU
# image lacks), sets PYTHONPATH and the environment, and builds nerfacc's CUDA extension once for
# the H100/H200's architecture (TORCH_CUDA_ARCH_LIST=9.0; ~45 s the first time on a machine).
# Sets SETUP_SECONDS. Once sourced, it exports SDLIB_GPU_SETUP=done and a script it starts (a
# sweep pinned to one GPU of several, started beside others) skips the setup: two pip installs
# into /tmp/site at once would race.
# .whl/notebook (ignored by git, 31 wheels, 5 MB) was made on the CPU machine with
#   pip download papermill ipykernel --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl/notebook
# less what the GPU image already has (attrs certifi charset-normalizer click idna packaging
# psutil pygments python-dateutil pyyaml requests tqdm typing-extensions urllib3: a second copy
# on PYTHONPATH would shadow the image's) and the optional debugpy, jedi and parso (10 MB).
_setup_start=$(date +%s)
if [ "${SDLIB_GPU_SETUP:-}" != done ]; then
_wheels=(.whl/*.whl)
if [ "${NOTEBOOK_WHEELS:-0}" = 1 ]; then _wheels+=(.whl/notebook/*.whl); fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "${_wheels[@]}"
export PYTHONPATH=/tmp/site:$PWD TORCH_CUDA_ARCH_LIST=9.0 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    MPLBACKEND=Agg
python3 - <<'PY'
import torch, nerfacc  # builds nerfacc's CUDA extension once, before anything else needs it
est = nerfacc.OccGridEstimator(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=32).cuda()
rays_o = torch.zeros(8, 3, device="cuda")
rays_d = torch.nn.functional.normalize(torch.randn(8, 3, device="cuda"), dim=-1)
print("nerfacc ok", est.sampling(rays_o, rays_d, render_step_size=0.1)[0].shape)
PY
export SDLIB_GPU_SETUP=done
fi
SETUP_SECONDS=$(( $(date +%s) - _setup_start ))
echo "setup (wheels, nerfacc's CUDA build): ${SETUP_SECONDS} s"
