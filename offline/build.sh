#!/usr/bin/env bash
# offline/build.sh: builds the stand-ins for the stack's official images where no container
# registry is reachable: a Debian trixie base (debootstrap), postgres, redis, pgbouncer and airflow
# from Debian packages and PyPI; statsd-exporter, prometheus, alertmanager, postgres-exporter,
# redis-exporter, pgbouncer-exporter, node-exporter and cadvisor from the Go module proxy.
# Run by: `make offline-images` and .ci/run (as root: debootstrap needs it on a cold cache);
# `make tools` runs `build.sh --tools`, which builds only the Go binaries the unit tests use
# (statsd_exporter, prometheus/promtool, amtool).
# Inputs: offline/images.env (names and versions), EXTRA_CA_BUNDLE (PEM file that pip must trust
# inside the build; default: the host's system bundle, see host-ca-bundle), AIRFLOW_STACK_CACHE
# (cache dir), DEBIAN_MIRROR (see debian-mirror).
# Debian packages are pinned to a series (images.env tags such as postgres:17); the newest point
# release on the mirror is installed and recorded in the image label $installed_label_key.
# Change: versions in images.env; what goes into an image in its folder here. Each image carries
# a label with a hash of its inputs and is skipped when that hash is already built.
set -Eeuo pipefail

offline_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$offline_dir")
cache_dir=${AIRFLOW_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airflow-stack}
work_dir="$cache_dir/offline"
go_dir="$cache_dir/go"
host_bin="$cache_dir/bin"
label_key=org.airflow-stack.offline.inputs
installed_label_key=org.airflow-stack.offline.installed
suite=trixie
# The same builder everywhere: the Dockerfiles avoid BuildKit-only syntax, and the engine here
# has no buildx.
export DOCKER_BUILDKIT=0

die() {
  printf 'offline/build.sh: ERROR: %s\n' "$*" >&2
  exit 1
}
trap 'die "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
report() { printf '%-26s %-7s %7s  %s\n' "$1" "$2" "$3" "$4"; }

# Background jobs (Go builds) and temporary trees are cleaned up however the script ends.
bg_pids=()
tmp_dirs=()
kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
cleanup() {
  local pid dir mnt
  for pid in "${bg_pids[@]}"; do kill_tree "$pid"; done
  for dir in "${tmp_dirs[@]}"; do
    [ -e "$dir" ] || continue
    # A failed debootstrap can leave /proc or /sys mounted inside its tree.
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done \
      < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
    chmod -R u+w "$dir" 2>/dev/null || true
    rm -rf --one-file-system "$dir"
  done
}
trap cleanup EXIT

# Sets tmp_dir (a variable, not output: a command substitution could not register it for cleanup).
new_tmp_dir() {
  mkdir -p "$work_dir/tmp"
  tmp_dir=$(mktemp -d "$work_dir/tmp/$1.XXXXXX")
  tmp_dirs+=("$tmp_dir")
}

sha() { sha256sum | cut -d' ' -f1; }

# Hash of a directory tree: paths, modes and contents, in a stable order. extra-ca.pem is left
# out: it lets the build reach PyPI and changes nothing in the result.
tree_hash() {
  (
    cd "$1"
    find . -type f ! -name extra-ca.pem -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' f; do
      printf '%s %s %s\n' "$(stat -c %a "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"
    done
  ) | sha
}

