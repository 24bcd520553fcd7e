#!/usr/bin/env bash
# offline/build-images.sh: builds the stand-ins for the stack's official images where no container
# registry is reachable, every row of offline/kit.table: a Debian trixie base (debootstrap) and a busybox
# base on it for the Go programs, postgres,
# redis, pgbouncer and airflow from Debian packages and PyPI; statsd-exporter, prometheus, alertmanager,
# the exporters and cadvisor from the Go module proxy (whose binaries for the unit tests it also links,
# as offline/build-tools.sh does).
# Run by: `make offline-images` and .ci/run (as root: debootstrap needs it on a cold cache).
# Inputs: offline/images.env (names and versions), offline/kit.table (what from which source),
# EXTRA_CA_BUNDLE (PEM file that pip must trust inside the build; default: the host's system bundle, see
# host-ca-bundle), AIRFLOW_STACK_CACHE (cache dir), DEBIAN_MIRROR (see debian-mirror).
# Debian packages are pinned to a series (images.env tags such as postgres:17); the newest point
# release on the mirror is installed and recorded in the image label $installed_label_key.
# Change: versions in images.env; what goes into an image in its folder here. Each image carries
# a label with a hash of its inputs and is skipped when that hash is already built.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

label_key=org.airflow-stack.offline.inputs
installed_label_key=org.airflow-stack.offline.installed
suite=trixie
# The same builder everywhere: the Dockerfiles avoid BuildKit-only syntax, and the engine here
# has no buildx.
export DOCKER_BUILDKIT=0
# The base image sits next to the others, under the same repository prefix.
base_image="${images[AIRFLOW_BASE_IMAGE]%%/*}/debian:$suite"

# Hash of a directory tree: paths, modes and contents, in a stable order. extra-ca.pem is left
# out: it lets the build reach PyPI and changes nothing in the result.
tree_hash() {
  (
    cd "$1" || exit
    find . -type f ! -name extra-ca.pem -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' f; do
      printf '%s %s %s\n' "$(stat -c %a "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"
    done
  ) | sha
}

# --- preflight --------------------------------------------------------------------------------------
command -v docker > /dev/null || die "docker is not installed (see .ci/install-docker)"
docker info > /dev/null 2>&1 || die "the Docker engine is not reachable (is dockerd running? see .ci/install-docker)"
extra_ca=""
# Trust what the host trusts unless told otherwise: behind a TLS-intercepting proxy pip needs it.
EXTRA_CA_BUNDLE=${EXTRA_CA_BUNDLE:-$("$offline_dir/host-ca-bundle")}
if [ -n "${EXTRA_CA_BUNDLE:-}" ]; then
  [ -r "$EXTRA_CA_BUNDLE" ] || die "EXTRA_CA_BUNDLE=$EXTRA_CA_BUNDLE is not a readable file"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$EXTRA_CA_BUNDLE" || die "EXTRA_CA_BUNDLE=$EXTRA_CA_BUNDLE holds no PEM certificate"
  extra_ca=$EXTRA_CA_BUNDLE
fi
lock_cache
start_all=$(now)

# Every Go program in the background first: they are the slowest part of a cold build.
go_images=()
for image in "${kit_images[@]}"; do
  case "${kit_source[$image]}" in go*) go_images+=("$image") ;; esac
done
start_go_jobs "${go_images[@]}"

# --- base image: Debian minbase root filesystem ----------------------------------------------------
# Cached means: the tag exists and carries the hash of the current inputs. (Images derived from
# the base inherit its label, so a search by label alone could pick the wrong image.)
find_built() { # ref hash
  local have
  have=$(docker image inspect -f "{{ index .Config.Labels \"$label_key\" }}" "$1" 2> /dev/null || true)
  [ "$have" = "$2" ]
}

base_hash=$( {
  printf 'debootstrap --variant=minbase %s\n' "$suite"
  sha256sum < "$offline_dir/base/customize-rootfs"
  sha256sum < "$offline_dir/base/install-packages"
} | sha)
base_tar="$work_dir/debian-$suite-minbase-${base_hash:0:16}.tar"

t0=$(now)
if find_built "$base_image" "$base_hash"; then
  report debian cached "$(since "$t0")" "$base_image"
else
  if [ ! -s "$base_tar" ]; then
    [ "$(id -u)" = 0 ] || die "debootstrap needs root for the $suite root filesystem; run as root once (it is cached in $work_dir)"
    if ! command -v debootstrap > /dev/null; then
      command -v apt-get > /dev/null || die "debootstrap is missing and this is not a Debian host"
      { apt-get update -q && apt-get install -y -q debootstrap; } > "$work_dir/logs/debootstrap-install.log" 2>&1 \
        || die "cannot install debootstrap; see $work_dir/logs/debootstrap-install.log"
    fi
    mirror=$("$offline_dir/debian-mirror")
    script=/usr/share/debootstrap/scripts/$suite
    # An older debootstrap may not know trixie yet; its sid script builds any later suite.
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    new_tmp_dir rootfs
    rootfs=$tmp_dir
    debootstrap --variant=minbase "$suite" "$rootfs/root" "$mirror" "$script" \
      > "$work_dir/logs/debootstrap.log" 2>&1 || {
      tail -n 30 "$work_dir/logs/debootstrap.log" >&2
      die "debootstrap failed; full log: $work_dir/logs/debootstrap.log"
    }
    "$offline_dir/base/customize-rootfs" "$rootfs/root" "$mirror"
    tar --numeric-owner -C "$rootfs/root" -cf "$base_tar.partial" .
    mv "$base_tar.partial" "$base_tar"
    find "$work_dir" -maxdepth 1 -name "debian-$suite-minbase-*.tar" ! -path "$base_tar" -delete
  fi
  docker import \
    --change "LABEL $label_key=$base_hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    "$base_tar" "$base_image" > /dev/null
  report debian built "$(since "$t0")" "$base_image"
