#!/usr/bin/env bash
# Installs what a profile needs into this checkout, idempotently (a stamp skips work already done).
#   scripts/setup.sh demo   venv + runtime + moto server + rich           (README command 1)
#   scripts/setup.sh test   the above + dev tools + CDK libs + CDK CLI (npm) + the Lambda asset's deps
set -euo pipefail
profile=${1:?usage: scripts/setup.sh demo|test}
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "setup: no python3 found; install Python 3.11 or newer" >&2; exit 2; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

# This machine's pip configuration lists package folders that may not exist; pip warns once per package
# about each. Those lines say nothing about this project, so they are filtered; every other line stays.
pip() {
  .venv/bin/python -m pip --disable-pip-version-check -q "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
fingerprint() { cat pyproject.toml package.json package-lock.json cdk_app/asset-requirements.txt 2>/dev/null | sha256sum | cut -c1-16; }

case "$profile" in
  demo) extras="demo" ;;
  test) extras="dev,cdk" ;;
  *) echo "setup: unknown profile '$profile' (use demo or test)" >&2; exit 2 ;;
esac

stamp=".venv/.setup-$profile-$(fingerprint)"
if [ -f "$stamp" ]; then exit 0; fi

echo "setup: installing python packages ($extras)"
pip install -e ".[$extras]"

if [ "$profile" = test ]; then
  echo "setup: installing the CDK CLI from package-lock.json"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  # The Lambda asset's third-party packages, built for the function's runtime and architecture without
  # Docker: wheels only, no dependency resolution (boto3/botocore come with the runtime and stay out).
  rm -rf .build/lambda-deps
  pip install --no-deps --only-binary=:all: \
    --platform manylinux2014_aarch64 --implementation cp \
    --python-version "$(.venv/bin/python -c 'import cdk_app.asset as a; print(a.ASSET_PYTHON_VERSION)')" \
    --target .build/lambda-deps -r cdk_app/asset-requirements.txt
fi

rm -f .venv/.setup-"$profile"-*
touch "$stamp"
