#!/usr/bin/env bash
# Build every container/<name>/Dockerfile and push it to ECR as <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>,
# where <repo> is the folder name with "_" -> "-" (container/dnn_regressor -> dnn-regressor): the
# repositories infra/sagemaker-pipelines.yaml creates and include/config/models/*.yaml refers to.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: AWS_ACCOUNT_ID=123456789012 AWS_REGION=us-east-1 scripts/push_images.sh [options] [IMAGE...]

Builds container/<IMAGE>/Dockerfile for each IMAGE (default: every container/*/Dockerfile) and
pushes it to Amazon ECR in AWS_ACCOUNT_ID / AWS_REGION. Needs docker and the AWS CLI, and AWS
credentials allowed to push to the repositories (deploy infra/sagemaker-pipelines.yaml first).

Options:
  -t, --tag TAG     image tag (default: $IMAGE_TAG, else the git commit, e.g. 3f2c1ab)
      --no-latest   do not also push :latest (needed when the repositories use IMMUTABLE tags;
                    then point training.image_uri in include/config/models/*.yaml at TAG)
      --platform P  docker build platform (default: $PLATFORM, else linux/amd64, SageMaker's)
  -n, --dry-run     print the commands instead of running them
  -h, --help        show this help

Environment:
  AWS_ACCOUNT_ID    12-digit account id (required)
  AWS_REGION        region of the repositories, e.g. us-east-1 (required)
  CONTAINER_DIR     where the image folders are (default: container/ next to this script's parent)
EOF
}

die() {
    printf 'push_images.sh: error: %s\n' "$1" >&2
    if [[ "${2:-}" == usage ]]; then
        printf '\n' >&2
        usage >&2
    fi
    exit 2
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
container_dir="${CONTAINER_DIR:-${repo_root}/container}"
tag="${IMAGE_TAG:-}"
push_latest=true
platform="${PLATFORM:-linux/amd64}"
dry_run=false
images=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        -t | --tag)
            [[ $# -ge 2 ]] || die "$1 needs a value" usage
            tag="$2"
            shift 2
            ;;
        --no-latest)
            push_latest=false
            shift
            ;;
        --platform)
            [[ $# -ge 2 ]] || die "$1 needs a value" usage
            platform="$2"
            shift 2
            ;;
        -n | --dry-run)
            dry_run=true
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            die "unknown option: $1" usage
            ;;
        *)
            images+=("$1")
            shift
            ;;
    esac
done

[[ -n "${AWS_ACCOUNT_ID:-}" ]] || die "AWS_ACCOUNT_ID is not set" usage
[[ -n "${AWS_REGION:-}" ]] || die "AWS_REGION is not set" usage
[[ "${AWS_ACCOUNT_ID}" =~ ^[0-9]{12}$ ]] || die "AWS_ACCOUNT_ID must be 12 digits, got '${AWS_ACCOUNT_ID}'"
[[ "${AWS_REGION}" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "AWS_REGION does not look like a region: '${AWS_REGION}'"

if [[ -z "${tag}" ]]; then
    tag="$(git -C "${repo_root}" rev-parse --short HEAD 2>/dev/null)" \
        || die "no --tag given and ${repo_root} is not a git checkout: pass --tag TAG"
fi
[[ "${tag}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid image tag '${tag}'"

if [[ ${#images[@]} -eq 0 ]]; then
    for dockerfile in "${container_dir}"/*/Dockerfile; do
        [[ -f "${dockerfile}" ]] || continue
        images+=("$(basename "$(dirname "${dockerfile}")")")
    done
    [[ ${#images[@]} -gt 0 ]] || die "no ${container_dir}/*/Dockerfile found"
fi
for image in "${images[@]}"; do
    [[ -f "${container_dir}/${image}/Dockerfile" ]] || die "no Dockerfile in ${container_dir}/${image}"
done

run() {
    if ${dry_run}; then
        printf '+ %s\n' "$*"
    else
        "$@"
    fi
}

if ! ${dry_run}; then
    command -v docker >/dev/null || die "docker is not installed (or not on PATH)"
    command -v aws >/dev/null || die "the AWS CLI is not installed (or not on PATH)"
fi

domain=amazonaws.com
if [[ "${AWS_REGION}" == cn-* ]]; then
    domain=amazonaws.com.cn
fi
registry="${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.${domain}"

if ${dry_run}; then
    printf '+ aws ecr get-login-password --region %s | docker login --username AWS --password-stdin %s\n' \
        "${AWS_REGION}" "${registry}"
else
    aws ecr get-login-password --region "${AWS_REGION}" \
        | docker login --username AWS --password-stdin "${registry}"
fi

for image in "${images[@]}"; do
    repo="${image//_/-}"
    uri="${registry}/${repo}"
    echo "==> ${image}: ${uri}:${tag}"
    run docker build --platform "${platform}" --tag "${uri}:${tag}" "${container_dir}/${image}"
    run docker push "${uri}:${tag}"
    if ${push_latest}; then
        run docker tag "${uri}:${tag}" "${uri}:latest"
        run docker push "${uri}:latest"
    fi
done
tags="${tag}"
if ${push_latest}; then
    tags="${tag} and latest"
fi
if ${dry_run}; then
    echo "dry run: would push ${#images[@]} image(s) to ${registry} tagged ${tags}"
else
    echo "pushed ${#images[@]} image(s) to ${registry} tagged ${tags}"
fi