fi

# --- images built with docker build ---------------------------------------------------------------
# build_image NAME REF CONTEXT_DIR BUILD_ARG...: FROM the image named by $from (default: the Debian
# base). The hash covers the context (Dockerfile included), the build args, the id of the image built
# from and the name; extra-ca.pem is left out, as it changes nothing in the result.
build_image() {
  local name=$1 ref=$2 ctx=$3 t hash args=() arg from=${from:-$base_image} from_id
  shift 3
  t=$(now)
  from_id=$(docker image inspect -f '{{.Id}}' "$from")
  hash=$( {
    printf '%s\n' "$ref" "$from_id" "$@"
    tree_hash "$ctx"
  } | sha)
  if find_built "$ref" "$hash"; then
    report "$name" cached "$(since "$t")" "$ref$(installed_of "$ref")"
    return 0
  fi
  for arg in "$@"; do args+=(--build-arg "$arg"); done
  if ! docker build --force-rm --label "$label_key=$hash" \
    --label "org.opencontainers.image.description=offline stand-in built by offline/build.sh" \
    --build-arg "BASE_IMAGE=$from" "${args[@]}" -t "$ref" "$ctx" \
    > "$work_dir/logs/$name.log" 2>&1; then
    tail -n 40 "$work_dir/logs/$name.log" >&2
    if grep -q CERTIFICATE_VERIFY_FAILED "$work_dir/logs/$name.log"; then
      echo "$me: hint: HTTPS is intercepted here; set EXTRA_CA_BUNDLE to a PEM file with the proxy's CA" >&2
    fi
    die "building $ref failed; full log: $work_dir/logs/$name.log"
  fi
  record_installed "$ref"
  report "$name" built "$(since "$t")" "$ref$(installed_of "$ref")"
}

# The Debian packages install-packages resolved, copied from the image into its label.
record_installed() { # ref
  local installed
  installed=$(docker run --rm --user 0 --entrypoint cat "$1" /usr/local/share/offline-kit/installed-packages 2> /dev/null \
    | LC_ALL=C sort -u | paste -sd' ' || true)
  [ -n "$installed" ] || return 0
  local out
  out=$(printf 'FROM %s\nLABEL %s="%s"\n' "$1" "$installed_label_key" "$installed" | docker build -q -t "$1" - 2>&1) \
    || die "labelling $1 with its installed packages failed: $out"
}
installed_of() { # ref: " (pkg=version ...)" or nothing
  local have
  have=$(docker image inspect -f "{{ index .Config.Labels \"$installed_label_key\" }}" "$1" 2> /dev/null || true)
  if [ -n "$have" ]; then printf ' (%s)' "$have"; fi
}

# A fresh context per image: the regular files of its folder here (the Dockerfile and what it copies),
# plus FILES; only what its Dockerfile needs is sent to the engine.
context() { # image files...
  local ctx="$work_dir/context/$1" f
  rm -rf "$ctx"
  mkdir -p "$ctx"
  # Hard links where possible: the Go binaries are large. Nothing writes to these files.
  for f in "$offline_dir/$1"/* "${@:2}"; do
    [ -f "$f" ] || continue
    ln "$f" "$ctx/" 2> /dev/null || cp "$f" "$ctx/"
  done
  printf '%s\n' "$ctx"
}

# The Airflow image: requirements.lock, and the CA bundle pip trusts in its build stage.
build_airflow() { # image build_arg...
  local ctx stage_images
  ctx=$(context "$1" "$repo_dir/requirements.lock")
  if [ -n "$extra_ca" ]; then
    cp "$extra_ca" "$ctx/extra-ca.pem"
  else
    : > "$ctx/extra-ca.pem"
  fi
  build_image "$1" "${images[${kit_pin[$1]}]}" "$ctx" "${@:2}"
  # The CA was needed by the build stage only: drop it, and that stage's image, which holds it.
  rm -f "$ctx/extra-ca.pem"
  stage_images=$(docker images -q --filter label=org.airflow-stack.offline.stage=airflow-venv)
  if [ -n "$stage_images" ]; then
    # shellcheck disable=SC2086 # one id per word
    docker rmi $stage_images > /dev/null 2>&1 || echo "$me: warning: could not remove the airflow build stage image(s) $stage_images" >&2
  fi
}

# The base of every Go stand-in: busybox (wget for health checks) and a CA bundle on the Debian base.
busybox_image="${base_image%:*}-busybox:$suite"
build_image debian-busybox "$busybox_image" "$(context base/busybox)"

for image in "${kit_images[@]}"; do
  ref=${images[${kit_pin[$image]}]}
  case "${kit_source[$image]}" in
    debian)
      mapfile -t args < <(build_args_of "$image")
      build_image "$image" "$ref" "$(context "$image")" "${args[@]}" ;;
    pypi)
      mapfile -t args < <(build_args_of "$image")
      build_airflow "$image" "${args[@]}" ;;
    go*)
      wait_go_job "$image"
      link_host_tools "$image"
      from=$busybox_image build_image "$image" "$ref" "$(context "$image" "${kit_out[$image]}"/*)" ;;
  esac
done
drop_go_caches
report total '' "$(since "$start_all")" "host binaries for tests: $host_bin/{$(host_tools)}"