# --- names and versions: offline/images.env is the one source of truth ---------------------------
declare -A images=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '' | '#'*) continue ;; esac
  [[ "$line" =~ ^([A-Z_]+)=([^[:space:]]+)$ ]] || die "offline/images.env: not KEY=value: $line"
  images[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
done < "$offline_dir/images.env"
for key in AIRFLOW_BASE_IMAGE POSTGRES_IMAGE REDIS_IMAGE PGBOUNCER_IMAGE STATSD_EXPORTER_IMAGE PROMETHEUS_IMAGE \
  ALERTMANAGER_IMAGE POSTGRES_EXPORTER_IMAGE REDIS_EXPORTER_IMAGE PGBOUNCER_EXPORTER_IMAGE NODE_EXPORTER_IMAGE \
  CADVISOR_IMAGE; do
  [ -n "${images[$key]:-}" ] || die "offline/images.env lacks $key"
  [[ "${images[$key]}" == */*:* ]] || die "offline/images.env: $key=${images[$key]} has no repository/name:tag"
done
tag_of() { printf '%s' "${images[$1]##*:}"; }

airflow_tag=$(tag_of AIRFLOW_BASE_IMAGE)
airflow_version=${airflow_tag%%-*}
# Debian packages: a series (17, 8.0, 1.24); the build installs the newest release of it.
pg_major=$(tag_of POSTGRES_IMAGE)
redis_series=$(tag_of REDIS_IMAGE)
pgbouncer_series=$(tag_of PGBOUNCER_IMAGE)
[[ "$pg_major" =~ ^[0-9]+$ ]] || die "POSTGRES_IMAGE tag must be the PostgreSQL major (e.g. 17)"
for key in REDIS_IMAGE PGBOUNCER_IMAGE; do
  [[ "$(tag_of "$key")" =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "$key tag must be a version series such as 8.0"
done
statsd_version=$(tag_of STATSD_EXPORTER_IMAGE)
prometheus_version=$(tag_of PROMETHEUS_IMAGE)
alertmanager_version=$(tag_of ALERTMANAGER_IMAGE)
redis_exporter_version=$(tag_of REDIS_EXPORTER_IMAGE)
cadvisor_version=$(tag_of CADVISOR_IMAGE)
for key in STATSD_EXPORTER_IMAGE ALERTMANAGER_IMAGE POSTGRES_EXPORTER_IMAGE REDIS_EXPORTER_IMAGE PGBOUNCER_EXPORTER_IMAGE \
  NODE_EXPORTER_IMAGE CADVISOR_IMAGE; do
  [[ "$(tag_of "$key")" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$key tag must be vX.Y.Z (the Go module version)"
done
# Prometheus v3.X.Y is published as the Go module version v0.3XX.Y.
[[ "$prometheus_version" =~ ^v3\.([0-9]+)\.([0-9]+)$ ]] || die "PROMETHEUS_IMAGE tag must be v3.X.Y"
prometheus_module_version="v0.$((300 + BASH_REMATCH[1])).${BASH_REMATCH[2]}"
# The base image sits next to the others, under the same repository prefix.
base_image="${images[AIRFLOW_BASE_IMAGE]%%/*}/debian:$suite"

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
mkdir -p "$work_dir/logs" "$go_dir" "$host_bin"
# One build at a time per cache: a second run waits instead of sharing the context directories.
exec 9> "$work_dir/.lock"
if ! flock -n 9; then
  echo "offline/build.sh: another build is running with cache $cache_dir; waiting for it" >&2
  flock 9
fi
start_all=$(now)

# --- Go binaries on the host (background: they are the slowest part of a cold build) --------------
# Own module and build caches inside the cache dir: removing it really means a cold build.
go_env=(env GOWORK=off GOFLAGS=-modcacherw CGO_ENABLED=0 GOOS=linux
  GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build")
version_ldflags() {
  local p=github.com/prometheus/common/version
  printf '%s' "-X $p.Version=${1#v} -X $p.Branch=HEAD -X $p.BuildUser=airflow-stack-offline"
}
module_dir() {
  "${go_env[@]}" go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

statsd_out="$go_dir/out/statsd_exporter-$statsd_version"
build_statsd_exporter() {
  local tmp src
  new_tmp_dir statsd
  tmp=$tmp_dir
  # No replace directives in its go.mod, so `go install module@version` builds the release as is.
  GOBIN="$tmp" "${go_env[@]}" go install -trimpath -tags netgo \
    -ldflags "$(version_ldflags "$statsd_version")" "github.com/prometheus/statsd_exporter@$statsd_version"
  src=$(module_dir "github.com/prometheus/statsd_exporter@$statsd_version")
  cp "$src/LICENSE" "$src/NOTICE" "$tmp/"
  # The unit tests validate the mapping file with it.
  [[ "$("$tmp/statsd_exporter" --help 2>&1)" == *--*check-config* ]] \
    || die "statsd_exporter $statsd_version has no --check-config flag"
  chmod -R a+rX,u+w "$tmp"
  mkdir -p "$(dirname "$statsd_out")"
  rm -rf "$statsd_out"
  mv "$tmp" "$statsd_out"
}

prometheus_out="$go_dir/out/prometheus-$prometheus_version"
build_prometheus() {
  local tmp src
  new_tmp_dir prometheus
  tmp=$tmp_dir
  # `go install .../cmd/prometheus@version` refuses modules with replace directives, which
  # Prometheus releases have; build inside a copy of the module instead, as its release does
  # (its own go.mod, go.sum and replaces). No builtinassets tag: the React UI is not in the module.
  src=$(module_dir "github.com/prometheus/prometheus@$prometheus_module_version")
  [ -d "$src/cmd/prometheus" ] || die "no Prometheus source for $prometheus_module_version"
  cp -r "$src" "$tmp/src"
  chmod -R u+w "$tmp/src"
  mkdir "$tmp/out"
  (cd "$tmp/src" && "${go_env[@]}" go build -trimpath -tags netgo \
    -ldflags "$(version_ldflags "$prometheus_version")" -o "$tmp/out/" ./cmd/prometheus ./cmd/promtool)
  cp "$src/documentation/examples/prometheus.yml" "$src/LICENSE" "$src/NOTICE" "$tmp/out/"
  [[ "$("$tmp/out/prometheus" --version 2>&1)" == *"version ${prometheus_version#v} "* ]] \
    || die "the built prometheus does not report version $prometheus_version"
  chmod -R a+rX,u+w "$tmp/out"
  mkdir -p "$(dirname "$prometheus_out")"
  rm -rf "$prometheus_out"
  mv "$tmp/out" "$prometheus_out"
}

# The programs below are built like Prometheus, inside a copy of their module: `go install
# module@version` first reads the module's version list, which the module proxy refuses (403) for
# these modules, although it serves the versions pinned in images.env.
go_module_copy() { # module@version dest
  local json src
  if ! json=$("${go_env[@]}" go mod download -json "$1" 2>&1); then
    printf '%s\n' "$json" >&2
    die "the Go module proxy does not serve $1; pin a version it has in offline/images.env"
  fi
  src=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -d "$src" ] || die "no source directory for $1 in: $json"
  cp -r "$src" "$2"
  chmod -R u+w "$2"
}
go_build_in() { # src_dir out_dir ldflags package...
  local src=$1 out=$2 ldflags=$3
  shift 3
  mkdir -p "$out"
  (cd "$src" && "${go_env[@]}" go build -trimpath -tags netgo -ldflags "$ldflags" -o "$out/" "$@")
}
go_out_install() { # built_dir final_dir
  chmod -R a+rX,u+w "$1"
  mkdir -p "$(dirname "$2")"
  rm -rf "$2"
  mv "$1" "$2"
}

# Alertmanager serves its UI's HTML only pre-compressed: index.html.gz or .br, by Accept-Encoding.
# The note is ASCII, so its length in characters is its length in bytes. No brotli tool is needed:
# one uncompressed meta-block is a valid brotli stream (RFC 7932, 9.2). Header bits, LSB first:
# WBITS=16, ISLAST=0, MNIBBLES=4, MLEN-1 (16 bits), ISUNCOMPRESSED=1; then the bytes; then 0x03,
# an empty last meta-block.
alertmanager_ui_note() { # dir
  local html n
  html='<!doctype html><title>Alertmanager</title><p>Offline stand-in: the Alertmanager web UI is not built into this image. Use the API (/api/v2/) or amtool.</p>'
  printf '%s\n' "$html" | gzip -9n > "$1/index.html.gz"
  n=${#html} # MLEN - 1: the note is written with a trailing newline
  {
    printf '%b' "\\x$(printf %02x $(((n & 15) << 4)))" "\\x$(printf %02x $(((n >> 4) & 255)))" \
      "\\x$(printf %02x $((((n >> 12) & 15) | 16)))"
    printf '%s\n' "$html"
    printf '\x03'
  } > "$1/index.html.br"
}

alertmanager_out="$go_dir/out/alertmanager-$alertmanager_version"
build_alertmanager() {
  local tmp
  new_tmp_dir alertmanager
  tmp=$tmp_dir
  go_module_copy "github.com/prometheus/alertmanager@$alertmanager_version" "$tmp/src"
  # go:embed needs ui/app/dist, which the release fills with the npm/Elm UI build (not in the
  # module, and its toolchain is not reachable here). The API, amtool and /-/healthy work without it.
  [ ! -e "$tmp/src/ui/app/dist" ] || die "alertmanager $alertmanager_version ships ui/app/dist; drop the UI note"
  mkdir "$tmp/src/ui/app/dist"
  alertmanager_ui_note "$tmp/src/ui/app/dist"
  go_build_in "$tmp/src" "$tmp/out" "$(version_ldflags "$alertmanager_version")" ./cmd/alertmanager ./cmd/amtool
  cp "$tmp/src/examples/ha/alertmanager.yml" "$tmp/src/LICENSE" "$tmp/src/NOTICE" "$tmp/out/"
  [[ "$("$tmp/out/alertmanager" --version 2>&1)" == *"version ${alertmanager_version#v} "* ]] \
    || die "the built alertmanager does not report version $alertmanager_version"
  # The unit tests validate alertmanager.yml with it.
  "$tmp/out/amtool" check-config "$tmp/out/alertmanager.yml" > /dev/null \
    || die "amtool $alertmanager_version rejects the upstream example config"
  go_out_install "$tmp/out" "$alertmanager_out"
}

# Exporters built the same way, one line each: binary (also the job name; the image and its folder
# here are the name with - for _), its images.env key, Go module, package inside the module, files
# copied beside the binary. The image tag is the module version; the binary must report it.
go_exporters=(
  "postgres_exporter POSTGRES_EXPORTER_IMAGE github.com/prometheus-community/postgres_exporter ./cmd/postgres_exporter LICENSE,NOTICE"
  "pgbouncer_exporter PGBOUNCER_EXPORTER_IMAGE github.com/prometheus-community/pgbouncer_exporter . LICENSE"
  "node_exporter NODE_EXPORTER_IMAGE github.com/prometheus/node_exporter . LICENSE,NOTICE"
)
exporter_names=()
declare -A exporter_key=() exporter_module=() exporter_package=() exporter_files=() exporter_out=()
for row in "${go_exporters[@]}"; do
  read -r name key module package files <<< "$row"
  exporter_names+=("$name")
  exporter_key[$name]=$key
  exporter_module[$name]=$module
  exporter_package[$name]=$package
  exporter_files[$name]=$files
  exporter_out[$name]="$go_dir/out/$name-$(tag_of "$key")"
done
build_exporter() { # binary name from go_exporters
  local name=$1 tmp version file
  version=$(tag_of "${exporter_key[$name]}")
  new_tmp_dir "$name"
  tmp=$tmp_dir
  go_module_copy "${exporter_module[$name]}@$version" "$tmp/src"
  go_build_in "$tmp/src" "$tmp/out" "$(version_ldflags "$version")" "${exporter_package[$name]}"
  for file in ${exporter_files[$name]//,/ }; do cp "$tmp/src/$file" "$tmp/out/"; done
  [[ "$("$tmp/out/$name" --version 2>&1)" == *"version ${version#v} "* ]] \
    || die "the built $name does not report version $version"
  go_out_install "$tmp/out" "${exporter_out[$name]}"
}

# cAdvisor's main package is in the module github.com/google/cadvisor/cmd, which the module proxy
# does not serve (it has no tags of its own). offline/cadvisor/src is a trimmed copy of that main
# package (same flags, /metrics and OOM counting) on the library modules, which it does serve.
cadvisor_out="$go_dir/out/cadvisor-$cadvisor_version"
build_cadvisor() {
  local tmp src lib p=github.com/google/cadvisor/lib/version
  new_tmp_dir cadvisor
  tmp=$tmp_dir
  grep -q "^	github.com/google/cadvisor/lib $cadvisor_version\$" "$offline_dir/cadvisor/src/go.mod" \
    || die "offline/cadvisor/src/go.mod does not require github.com/google/cadvisor/lib $cadvisor_version (images.env); run go get there"
  cp -r "$offline_dir/cadvisor/src" "$tmp/src"
  go_build_in "$tmp/src" "$tmp/out" \
    "-X $p.Version=$cadvisor_version -X $p.Revision=unknown -X $p.BuildUser=airflow-stack-offline" .
  src=$(module_dir "github.com/google/cadvisor@$cadvisor_version")
  lib=$(module_dir "github.com/google/cadvisor/lib@$cadvisor_version")
  cp "$src/LICENSE" "$tmp/out/"
  cmp -s "$src/LICENSE" "$lib/LICENSE" || die "cadvisor's lib module has another LICENSE; copy it too"
  [[ "$("$tmp/out/cadvisor" --version 2>&1)" == "cAdvisor version $cadvisor_version "* ]] \
    || die "the built cadvisor does not report version $cadvisor_version"
  go_out_install "$tmp/out" "$cadvisor_out"
}

redis_exporter_out="$go_dir/out/redis_exporter-$redis_exporter_version"
build_redis_exporter() {
  local tmp
  new_tmp_dir redis_exporter
  tmp=$tmp_dir
  go_module_copy "github.com/oliver006/redis_exporter@$redis_exporter_version" "$tmp/src"
  # Its own version variables (upstream's Dockerfile sets the same three).
  go_build_in "$tmp/src" "$tmp/out" \
    "-X main.BuildVersion=$redis_exporter_version -X main.BuildCommitSha=unknown -X main.BuildDate=unknown" .
  cp "$tmp/src/LICENSE" "$tmp/out/"
  [[ "$("$tmp/out/redis_exporter" -version 2>&1)" == *"Exporter $redis_exporter_version "* ]] \
    || die "the built redis_exporter does not report version $redis_exporter_version"
  go_out_install "$tmp/out" "$redis_exporter_out"
}

declare -A go_job_pid=() go_job_start=()
# A job cleans up its own temporary trees and must not kill its siblings on the way out.
go_job_body() { # function args...
  bg_pids=()
  tmp_dirs=()
  trap cleanup EXIT
  "$@"
}
start_go_job() { # name function args...
  command -v go > /dev/null \
    || die "Go (>= the version in the module's go.mod) is needed to build $1; install it from go.dev/dl"
  go_job_body "${@:2}" > "$work_dir/logs/$1.log" 2>&1 &
  go_job_pid[$1]=$!
  go_job_start[$1]=$(now)
  bg_pids+=("$!")
}
wait_go_job() { # name
  local pid=${go_job_pid[$1]:-}
  if [ -z "$pid" ]; then
    report "$1 (host)" cached 0.0s "$host_bin/"
    return 0
  fi
  if ! wait "$pid"; then
    tail -n 40 "$work_dir/logs/$1.log" >&2
    die "building $1 failed; full log: $work_dir/logs/$1.log"
  fi
  report "$1 (host)" built "$(since "${go_job_start[$1]}")" "$host_bin/"
}

[ -x "$statsd_out/statsd_exporter" ] || start_go_job statsd_exporter build_statsd_exporter
[ -x "$prometheus_out/prometheus" ] || start_go_job prometheus build_prometheus
[ -x "$alertmanager_out/amtool" ] || start_go_job alertmanager build_alertmanager

link_host_tools() {
  ln -sfn "$statsd_out/statsd_exporter" "$host_bin/statsd_exporter"
  ln -sfn "$prometheus_out/prometheus" "$host_bin/prometheus"
  ln -sfn "$prometheus_out/promtool" "$host_bin/promtool"
  ln -sfn "$alertmanager_out/amtool" "$host_bin/amtool"
}
# `build.sh --tools` (make tools): only the host binaries the unit tests run, no images.
if [ "${1:-}" = --tools ]; then
  wait_go_job statsd_exporter
  wait_go_job prometheus
  wait_go_job alertmanager
  link_host_tools
  if [ "${#go_job_pid[@]}" -gt 0 ]; then rm -rf "$go_dir/mod" "$go_dir/build"; fi
  exit 0
fi
for name in "${exporter_names[@]}"; do
  [ -x "${exporter_out[$name]}/$name" ] || start_go_job "$name" build_exporter "$name"
done
[ -x "$redis_exporter_out/redis_exporter" ] || start_go_job redis_exporter build_redis_exporter
[ -x "$cadvisor_out/cadvisor" ] || start_go_job cadvisor build_cadvisor

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
base_id=$(docker image inspect -f '{{.Id}}' "$base_image")

# --- images built with docker build ---------------------------------------------------------------
# build_image NAME REF CONTEXT_DIR BUILD_ARG...: the hash covers the context (Dockerfile included),
# the build args, the base image id and the name; extra-ca.pem is left out, as it changes nothing
# in the result.
build_image() {
  local name=$1 ref=$2 ctx=$3 t hash args=() arg
  shift 3
  t=$(now)
  hash=$( {
    printf '%s\n' "$ref" "$base_id" "$@"
    tree_hash "$ctx"
  } | sha)
  if find_built "$ref" "$hash"; then
    report "$name" cached "$(since "$t")" "$ref$(installed_of "$ref")"
    return 0
  fi
  for arg in "$@"; do args+=(--build-arg "$arg"); done
  if ! docker build --force-rm --label "$label_key=$hash" \
    --label "org.opencontainers.image.description=offline stand-in built by offline/build.sh" \
    --build-arg "BASE_IMAGE=$base_image" "${args[@]}" -t "$ref" "$ctx" \
    > "$work_dir/logs/$name.log" 2>&1; then
    tail -n 40 "$work_dir/logs/$name.log" >&2
    if grep -q CERTIFICATE_VERIFY_FAILED "$work_dir/logs/$name.log"; then
      echo "offline/build.sh: hint: HTTPS is intercepted here; set EXTRA_CA_BUNDLE to a PEM file with the proxy's CA" >&2
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

# A fresh context per image: only what its Dockerfile needs is sent to the engine.
context() { # name files...
  local ctx="$work_dir/context/$1"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  shift
  local f
  # Hard links where possible: the Go binaries are large. Nothing writes to these files.
  for f; do
    ln "$f" "$ctx/" 2> /dev/null || cp "$f" "$ctx/"
  done
  printf '%s\n' "$ctx"
}

ctx=$(context postgres "$offline_dir"/postgres/*)
build_image postgres "${images[POSTGRES_IMAGE]}" "$ctx" "PG_MAJOR=$pg_major"

ctx=$(context redis "$offline_dir"/redis/*)
build_image redis "${images[REDIS_IMAGE]}" "$ctx" "REDIS_SERIES=$redis_series"

ctx=$(context pgbouncer "$offline_dir"/pgbouncer/*)
build_image pgbouncer "${images[PGBOUNCER_IMAGE]}" "$ctx" \
  "PGBOUNCER_SERIES=$pgbouncer_series" "PG_MAJOR=$pg_major"

ctx=$(context airflow "$offline_dir"/airflow/* "$repo_dir/requirements.lock")
if [ -n "$extra_ca" ]; then
  cp "$extra_ca" "$ctx/extra-ca.pem"
else
  : > "$ctx/extra-ca.pem"
fi
build_image airflow "${images[AIRFLOW_BASE_IMAGE]}" "$ctx" "AIRFLOW_VERSION=$airflow_version"
# The CA was needed by the build stage only: drop it, and that stage's image, which holds it.
rm -f "$ctx/extra-ca.pem"
stage_images=$(docker images -q --filter label=org.airflow-stack.offline.stage=airflow-venv)
if [ -n "$stage_images" ]; then
  # shellcheck disable=SC2086 # one id per word
  docker rmi $stage_images > /dev/null 2>&1 || echo "offline/build.sh: warning: could not remove the airflow build stage image(s) $stage_images" >&2
fi

wait_go_job statsd_exporter
ctx=$(context statsd-exporter "$offline_dir"/statsd-exporter/* "$statsd_out"/*)
build_image statsd-exporter "${images[STATSD_EXPORTER_IMAGE]}" "$ctx"

wait_go_job prometheus
ctx=$(context prometheus "$offline_dir"/prometheus/* "$prometheus_out"/*)
build_image prometheus "${images[PROMETHEUS_IMAGE]}" "$ctx"

wait_go_job alertmanager
link_host_tools
ctx=$(context alertmanager "$offline_dir"/alertmanager/* "$alertmanager_out"/*)
build_image alertmanager "${images[ALERTMANAGER_IMAGE]}" "$ctx"

for name in "${exporter_names[@]}"; do
  wait_go_job "$name"
  ctx=$(context "${name//_/-}" "$offline_dir/${name//_/-}"/* "${exporter_out[$name]}"/*)
  build_image "${name//_/-}" "${images[${exporter_key[$name]}]}" "$ctx"
done

wait_go_job redis_exporter
ctx=$(context redis-exporter "$offline_dir"/redis-exporter/* "$redis_exporter_out"/*)
build_image redis-exporter "${images[REDIS_EXPORTER_IMAGE]}" "$ctx"

wait_go_job cadvisor
ctx=$(context cadvisor "$offline_dir"/cadvisor/Dockerfile "$cadvisor_out"/*)
build_image cadvisor "${images[CADVISOR_IMAGE]}" "$ctx"

bg_pids=()
# The binaries are what is kept; Go's module and build caches (about 4 GB) only served this build.
if [ "${#go_job_pid[@]}" -gt 0 ]; then
  rm -rf "$go_dir/mod" "$go_dir/build"
fi
report total '' "$(since "$start_all")" "host binaries for tests: $host_bin/{statsd_exporter,prometheus,promtool,amtool}"
